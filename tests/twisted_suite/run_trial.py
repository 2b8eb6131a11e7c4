"""Run Twisted's own process test suites with every transport from ferroproc.

    python tests/twisted_suite/run_trial.py [trial options] [test modules]

Default modules: twisted.test.test_process, twisted.internet.test.test_process,
twisted.internet.test.test_posixprocess, twisted.test.test_iutils. Any trial
option works (``--reactor=poll``, ``-e``, ``--reporter=verbose`` ...).

What it does:

1. ``ferroproc.twisted.install()``, before trial imports the test modules.
2. Counts the transports that ``spawnProcess`` returns which are ferroproc's,
   and makes constructing a Twisted-native ``twisted.internet.process.Process``
   or ``PTYProcess`` raise (and counts it): a test that gets one fails, and
   so does the run.
3. Drops the tests listed in ``excluded.txt`` (beside this file) from the
   suite: each line is ``<test id or glob>  # reason``. A glob covers one
   test under every reactor (``*`` matches any text). A line that matches no
   test is an error, so the list cannot go stale silently.
   A reason starting with ``[only if NAME]`` limits the line to machines
   where that condition (``CONDITIONS`` below) holds.
4. Runs the rest with trial in a temporary directory (removed afterwards
   unless ``FERROPROC_KEEP_TRIAL_TEMP`` is set: it holds trial's test.log)
   and prints a summary: tests run / passed / skipped / excluded, failures,
   errors, transports.

Exit status 0 only if every remaining test passed (or was skipped by the
suite itself), at least one ferroproc transport was created, and no native
one was.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODULES = [
    "twisted.test.test_process",
    "twisted.internet.test.test_process",
    "twisted.internet.test.test_posixprocess",
    "twisted.test.test_iutils",
]

counts: Counter[str] = Counter()


def interpreter_private() -> bool:
    """Whether another user (uid 1) cannot run this interpreter: some
    directory on its path lacks o+x, or the file lacks o+x (as /root, mode
    0700, in the development sandbox)."""
    exe = Path(sys.executable).resolve()
    if not os.stat(exe).st_mode & 0o001:
        return True
    return any(not os.stat(d).st_mode & 0o001 for d in exe.parents)


#: Conditions an exclusion can be limited to: '# [only if NAME] reason'.
CONDITIONS = {
    "root-and-interpreter-private": lambda: os.getuid() == 0 and interpreter_private(),
}


def read_exclusions(path: Path) -> list[tuple[str, str]]:
    """``(pattern, reason)`` for each non-blank, non-comment line whose
    condition (if any) holds."""
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = line.partition("#")
        pattern, reason = pattern.strip(), reason.strip()
        if not sep or not reason or " " in pattern:
            raise SystemExit(f"{path}:{n}: expected '<test id>  # reason', got {raw!r}")
        if reason.startswith("[only if "):
            name = reason[len("[only if ") : reason.index("]")]
            if name not in CONDITIONS:
                raise SystemExit(f"{path}:{n}: unknown condition {name!r} (known: {sorted(CONDITIONS)})")
            if not CONDITIONS[name]():
                continue
        out.append((pattern, reason))
    return out


def matches(pattern: str, test_id: str) -> bool:
    """A test id, a class/module prefix of it, or a glob."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(test_id, pattern)
    return test_id == pattern or test_id.startswith(pattern + ".")


def instrument() -> None:
    """Install ferroproc and count what spawnProcess creates."""
    from twisted.internet import process as twprocess
    from twisted.internet.posixbase import PosixReactorBase

    import ferroproc.twisted
    from ferroproc._core import Process as FerroProcess

    ferroproc.twisted.install()

    ferro_spawn = PosixReactorBase.spawnProcess

    def counting_spawn(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        transport = ferro_spawn(self, *args, **kwargs)
        kind = "pty" if (args[7] if len(args) > 7 else kwargs.get("usePTY")) else "pipes"
        if isinstance(transport, FerroProcess):
            counts[f"ferroproc {kind}"] += 1
        else:
            counts[f"other {kind}"] += 1
        return transport

    PosixReactorBase.spawnProcess = counting_spawn  # type: ignore[method-assign]

    def forbid(cls: type) -> None:
        def refuse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            counts[f"native {cls.__name__}"] += 1
            raise RuntimeError(f"a Twisted-native {cls.__name__} was constructed while ferroproc is installed")

        cls.__init__ = refuse  # type: ignore[misc]

    forbid(twprocess.Process)
    forbid(twprocess.PTYProcess)


def main(argv: list[str]) -> int:
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    instrument()

    from twisted.scripts import trial
    from twisted.trial import runner
    from twisted.trial._asyncrunner import _iterateTests

    args = list(argv)
    if not any(not a.startswith("-") for a in args):
        args += DEFAULT_MODULES
    config = trial.Options()
    config.parseOptions(args)
    trial._initialDebugSetup(config)

    exclusions = read_exclusions(HERE / "excluded.txt")
    used: Counter[str] = Counter()
    kept, excluded = [], []
    for test in _iterateTests(trial._getSuite(config)):
        hit = next((p for p, _ in exclusions if matches(p, test.id())), None)
        if hit is None:
            kept.append(test)
        else:
            used[hit] += 1
            excluded.append(test.id())
    # Lines for modules not requested in this run are not stale.
    requested = [a for a in config["tests"]]
    unused = [p for p, _ in exclusions if not used[p] and any(p.startswith(r) for r in requested)]

    workdir = tempfile.mkdtemp(prefix="ferroproc-trial-")
    os.chdir(workdir)
    try:
        trial_runner = trial._makeRunner(config)
        result = trial_runner.run(runner.TestSuite(kept))
    finally:
        os.chdir("/")
        if not os.environ.get("FERROPROC_KEEP_TRIAL_TEMP"):
            shutil.rmtree(workdir, ignore_errors=True)

    skipped = len(result.skips)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    ferro = sum(v for k, v in counts.items() if k.startswith("ferroproc"))
    native = sum(v for k, v in counts.items() if k.startswith("native") or k.startswith("other"))
    w = sys.__stdout__.write
    w("\n[ferroproc] trial summary\n")
    w(f"  tests run:   {result.testsRun}\n")
    w(f"  passed:      {result.successes}\n")
    w(f"  skipped:     {skipped}\n")
    w(f"  expected failures: {len(result.expectedFailures)}\n")
    w(
        f"  failed:      {len(result.failures)}, errors: {len(result.errors)}, "
        f"unexpected successes: {len(result.unexpectedSuccesses)}\n"
    )
    w(f"  excluded:    {len(excluded)} tests by {len(exclusions)} lines of excluded.txt\n")
    w(f"  transports:  {dict(sorted(counts.items()))}\n")
    ok = result.wasSuccessful() and bad == 0 and ferro > 0 and native == 0 and not unused
    if unused:
        w(f"  ERROR: excluded.txt lines matching no test: {unused}\n")
    if native:
        w("  ERROR: transports not created by ferroproc\n")
    if ferro == 0 and result.testsRun:
        w("  ERROR: no transport was created through ferroproc\n")
    w(f"[ferroproc] {'OK' if ok else 'FAILED'}\n")
    sys.__stdout__.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
