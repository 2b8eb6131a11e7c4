"""The utilities and pipelines cancelled at random moments, as an outside
adversarial suite would: ``d.cancel()`` and ``asyncio.wait_for`` while the
child writes as fast as it can, with a grandchild holding the pipes, in a
process group of its own or not; pipelines with a failing stage at each
position, ``stopAllOnFailure``, huge outputs and ``maxBytes``.

The witness is the process table (/proc), never the library's word: the
child reaped (no zombie: the conftest's ``no_leaks``), a grandchild in the
child's group no longer running. The moments come from a fixed seed, so a
failure can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, alive, run_reactor, wait_dead
from test_asyncio_host import HAVE_UVLOOP, settle_engines

import ferroproc.asyncio as fa
from ferroproc import reactor, utils
from ferroproc.defer import CancelledError, Deferred
from ferroproc.failure import Failure
from ferroproc.pipeline import getPipelineOutput
from ferroproc.utils import OutputLimitExceeded

__all__ = ["settle_engines"]  # the no_leaks fixture's hook (conftest.py)

#: Writes 64 KiB blocks for ever (after starting the grandchild, if any).
WRITER = "import os, subprocess, sys\n{pre}\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"


def writer(tmp: Path, grandchild: bool) -> tuple[list[str], Path | None]:
    """A child writing as fast as it can; with ``grandchild``, it first
    starts ``sleep 60`` (which inherits its stdout and stderr, and its
    group) and leaves that pid in a file once it runs."""
    if not grandchild:
        return [PY, "-c", WRITER.format(pre="")], None
    pidfile = tmp / "grandchild"
    pre = (
        "g = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pidfile) + '.tmp'!r}, 'w').write(str(g.pid))\n"
        f"os.rename({str(pidfile) + '.tmp'!r}, {str(pidfile)!r})"
    )
    return [PY, "-c", WRITER.format(pre=pre)], pidfile


def grandchild_of(pidfile: Path | None) -> int | None:
    if pidfile is None or not pidfile.exists():
        return None
    return int(pidfile.read_text())


def start(kind: str, argv: list[str], group: bool) -> Deferred[Any]:
    options: dict[str, Any] = {"processGroup": True} if group else {}
    if kind == "output":
        return utils.getProcessOutput(argv[0], argv[1:], env=None, killGrace=0.5)
    if kind == "result":
        return utils.getProcessResult(argv[0], argv[1:], env=None, killGrace=0.5, **options)
    # The writer first, a reader of everything last: the cancel finds
    # all three running.
    stages = [argv, ["cat"], [PY, "-c", "import sys\nfor _ in sys.stdin.buffer: pass"]]
    return getPipelineOutput(stages, env=None, killGrace=0.5, **options)


CASES = [
    pytest.param(
        kind, grandchild, group, id=f"{kind}-{'grandchild' if grandchild else 'alone'}-{'group' if group else 'ours'}"
    )
    for kind in ("output", "result", "pipeline")
    for grandchild in (False, True)
    for group in (False, True)
    if not (group and kind == "output")  # getProcessOutput has Twisted's signature
]


@pytest.mark.parametrize(("kind", "grandchild", "group"), CASES)
def test_d_cancel_at_random_moments_leaves_nothing(tmp_path: Path, kind: str, grandchild: bool, group: bool) -> None:
    """Cancel at a random moment of the first 0.2 s (four seeds): the
    Deferred fails with CancelledError, the child is reaped, and a
    grandchild in the child's own group is gone too (one in ours cannot be
    reached, and only must not delay the result)."""
    rng = random.Random(f"{kind}{grandchild}{group}")
    for round in range(4):
        sub = tmp_path / str(round)
        sub.mkdir()
        argv, pidfile = writer(sub, grandchild)
        d = start(kind, argv, group)
        results: list[Any] = []
        d.addBoth(results.append)
        call = reactor.callLater(rng.random() * 0.2, d.cancel)
        try:
            run_reactor(results.__len__, 10)
        finally:
            if call.active():
                call.cancel()
        assert isinstance(results[0], Failure) and results[0].check(CancelledError), results
        pid = grandchild_of(pidfile)
        if pid is not None:
            if group:
                assert wait_dead(pid, 10), f"grandchild {pid} in the child's group survived the cancel"
            else:
                os.kill(pid, 9)
                assert wait_dead(pid, 10)


def _runners() -> list[Any]:
    out = [pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")]
    if HAVE_UVLOOP:
        import uvloop

        out.append(pytest.param(uvloop.run, id="uvloop"))
    return out


@pytest.mark.parametrize("runner", _runners())
def test_asyncio_wait_for_at_random_moments_stops_the_group(runner: Callable[[Any], Any], tmp_path: Path) -> None:
    """``asyncio.wait_for`` timing out a utility's and a pipeline's Deferred
    at random moments, on each loop: the whole group is gone, nothing left."""
    rng = random.Random(7)

    async def main() -> None:
        for round in range(6):
            sub = tmp_path / str(round)
            sub.mkdir()
            argv, pidfile = writer(sub, True)
            d = start("pipeline" if round % 2 else "result", argv, True)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(d, 0.02 + rng.random() * 0.2)  # type: ignore[arg-type]
            pid = grandchild_of(pidfile)
            if pid is not None:
                for _ in range(2000):
                    if not alive(pid):
                        break
                    await asyncio.sleep(0.005)
                assert not alive(pid), f"grandchild {pid} survived"

    runner(asyncio.wait_for(main(), 60))


# -- pipelines: failures at each position --------------------------------------------

YES = [PY, "-c", "import sys\nwhile True: sys.stdout.buffer.write(b'y' * 65536)"]
FAIL = ["sh", "-c", "exit 3"]
IGNORES_TERM = ["sh", "-c", "trap '' TERM; sleep 60"]


def pipeline(stages: list[list[str]], **options: Any) -> Any:
    d = getPipelineOutput(stages, env=None, killGrace=0.3, **options)
    results: list[Any] = []
    d.addBoth(results.append)
    run_reactor(lambda: bool(results), 20)
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def summary(result: Any) -> list[tuple[int | None, int | None, bool]]:
    return [(s.exitCode, s.signal, s.stoppedAfterFailure) for s in result.stages]


def test_a_failing_last_stage_stops_the_endless_writers_before_it() -> None:
    result = pipeline([YES, ["cat"], FAIL])
    assert result.exitCode == 3 and not result.ok
    assert summary(result) == [(None, 15, True), (None, 15, True), (3, None, False)]


def test_a_failing_middle_stage_stops_those_before_and_lets_those_after_finish() -> None:
    result = pipeline([YES, FAIL, ["cat"]])
    assert result.exitCode == 3
    assert summary(result) == [(None, 15, True), (3, None, False), (0, None, False)]


def test_a_failing_first_stage_with_stop_all_stops_the_endless_stages_after_it() -> None:
    """``false | yes | cat`` never ends in a shell; ``stopAllOnFailure``
    ends it at the failure."""
    result = pipeline([FAIL, YES, ["cat"]], stopAllOnFailure=True)
    assert result.exitCode == 3
    assert summary(result) == [(3, None, False), (None, 15, True), (None, 15, True)]


@pytest.mark.parametrize("stopAll", [False, True])
def test_a_stage_ignoring_sigterm_is_killed_after_the_grace(stopAll: bool) -> None:
    result = pipeline([IGNORES_TERM, FAIL], stopAllOnFailure=stopAll)
    assert result.exitCode == 3
    assert summary(result) == [(None, 9, True), (3, None, False)]


def test_a_huge_output_is_whole_and_max_bytes_fails_without_a_truncated_result() -> None:
    huge = [PY, "-c", "import sys; sys.stdout.buffer.write(b'h' * (24 << 20))"]
    result = pipeline([huge, ["cat"]])
    assert result.ok and len(result.out) == 24 << 20
    with pytest.raises(OutputLimitExceeded, match=r"^cat: wrote more than 1048576 bytes"):
        pipeline([YES, ["cat"]], maxBytes=1 << 20)
    with pytest.raises(OutputLimitExceeded, match="maxBytes=0"):
        pipeline([YES], maxBytes=0)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_missing_program_at_any_position_raises_and_leaves_nothing(position: int) -> None:
    stages: list[list[str]] = [YES, ["cat"], ["cat"]]
    stages[position] = ["/nonexistent/program"]
    with pytest.raises(FileNotFoundError):
        getPipelineOutput(stages, env=None)
    # The stages started before it are killed and reaped: no_leaks checks.


def test_a_time_limit_with_a_stage_that_closed_its_output_stops_it() -> None:
    """A first stage that closes stdout and stderr and sleeps: the time
    limit still ends it (nothing to read does not mean ended)."""
    closer = [PY, "-c", "import os, time; os.close(1); os.close(2); time.sleep(60)"]
    result = pipeline([closer, ["cat"]], timeout=0.3)
    assert result.stages[0].timedOut and result.stages[0].signal == 15
    assert not result.ok
