"""ferroproc.asyncio under attack, as an outside adversarial suite would try
it: cancellation at every await point (creation, ``communicate``, ``wait``,
``drain``) on each loop, ``signal_group`` and the accessors around the
exit, bad keyword types and values, Popen's odd forms.

The witness of "nothing left" is the process table (the conftest's
``no_leaks``: no child of ours, running or zombie, no fd) and the loop's
exception handler (no "exception was never retrieved", no callback error).
Every coroutine runs under ``asyncio.wait_for``: a hang fails the test.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import tempfile
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from helpers import PY, alive, wait_dead
from test_asyncio_host import HAVE_UVLOOP, settle_engines

import ferroproc.asyncio as fa

__all__ = ["settle_engines"]  # the no_leaks fixture's hook (conftest.py)

Runner = Callable[[Coroutine[Any, Any, Any]], Any]

#: A child that reads all its input, then writes 4 MiB: every await of
#: communicate() has work in flight when it is cancelled.
BUSY = [PY, "-c", "import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(b'x' * (4 << 20))"]


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("ferroproc", id="ferroproc-loop"),
        pytest.param(
            "uvloop", id="uvloop", marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")
        ),
    ]
)
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a coroutine on a new loop of the kind, with a guard against a
    hang, and fails the test on anything the loop's exception handler got
    (an exception never retrieved, a callback's error)."""
    if request.param == "uvloop":
        import uvloop

        base: Runner = uvloop.run
    elif request.param == "ferroproc":
        base = fa.run
    else:
        base = asyncio.run

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        errors: list[dict[str, Any]] = []

        async def guarded() -> Any:
            asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
            try:
                return await asyncio.wait_for(coro, 30)
            finally:
                # Futures dropped by the test report "never retrieved" when
                # collected: collect them while the handler is ours.
                gc.collect()
                await asyncio.sleep(0)

        result = base(guarded())
        if sys.version_info < (3, 11):
            # asyncio 3.10's streams keep one drain waiter and, when the pipe
            # breaks, set its error on a waiter nobody awaits any more (asyncio's
            # own loop and Process show it too); 3.11 reworked the waiters.
            errors = [e for e in errors if not isinstance(e.get("exception"), (BrokenPipeError, ConnectionResetError))]
        assert not errors, f"the loop's exception handler got: {errors}"
        return result

    return runner


def _create(kind: str) -> Callable[..., Awaitable[Any]]:
    """ferroproc's function, or asyncio's (through the loop's own
    subprocess_exec: on ferroproc's loop, the engine again)."""
    return fa.create_subprocess_exec if kind == "ferroproc" else asyncio.create_subprocess_exec


# -- cancellation at every await point ------------------------------------------------


@pytest.mark.parametrize("kind", ["ferroproc", "asyncio"])
def test_cancelling_creation_and_communicate_at_any_turn_leaves_nothing(run: Runner, kind: str) -> None:
    """A task that creates a busy child and communicates with it (a 1 MiB
    input, 4 MiB output) is cancelled after 0, 1, 2 ... loop turns: at the
    creation, at each await inside communicate(). Its ``finally`` kills
    what was created; nothing is left, nothing is logged."""
    create = _create(kind)

    async def body(started: list[Any]) -> None:
        p = await create(*BUSY, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        started.append(p)
        try:
            await p.communicate(b"y" * (1 << 20))
        finally:
            if p.returncode is None:
                p.kill()
            await p.wait()

    async def main() -> None:
        for turns in range(0, 24, 2):
            started: list[Any] = []
            task = asyncio.ensure_future(body(started))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            for p in started:
                assert p.returncode is not None
                assert not alive(p.pid)

    run(main())


def test_wait_for_timeouts_on_wait_drain_and_communicate_leave_the_child_usable(run: Runner) -> None:
    """``asyncio.wait_for`` timing out ``wait()``, ``stdin.drain()`` (10 MB
    to a child that never reads) and ``communicate()`` cancels only the
    await: the child still runs, can be killed and waited for."""

    async def main() -> None:
        p = await fa.create_subprocess_exec("sleep", "30", stdin=PIPE, stdout=PIPE)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.wait(), 0.05)
        assert p.stdin is not None
        p.stdin.write(b"z" * 10_000_000)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.stdin.drain(), 0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.communicate(), 0.05)
        assert p.returncode is None and alive(p.pid)
        p.kill()
        assert await p.wait() == -9
        # Everything after the exit answers at once.
        assert await p.wait() == -9

    run(main())


def test_cancelling_one_of_several_waiters_leaves_the_others(run: Runner) -> None:
    """Three tasks wait for one child; one is cancelled; the other two get
    the return code."""

    async def main() -> None:
        p = await fa.create_subprocess_exec(PY, "-c", "import sys; sys.stdin.read(); sys.exit(7)", stdin=PIPE)
        waiters = [asyncio.ensure_future(p.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[1].cancel()
        assert p.stdin is not None
        p.stdin.close()
        done = await asyncio.gather(*waiters, return_exceptions=True)
        assert done[0] == done[2] == 7
        assert isinstance(done[1], asyncio.CancelledError)

    run(main())


# -- signal_group and the accessors around the exit ------------------------------------


def test_signal_group_after_the_exit_reaches_a_grandchild_holding_the_pipe(run: Runner) -> None:
    """The child exits leaving a grandchild (in its group) that holds
    stdout: ``signal_group`` still reaches it (the leader is not reaped while
    its pipe is open); once all is reaped, ``ProcessLookupError``."""

    async def main() -> None:
        p = await fa.create_subprocess_shell("sleep 60 & echo $!", start_new_session=True, stdout=PIPE)
        assert p.stdout is not None
        grandchild = int(await p.stdout.readline())
        try:
            # The exit, seen without wait() (which waits for the pipes too).
            for _ in range(2000):
                if p.returncode is not None:
                    break
                await asyncio.sleep(0.005)
            assert p.returncode == 0
            assert p.pgid == p.pid
            assert p.resource_usage is not None and p.timed_out is None
            p.signal_group("KILL")
            assert await p.stdout.read() == b""
            assert await p.wait() == 0
            with pytest.raises(ProcessLookupError):
                p.signal_group("KILL")
            with pytest.raises(ProcessLookupError):
                p.send_signal(0)
        finally:
            if alive(grandchild):
                os.kill(grandchild, 9)
        assert wait_dead(grandchild, 10)

    run(main())


def test_accessors_before_and_after_the_exit(run: Runner) -> None:
    """``timed_out`` and ``resource_usage`` are None until the exit, then
    say what happened; ``pgid`` is the group (or None) throughout."""

    async def main() -> None:
        p = await fa.create_subprocess_exec("sleep", "30", timeout=0.2, kill_grace=0.2, process_group=0)
        assert (p.timed_out, p.resource_usage, p.pgid) == (None, None, p.pid)
        assert await p.wait() == -15
        assert p.timed_out is not None and p.timed_out.kind == "wall" and not p.timed_out.killed
        assert p.resource_usage is not None and p.pgid == p.pid
        q = await fa.create_subprocess_exec("true")
        assert q.pgid is None
        assert await q.wait() == 0
        assert q.timed_out is None and q.resource_usage is not None and q.pgid is None
        with pytest.raises(ValueError, match=r"^signal_group: the child leads no process group"):
            q.signal_group("TERM")

    run(main())


@pytest.mark.parametrize(
    ("signal", "error", "message"),
    [
        (1.5, TypeError, "^signal_group: signal must be a name or an int, not float$"),
        (None, TypeError, "^signal_group: signal must be a name or an int, not NoneType$"),
        (b"TERM", TypeError, "^signal_group: signal must be a name or an int, not bytes$"),
        (True, TypeError, "^signal_group: signal must be a name or an int, not bool$"),
        (-1, ValueError, "^signal_group: -1 is not a signal number$"),
        (2**70, ValueError, f"^signal_group: {2**70} is not a signal number$"),
        ("NOPE", ValueError, "^signal_group: unknown signal name 'NOPE'$"),
    ],
)
def test_bad_signals_are_named_in_the_callers_words(run: Runner, signal: Any, error: type, message: str) -> None:
    """``signal_group``'s and ``send_signal``'s errors name the method the
    program called (not the engine's signalGroup/signalProcess) and the
    value it gave (not a clamped one); the child is not signalled."""

    async def main() -> None:
        p = await fa.create_subprocess_exec("sleep", "30", start_new_session=True)
        try:
            with pytest.raises(error, match=message):
                p.signal_group(signal)
            with pytest.raises(error, match=message.replace("signal_group", "send_signal")):
                p.send_signal(signal)
            assert p.returncode is None and alive(p.pid)
        finally:
            p.kill()
            await p.wait()

    run(main())


# -- bad keywords: a clear error naming the keyword, before any child ------------------


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"process_group": 2**40}, OverflowError, "process_group 1099511627776 is out of range"),
        ({"process_group": 2**31}, OverflowError, "process_group 2147483648 is out of range"),
        ({"process_group": "0"}, TypeError, "process_group must be an int, not str"),
        ({"pipesize": 2**40, "stdout": PIPE}, OverflowError, "pipesize 1099511627776 is out of range"),
        ({"pipesize": "x"}, TypeError, "pipesize must be an int"),
        ({"pass_fds": 5}, TypeError, "pass_fds must be a collection of fds, not int"),
        ({"pass_fds": None}, TypeError, "pass_fds must be a collection of fds, not NoneType"),
        ({"pass_fds": [-1]}, ValueError, "pass_fds: -1 is not an fd"),
        ({"pass_fds": [99_999_999]}, ValueError, "pass_fds entry 99999999"),
        ({"stdout": io.StringIO()}, io.UnsupportedOperation, "stdout: fileno"),
        ({"stdin": io.BytesIO()}, io.UnsupportedOperation, "stdin: fileno"),
        ({"stdin": 2**70}, ValueError, "stdin: parent fd"),
        ({"stdin": -5}, ValueError, "stdin=-5 is not PIPE"),
        ({"stdout": 3.5}, TypeError, "stdout must be PIPE, DEVNULL, an fd"),
        ({"cwd": 3.5}, TypeError, "cwd must be str, bytes or path-like"),
        ({"env": {"A=B": "x"}}, ValueError, "env key 'A=B' is not a valid variable name"),
        ({"env": {1: "x"}}, TypeError, "env key 1 must be str or bytes"),
        ({"env": [("A", "B")]}, TypeError, "env must be a dict"),
        ({"user": 2**40}, ValueError, "user ID 1099511627776 is out of range"),
        ({"umask": 2**70}, OverflowError, "umask"),
        ({"timeout": float("nan")}, ValueError, "timeout must be a finite number"),
        ({"kill_grace": -1}, ValueError, "kill_grace must be >= 0"),
        ({"rlimits": {"nofile": (10, 5)}}, ValueError, r"rlimits\['nofile'\]: soft limit 10 is above"),
        ({"cpu_affinity": [9999]}, ValueError, "cpu_affinity must name CPUs"),
        ({"parent_death_signal": 2**70}, ValueError, f"parent_death_signal: {2**70} is not a signal number"),
        ({"kill_group_on_exit": True}, ValueError, "kill_group_on_exit needs start_new_session=True"),
        ({"limit": 0}, ValueError, "limit must be an int > 0"),
        ({"text": True}, ValueError, "text must be False"),
        ({"kill_group_on_exti": True}, TypeError, "kill_group_on_exit"),
    ],
)
def test_a_bad_keyword_is_a_clear_error_naming_it(
    run: Runner, keywords: dict[str, Any], error: type, message: str
) -> None:
    """Each bad keyword raises its exception, worded with the function the
    program called and the keyword as it wrote it; no child is started (the
    conftest checks), and the next call works."""

    async def main() -> None:
        for function, first in ((fa.create_subprocess_exec, "true"), (fa.create_subprocess_shell, "true")):
            name = function.__name__
            with pytest.raises(error, match=f"^{name}: .*{message}") as info:
                await function(first, **keywords)
            assert "failed to extract" not in str(info.value)
        assert await (await fa.create_subprocess_exec("true")).wait() == 0

    run(main())


def test_a_closed_file_object_names_its_stdio_argument(run: Runner) -> None:
    """A closed file object as stdin: Popen's ValueError, saying which
    argument it was."""

    async def main() -> None:
        f = tempfile.TemporaryFile()
        f.close()
        with pytest.raises(ValueError, match=r"^create_subprocess_exec: stdin: I/O operation on closed file"):
            await fa.create_subprocess_exec("cat", stdin=f)

    run(main())


def test_processgroup_past_a_pid_is_named_by_spawnprocess() -> None:
    """The same check in spawnProcess's words (it was the bindings'
    "failed to extract field SpawnArgs.process_group"): a ValueError, as
    spawnProcess's other range checks, which the jobs runner names per job."""
    from ferroproc import reactor
    from ferroproc.protocol import ProcessProtocol

    with pytest.raises(
        ValueError, match=r"^spawnProcess: processGroup must be True, False or a process group id, not 1099511627776$"
    ):
        reactor.spawnProcess(ProcessProtocol(), "true", ["true"], processGroup=2**40)


# -- Popen's odd forms ----------------------------------------------------------------


def test_popen_forms_bool_fds_file_objects_and_repeated_pass_fds(run: Runner) -> None:
    """``stdin=False`` is fd 0 and ``stdout=True`` fd 1 (bools are ints, as
    Popen takes them); a file object gives its fd; ``pass_fds`` with one fd
    three times and a set pass it once; a closed fd is refused by name."""

    async def main() -> None:
        with tempfile.TemporaryFile() as f:
            f.write(b"data")
            f.seek(0)
            p = await fa.create_subprocess_exec("cat", stdin=f, stdout=PIPE)
            assert await p.communicate() == (b"data", None)
        p = await fa.create_subprocess_exec("true", stdin=False, stdout=True, stderr=DEVNULL)
        assert await p.wait() == 0
        r, w = os.pipe()
        try:
            code = f"import os; os.write({w}, b'x')"
            for fds in ([w, w, w], {w}, (x for x in [w])):
                p = await fa.create_subprocess_exec(PY, "-c", code, pass_fds=fds)
                assert await p.wait() == 0
                assert os.read(r, 10) == b"x"
        finally:
            os.close(r)
            os.close(w)
        with pytest.raises(OSError, match=f"create_subprocess_exec: pass_fds entry {w}: parent fd {w} is not open"):
            await fa.create_subprocess_exec("true", pass_fds=[w])
        with pytest.raises(OSError, match=f"create_subprocess_exec: stdin: parent fd {r} is not open"):
            await fa.create_subprocess_exec("true", stdin=r)

    run(main())


def test_program_errors_are_oserrors_naming_the_program(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(PermissionError):
            await fa.create_subprocess_exec("/etc/passwd")
        with pytest.raises(FileNotFoundError):
            await fa.create_subprocess_exec("/nonexistent/program")
        with pytest.raises(ValueError, match="program must not be empty"):
            await fa.create_subprocess_exec("")
        with pytest.raises(ValueError, match="cmd contains a NUL byte"):
            await fa.create_subprocess_shell("a\0b")
        assert await (await fa.create_subprocess_shell("exit 3")).wait() == 3

    run(main())


def test_a_second_communicate_while_one_waits_fails_as_asyncios(run: Runner) -> None:
    """Two concurrent ``communicate()`` calls: the first gets the output,
    the second fails with RuntimeError as asyncio's does (it returned empty
    output, its input silently dropped)."""

    async def main() -> None:
        code = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
        p = await fa.create_subprocess_exec(PY, "-c", code, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        first, second = await asyncio.gather(p.communicate(b"abc"), p.communicate(b"def"), return_exceptions=True)
        assert first == (b"abc", b"")
        assert isinstance(second, RuntimeError), second
        assert "another coroutine is already waiting" in str(second)
        # Once the first is done, another one finds the output at its end, as asyncio's.
        assert await p.communicate() == (b"", b"")

    run(main())


@pytest.mark.parametrize("keyword", ["timeout", "kill_group_on_exit", "nice", "kill_group_on_exti"])
def test_ferroprocs_keywords_with_preexec_fn_are_named(run: Runner, keyword: str) -> None:
    """``preexec_fn`` goes through the loop's own implementation, which
    knows none of ferroproc's keywords: the error names the function the
    program called and says why (it was Popen's "unexpected keyword
    argument"); a misspelt one is named with the nearest, as without
    preexec_fn. No child is started."""

    async def main() -> None:
        value: Any = True if keyword.startswith("kill") else 5
        expected = (
            f"^create_subprocess_exec: {keyword} cannot be used with preexec_fn"
            if keyword != "kill_group_on_exti"
            else r"did you mean 'kill_group_on_exit'\?"
        )
        options: dict[str, Any] = {keyword: value, "start_new_session": True}
        with pytest.raises(TypeError, match=expected):
            await fa.create_subprocess_exec("true", preexec_fn=lambda: None, **options)
        with pytest.raises(TypeError, match=expected.replace("subprocess_exec", "subprocess_shell")):
            await fa.create_subprocess_shell("true", preexec_fn=lambda: None, **options)

    run(main())
