"""Run CPython's own asyncio subprocess tests against any event loop factory.

    python tests/asyncio_suite/run_suite.py [--loop MODULE:NAME] [--create MODULE] [-v] [-k TEXT]...
        [--debug] [--lenient-handler] [--timeout SECONDS] [--durations N] [--require-transport PREFIX]
        [--include-excluded] [--list]

``--loop`` names a zero-argument callable returning a new event loop:
``asyncio:new_event_loop`` (the default), ``uvloop:new_event_loop``,
``ferroproc.asyncio:new_event_loop``; ``module.attr`` works too.

What it runs, from the *running interpreter's own* ``test`` package (nothing
of CPython's test code is copied here; the mixins are imported and
subclassed, as uvloop runs asyncio's tests on its loop):

- ``test.test_asyncio.test_subprocess.SubprocessMixin`` (``create_subprocess_*``
  and ``asyncio.subprocess.Process``), test ids ``test_subprocess.SubprocessMixin.<test>``;
- ``test.test_asyncio.test_events.SubprocessTestsMixin`` (``loop.subprocess_*``
  with a ``SubprocessProtocol``), test ids ``test_events.SubprocessTestsMixin.<test>``.

``--create MODULE`` runs the first alone, with ``MODULE``'s
``create_subprocess_exec`` and ``create_subprocess_shell`` in place of
asyncio's (``asyncio.create_subprocess_*`` and ``asyncio.subprocess.
create_subprocess_*`` are replaced for the run): what a program gets that
imports them from ``ferroproc.asyncio``, its ``Process`` included, on any
loop. The transports counted are then those its ``Process`` receives.

Each test gets a new loop from the factory in ``setUp`` on top of
``test_asyncio.utils.TestCase`` (no current loop is set: tests must pass the
loop explicitly or run inside it; the loop is closed at cleanup; tearDown
checks threads and reaps stray children, as in CPython's own runs). The
``test_events`` tests also get ``EventLoopTestsMixin``'s tearDown (one
``run_briefly``, cleanups, ``gc_collect``).

Version differences handled here (3.10–3.13):

- the mixins keep the same names on 3.10–3.13, but each version has its own
  set of tests (27 / 29 / 34 / 35 in ``SubprocessMixin``); the runner takes
  whatever the interpreter has, and looks the mixins up by a list of names;
- asyncio's own Unix loop needs a child watcher up to 3.13 (3.14 has none):
  before and after each test the policy's watcher is reset (``set_child_watcher
  (None)``, after the loop's own cleanup so that ``close_loop`` can still join
  a ``ThreadedChildWatcher``'s threads), so each test lazily gets the watcher
  the version's default policy picks (``ThreadedChildWatcher`` on 3.10/3.11,
  ``PidfdChildWatcher`` where pidfds work on 3.12/3.13), as users of
  ``asyncio.run`` get. A loop that reaps its own children never asks for one;
- ``utils.TestCase.close_loop`` reads ``BaseEventLoop._default_executor``:
  loops without it (uvloop) are closed through the public API instead;
- DeprecationWarnings from the watcher API (3.12+) are silenced.

Exclusions: ``excluded.txt`` beside this file, one ``<test id>  # reason`` a
line; a reason may start with ``[only if COND, ...]`` where COND is
``py>=3.12`` (any of ``>= > <= < ==`` and a ``major.minor``) or ``loop=PKG``
(the factory's top-level package; with ``--create``, that module's). A line whose conditions hold and which
matches no test is an error, so the list cannot go stale silently.

Stricter than CPython's own runs: a test fails if the loop's exception
handler was called during it (``--lenient-handler`` turns this off). An error
raised inside a protocol callback, e.g. ``test_events.MySubprocessProtocol``'s
state assertions when a loop calls it out of order (something after
``connection_lost``), only reaches the handler and would pass unnoticed. Stock
asyncio never reaches it in these tests; one report that 3.10's own
``asyncio/subprocess.py`` can cause on any loop is allowed
(``handler_call_allowed``). Zombies that the tests' ``reap_children()`` had
to reap (children the loop never waited for) are listed, not failed; so are
children still running a second after their test's loop was closed (a loop
need not kill them), which the runner then kills so that none outlives it.

Also reported: the loop class, and the subprocess transport classes seen
(through ``asyncio.subprocess.Process`` and ``test_events``'
``MySubprocessProtocol.connection_made``). ``--require-transport ferroproc.``
fails the run unless every transport seen comes from a module with that
prefix (and at least one was seen): proof that the loop under test, not a
fallback, spawned the children.

A per-test ``--timeout`` (default 120 s; 0: none) guards against a hang:
it names the test, dumps every thread's traceback, kills this process's
children and exits 3. Output: unittest's report on stderr, then one
summary line on stdout:

    asyncio-suite 3.13.0 asyncio:new_event_loop: run 44, passed 44, skipped 0, failed 0, excluded 5 (4.2 s) OK

Exit status 0 only if nothing failed (and the transport check, if asked, held).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import importlib
import operator
import os
import re
import signal
import sys
import threading
import time
import unittest
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXCLUDED = HERE / "excluded.txt"

#: (module, mixin names to try in order, test id prefix). The names have been
#: the same on 3.10–3.13; a list keeps a later rename a one-word change.
SOURCES = [
    ("test.test_asyncio.test_subprocess", ("SubprocessMixin",), "test_subprocess"),
    ("test.test_asyncio.test_events", ("SubprocessTestsMixin",), "test_events"),
]

transports: Counter[str] = Counter()
loop_types: Counter[str] = Counter()
altered: list[str] = []
left_running: list[str] = []


# ----------------------------------------------------------------- exclusions

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


def condition_holds(cond: str, loop_pkg: str) -> bool:
    m = re.fullmatch(r"py(>=|<=|==|>|<)(\d+)\.(\d+)", cond)
    if m:
        return _OPS[m.group(1)](sys.version_info[:2], (int(m.group(2)), int(m.group(3))))
    m = re.fullmatch(r"loop=([\w.]+)", cond)
    if m:
        return loop_pkg == m.group(1)
    raise ValueError(f"unknown condition {cond!r} (expected py>=X.Y or loop=PKG)")


def read_exclusions(path: Path, loop_pkg: str) -> list[tuple[str, str]]:
    """``(test id, reason)`` for each line whose conditions hold."""
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, sep, reason = line.partition("#")
        test_id, reason = test_id.strip(), reason.strip()
        if not sep or not reason or " " in test_id:
            raise SystemExit(f"{path}:{n}: expected '<test id>  # reason', got {raw!r}")
        if reason.startswith("[only if "):
            conds = reason[len("[only if ") : reason.index("]")]
            try:
                holds = all(condition_holds(c.strip(), loop_pkg) for c in conds.split(","))
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: {e}") from None
            if not holds:
                continue
        out.append((test_id, reason))
    return out


# ---------------------------------------------------------------- loop factory


def load_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
    else:
        mod_name, _, attr = spec.rpartition(".")
    if not mod_name or not attr:
        raise SystemExit(f"--loop: expected MODULE:NAME, got {spec!r}")
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise SystemExit(f"--loop: {spec} is not callable")
    return obj  # type: ignore[no-any-return]


def reset_child_watcher() -> None:
    """Drop (and close) the policy's child watcher, where asyncio has them
    (<= 3.13): the next ``get_child_watcher()`` makes the version's default."""
    policy = asyncio.get_event_loop_policy()
    if not hasattr(policy, "set_child_watcher"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy.set_child_watcher(None)


def record_transport(transport: object) -> None:
    cls = type(transport)
    transports[f"{cls.__module__}.{cls.__qualname__}"] += 1


def instrument(events_module: Any, process_classes: list[type]) -> None:
    """Count the transports handed to each ``Process`` class
    (asyncio.subprocess.Process, and ``--create``'s) and to test_events'
    protocol; none of it changes behaviour."""
    for cls in process_classes:
        orig_init = cls.__init__

        def init(self, transport, protocol, loop, orig_init=orig_init):  # type: ignore[no-untyped-def]
            record_transport(transport)
            orig_init(self, transport, protocol, loop)

        cls.__init__ = init

    proto = getattr(events_module, "MySubprocessProtocol", None)
    if proto is not None:
        orig_made = proto.connection_made

        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            record_transport(transport)
            orig_made(self, transport)

        proto.connection_made = connection_made


# ------------------------------------------------------------------ the suite


def describe(context: dict[str, Any]) -> str:
    exc = context.get("exception")
    return f"{context.get('message')!r}: {exc!r}" if exc is not None else repr(context.get("message"))


def handler_call_allowed(context: dict[str, Any]) -> bool:
    """3.10's SubprocessStreamProtocol sets the stdin-closed future's
    exception without marking it retrieved (3.11 added ``_log_traceback =
    False``, asyncio/subprocess.py 3.11:84-86): its 'never retrieved'
    report is asyncio's, whatever the loop."""
    return (
        sys.version_info < (3, 11)
        and context.get("message") == "Future exception was never retrieved"
        and isinstance(context.get("exception"), (BrokenPipeError, ConnectionResetError))
    )


def make_case(
    mixin: type, label: str, factory: Callable[[], Any], debug: bool, strict_handler: bool, events_teardown: bool
) -> type:
    from test import support
    from test.test_asyncio import utils as test_utils

    class Case(mixin, test_utils.TestCase):  # type: ignore[misc, valid-type]
        def setUp(self) -> None:
            super().setUp()
            reset_child_watcher()
            # Registered before set_event_loop's close_loop, so it runs after it.
            self.addCleanup(reset_child_watcher)
            self.loop = factory()
            if not isinstance(self.loop, asyncio.AbstractEventLoop):
                raise TypeError(f"loop factory returned {self.loop!r}, not an event loop")
            loop_types[f"{type(self.loop).__module__}.{type(self.loop).__qualname__}"] += 1
            if debug:
                self.loop.set_debug(True)
            self.handler_calls: list[dict[str, Any]] = []
            self.loop.set_exception_handler(self.record_handler_call)
            self.set_event_loop(self.loop)

        def record_handler_call(self, loop: Any, context: dict[str, Any]) -> None:
            self.handler_calls.append(context)
            loop.default_exception_handler(context)

        def tearDown(self) -> None:
            if events_teardown:
                # test_events.EventLoopTestsMixin.tearDown
                if not self.loop.is_closed():
                    test_utils.run_briefly(self.loop)
                self.doCleanups()
                support.gc_collect()
            support.environment_altered = False
            super().tearDown()
            # reap_children() found a zombie: a child the loop never reaped.
            if support.environment_altered:
                altered.append(self.id())
                support.environment_altered = False
            # A child still running once its loop is closed would outlive the run.
            if n := kill_leftover_children(grace=1.0):
                left_running.append(f"{self.id()} ({n})")
            unexpected = [c for c in self.handler_calls if not handler_call_allowed(c)]
            if unexpected and strict_handler:
                self.fail(
                    "the loop's exception handler was called (an error inside a callback, "
                    f"e.g. a protocol method called out of order): {[describe(c) for c in unexpected]}"
                )

        @staticmethod
        def close_loop(loop: Any) -> None:
            # CPython's close_loop reads BaseEventLoop._default_executor (and
            # joins a ThreadedChildWatcher's threads); keep it for loops that
            # have one, and do the public part of it for any other loop.
            if hasattr(loop, "_default_executor"):
                test_utils.TestCase.close_loop(loop)
                return
            if not loop.is_closed() and hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        def id(self) -> str:
            return f"{label}.{self._testMethodName}"

        def __str__(self) -> str:
            return f"{self._testMethodName} ({label})"

    Case.__name__ = Case.__qualname__ = mixin.__name__ + "OnLoopUnderTest"
    return Case


def replace_create(module_name: str) -> list[type]:
    """``--create``: ``module_name``'s ``create_subprocess_*`` in place of
    asyncio's; its ``Process`` class, to count the transports it gets."""
    from asyncio import subprocess as aio_subprocess

    module = importlib.import_module(module_name)
    for name in ("create_subprocess_exec", "create_subprocess_shell"):
        setattr(asyncio, name, getattr(module, name))
        setattr(aio_subprocess, name, getattr(module, name))
    process = getattr(module, "Process", None)
    return [process] if isinstance(process, type) and process is not aio_subprocess.Process else []


def collect(
    factory: Callable[[], Any], debug: bool, strict_handler: bool, create: str | None
) -> list[unittest.TestCase]:
    from asyncio import subprocess as aio_subprocess

    tests: list[unittest.TestCase] = []
    loader = unittest.TestLoader()
    processes = [aio_subprocess.Process] + (replace_create(create) if create else [])
    for mod_name, names, prefix in SOURCES:
        if create and prefix == "test_events":
            continue  # the loop's own subprocess_exec: not what --create tests
        try:
            module = importlib.import_module(mod_name)
        except unittest.SkipTest as e:
            raise SystemExit(f"{mod_name} skips itself on this interpreter: {e}") from None
        except ImportError as e:
            raise SystemExit(
                f"cannot import {mod_name} ({e}): this interpreter lacks CPython's test package "
                "(Debian/Ubuntu: libpythonX.Y-testsuite)"
            ) from None
        mixin = next((getattr(module, n) for n in names if hasattr(module, n)), None)
        if mixin is None:
            raise SystemExit(f"{mod_name} has none of {names} on Python {sys.version.split()[0]}")
        if prefix == "test_events" or create:
            instrument(module, processes)
        case = make_case(
            mixin, f"{prefix}.{mixin.__name__}", factory, debug, strict_handler, events_teardown=prefix == "test_events"
        )
        tests.extend(t for t in loader.loadTestsFromTestCase(case) if isinstance(t, unittest.TestCase))
    return tests


def our_children(include_zombies: bool = True) -> list[int]:
    """Pids whose parent is this process (Linux /proc)."""
    me, kids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            state, ppid = stat.rpartition(")")[2].split()[:2]
            if int(ppid) == me and (include_zombies or state != "Z"):
                kids.append(int(entry))
    return kids


def kill_leftover_children(grace: float) -> int:
    """Children still alive (not zombies) after ``grace`` seconds are
    SIGKILLed and reaped; returns how many there were. The loop under test is
    closed by then: nothing else will ever wait for them."""
    deadline = time.monotonic() + grace
    while (alive := our_children(include_zombies=False)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return len(alive)


class Watchdog:
    """Ends the run if one test takes longer than ``timeout`` seconds: names
    the test, dumps every thread's traceback, SIGKILLs this process's
    children, prints a FAILED summary line and exits 3. One thread for the
    whole run, so the tests' own thread-leak checks see a constant count."""

    def __init__(self, timeout: float, header: str) -> None:
        self.timeout = timeout
        self.header = header
        self.lock = threading.Lock()
        self.test_id: str | None = None
        self.deadline: float | None = None
        threading.Thread(target=self._watch, name="asyncio-suite-watchdog", daemon=True).start()

    def arm(self, test_id: str) -> None:
        with self.lock:
            self.test_id, self.deadline = test_id, time.monotonic() + self.timeout

    def disarm(self) -> None:
        with self.lock:
            self.deadline = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            with self.lock:
                if self.deadline is None or time.monotonic() < self.deadline:
                    continue
                test_id = self.test_id
            sys.stderr.write(f"\nTIMEOUT: {test_id} still running after {self.timeout:g} s\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            for pid in our_children():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            sys.stderr.flush()
            sys.stdout.write(f"{self.header}: timeout in {test_id} FAILED\n")
            sys.stdout.flush()
            os._exit(3)


class GuardedResult(unittest.TextTestResult):
    watchdog: Watchdog | None = None

    def startTest(self, test: unittest.TestCase) -> None:
        if self.watchdog:
            self.watchdog.arm(test.id())
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        if self.watchdog:
            self.watchdog.disarm()
        super().stopTest(test)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", default="asyncio:new_event_loop", help="MODULE:NAME of a loop factory")
    ap.add_argument(
        "--create", metavar="MODULE", help="test_subprocess only, with MODULE's create_subprocess_* (and Process)"
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", dest="keywords", action="append", default=[], help="run tests whose id contains TEXT")
    ap.add_argument("--debug", action="store_true", help="loop.set_debug(True) on every loop (asyncio debug mode)")
    ap.add_argument(
        "--lenient-handler", action="store_true", help="do not fail tests that call the loop's exception handler"
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="per test, seconds (0: none)")
    ap.add_argument("--durations", type=int, metavar="N", help="show the N slowest tests (3.12+; 0: all)")
    ap.add_argument("--require-transport", metavar="PREFIX", help="every transport's module must start with PREFIX")
    ap.add_argument("--include-excluded", action="store_true", help="run the excluded tests too")
    ap.add_argument("--list", action="store_true", help="list test ids (excluded ones with their reason)")
    args = ap.parse_args(argv)

    faulthandler.enable()  # a crash in a loop's C code still shows where
    asyncio.set_event_loop_policy(None)
    factory = load_factory(args.loop)
    # The package whose subprocess implementation runs the tests: the
    # loop's, or --create's (a loop=PKG exclusion is about that one).
    loop_pkg = re.split(r"[:.]", args.create or args.loop)[0]
    exclusions = read_exclusions(EXCLUDED, loop_pkg)
    tests = collect(factory, args.debug, not args.lenient_handler, args.create)

    reasons = dict(exclusions)
    ids = {t.id() for t in tests}
    prefixes = {t.split(".")[0] for t in ids}
    stale = [t for t, _ in exclusions if t not in ids and t.split(".")[0] in prefixes]
    if args.list:
        for t in tests:
            print(t.id() + (f"  # EXCLUDED: {reasons[t.id()]}" if t.id() in reasons else ""))
        return 0
    kept = [t for t in tests if args.include_excluded or t.id() not in reasons]
    n_excluded = len(tests) - len(kept)
    if args.keywords:
        kept = [t for t in kept if any(k in t.id() for k in args.keywords)]

    header = f"asyncio-suite {sys.version.split()[0]} {args.loop}" + (f" --create {args.create}" if args.create else "")
    GuardedResult.watchdog = Watchdog(args.timeout, header) if args.timeout > 0 else None
    extra: dict[str, Any] = {}
    if args.durations is not None:
        if sys.version_info < (3, 12):
            raise SystemExit("--durations needs Python 3.12+ (unittest's own option)")
        extra["durations"] = args.durations
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2 if args.verbose else 1, resultclass=GuardedResult, **extra
    )
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = runner.run(unittest.TestSuite(kept))
    elapsed = time.monotonic() - started

    # A test can fail and then error in tearDown too: count tests, not reports.
    bad = {t.id() for t, _ in result.failures + result.errors} | {t.id() for t in result.unexpectedSuccesses}
    failed = len(bad)
    skipped = len({t.id() for t, _ in result.skipped} - bad)
    passed = result.testsRun - failed - skipped - len(result.expectedFailures)
    problems = []
    if stale:
        problems.append(f"excluded.txt lines matching no test: {stale}")
    if args.require_transport:
        foreign = {k: v for k, v in transports.items() if not k.startswith(args.require_transport)}
        if foreign or (not transports and result.testsRun):
            problems.append(f"transports not from {args.require_transport!r}: {foreign or 'none seen'}")
    ok = failed == 0 and not problems

    err = sys.stderr.write
    err(f"loop classes: {dict(loop_types)}\n")
    err(f"subprocess transports: {dict(transports)}\n")
    if altered:
        err(f"tests after which reap_children() reaped a zombie: {altered}\n")
    if left_running:
        err(f"tests whose children still ran after the loop was closed (killed): {left_running}\n")
    for p in problems:
        err(f"ERROR: {p}\n")
    sys.stderr.flush()
    print(
        f"{header}: run {result.testsRun}, passed {passed}, "
        f"skipped {skipped}, failed {failed}, excluded {n_excluded} ({elapsed:.1f} s) {'OK' if ok else 'FAILED'}",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
