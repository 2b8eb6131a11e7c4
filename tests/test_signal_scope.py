"""What ferroproc's own signals reach: only what is ours (architecture
decision 17). A group is signalled only when our child leads it, and never
after that child has been reaped (its id may be reused by then); a child that
joined another group is signalled alone. Every path that signals on its own
is covered: time limits, ``maxBytes``, a utility's timeout, a pipeline's stop,
kill-on-lost, the grace period's SIGKILL, asyncio's ``close()``; plus the
asyncio host's idle limit under back-pressure."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import textwrap
from asyncio.subprocess import PIPE
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from engine_support import Recorder
from helpers import CHILDREN, PY, run_reactor, wait_dead

import ferroproc.asyncio as fa
from ferroproc import _asynciotransport, reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessExitedAlready


async def _spawnOnce() -> None:
    await (await fa.create_subprocess_exec("true")).wait()


def settle_engines() -> None:
    """The asyncio host's engine lives as long as its thread: have one before
    and after each test (no_leaks calls this), so its fds are not counted."""
    if _asynciotransport._thread.driver is None:
        gc.collect()
        asyncio.run(_spawnOnce())


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=[pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")])
def run(request: pytest.FixtureRequest) -> Runner:
    return request.param  # type: ignore[no-any-return]


# -- a child that joined our group: the parent must survive ------------------------
#
# Each script is a parent that runs in a session of its own (so that a signal
# to its group cannot reach pytest); its child joins the parent's group and is
# then stopped by one of ferroproc's own mechanisms. It prints what it saw,
# then that it is still alive.

_REACTOR = """\
import os
from ferroproc import reactor, utils, pipeline
from ferroproc.protocol import ProcessProtocol
group = os.getpgrp()

def show(result):
    print(type(getattr(result, "value", result)).__name__)
    reactor.stop()
"""

_PARENTS = {
    "time limit": """\
class P(ProcessProtocol):
    def processEnded(self, reason):
        show(reason)
t = reactor.spawnProcess(P(), "sleep", ["sleep", "30"], env=None, processGroup=group, timeout=0.3)
assert t.pgid == group
""",
    "utility timeout": """\
utils.getProcessResult("sleep", ["30"], env=None, timeout=0.3, processGroup=group).addBoth(show)
""",
    "maxBytes": """\
utils.getProcessResult("yes", [], env=None, maxBytes=1000, processGroup=group).addBoth(show)
""",
    "pipeline stop": """\
pipeline.getPipelineOutput([["sleep", "30"], ["false"]], processGroup=group).addBoth(show)
""",
}

_EXPECTED = {
    "time limit": "ProcessTimedOut",
    "utility timeout": "ProcessResult",
    "maxBytes": "OutputLimitExceeded",
    "pipeline stop": "PipelineResult",
}


def _parent(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )


@pytest.mark.parametrize("how", list(_PARENTS))
def test_stopping_a_child_that_joined_our_group_leaves_us_alone(how: str) -> None:
    script = _REACTOR + _PARENTS[how] + "reactor.run(installSignalHandlers=False)\nprint('parent alive')\n"
    done = _parent(script)
    assert done.returncode == 0, f"the parent died ({done.returncode}): {done.stderr}"
    assert done.stdout.splitlines() == [_EXPECTED[how], "parent alive"], done.stderr


def test_an_asyncio_time_limit_on_a_child_that_joined_our_group_leaves_us_alone() -> None:
    script = """\
    import asyncio, os
    import ferroproc.asyncio as fa

    async def main():
        p = await fa.create_subprocess_exec("sleep", "30", process_group=os.getpgrp(), timeout=0.3)
        print(await p.wait())

    asyncio.run(main())
    print("parent alive")
    """
    done = _parent(script)
    assert done.returncode == 0, f"the parent died ({done.returncode}): {done.stderr}"
    assert done.stdout.splitlines() == [str(-signal.SIGTERM), "parent alive"], done.stderr


def test_signal_group_refuses_a_group_the_child_joined() -> None:
    leader = Recorder(close_stdin=False)
    lt = reactor.spawnProcess(leader, "cat", ["cat"], processGroup=True)
    proto = Recorder(close_stdin=False)
    t = reactor.spawnProcess(proto, "cat", ["cat"], processGroup=lt.pid)
    assert t.pgid == lt.pid, "the joined group is still reported"
    with pytest.raises(ValueError, match=f"joined process group {lt.pid}, which it does not lead"):
        t.signalGroup("TERM")
    t.closeStdin()
    lt.closeStdin()
    run_reactor(proto.ended)
    run_reactor(leader.ended)


# -- never after the leader's reap: the group id may have been reused --------------


def _group_with_id(pgid: int) -> subprocess.Popen[bytes] | None:
    """A process (of ours, not ferroproc's) leading a new group whose id is
    ``pgid``: a freed number reused, as the kernel may once the old group's
    leader has been reaped and the group emptied. None where the next pid
    cannot be chosen (``ns_last_pid`` needs root) or another process keeps
    taking it."""
    for _ in range(50):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pgid - 1))
        except OSError:
            return None
        victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
        if victim.pid == pgid:
            return victim
        victim.kill()
        victim.wait()
    return None


def _stopped_by_us(victim: subprocess.Popen[bytes]) -> int:
    """Stop ``victim`` with SIGTERM and return its status: -SIGKILL if a kill
    meant for the old group reached it first (a SIGKILL is acted on as soon
    as it is sent, so nothing else can come before it)."""
    victim.terminate()
    return victim.wait()


def test_kill_on_lost_after_the_reap_never_reaches_a_reused_group_id() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, "true", ["true"], processGroup=True, killGroupOnLost=True)
    pgid = t.pgid
    run_reactor(proto.ended)  # reaped; its group is empty, its id free
    victim = _group_with_id(pgid)
    if victim is None:
        pytest.skip("cannot choose the next pid here")
    try:
        t.loseConnection()
        with pytest.raises(ProcessExitedAlready):
            t.signalGroup("KILL")
    finally:
        status = _stopped_by_us(victim)
    assert status == -signal.SIGTERM, "a group whose leader was reaped was signalled"


def test_the_graces_sigkill_never_reaches_a_reused_group_id() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, "sleep", ["sleep", "30"], processGroup=True, timeout=0.2, killGrace=2)
    pgid = t.pgid
    run_reactor(proto.ended)  # SIGTERM ended it; reaped, its group empty
    victim = _group_with_id(pgid)
    if victim is None:
        pytest.skip("cannot choose the next pid here")
    try:
        graceOver: Deferred[None] = Deferred()
        reactor.callLater(2.5, graceOver.callback, None)
        run_reactor(graceOver)
    finally:
        status = _stopped_by_us(victim)
    assert status == -signal.SIGTERM, "the grace's SIGKILL went to a group whose leader was reaped"


# -- the asyncio host ---------------------------------------------------------------


def test_asyncio_close_kills_the_group_with_kill_group_on_lost(run: Runner) -> None:
    async def main() -> int:
        p = await fa.create_subprocess_exec(
            "sh", "-c", "sleep 60 & echo $!; wait", stdout=PIPE, start_new_session=True, kill_group_on_lost=True
        )
        assert p.stdout is not None
        grandchild = int(await p.stdout.readline())
        p._transport.close()  # type: ignore[attr-defined]
        await p.wait()
        return grandchild

    grandchild = run(main())
    try:
        assert wait_dead(grandchild), "close() left the group alive"
    finally:
        if not wait_dead(grandchild, 0):
            os.kill(grandchild, signal.SIGKILL)


def test_asyncio_idle_time_does_not_count_while_the_reader_stops(run: Runner) -> None:
    # The stream's small limit pauses reading; the reader stops for longer
    # than the idle limit, and the busy child blocks on the full pipe.
    size = 3_276_800
    bulk = str(CHILDREN / "ctl_bulk.py")

    async def main() -> tuple[int, int]:
        p = await fa.create_subprocess_exec(PY, bulk, str(size), stdout=PIPE, limit=4096, idle_timeout=1)
        assert p.stdout is not None
        first = await p.stdout.read(1)
        await asyncio.sleep(2.5)  # the consumer is busy elsewhere
        rest = await p.stdout.read()
        return len(first) + len(rest), await p.wait()

    assert run(main()) == (size, 0)
