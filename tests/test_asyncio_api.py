"""ferroproc.asyncio as asyncio users expect it (issue 22): its ``Process``
(asyncio's, plus what ferroproc knows of the child), its keywords typed and a
mistyped one named with the nearest, every error in the words of the call
the program wrote, and Popen's forms as ``subprocess.Popen`` takes them
(checked against ``subprocess.Popen`` itself, in the same test).

The transport contract, the loops and Popen's keywords at large are in
test_asyncio_host.py; CPython's own tests of asyncio's ``Process`` run on
ferroproc's in test_asyncio_suite.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, wait_dead
from test_asyncio_host import HAVE_UVLOOP, Runner, settle_engines

import ferroproc.asyncio as fa
from ferroproc import reactor
from ferroproc.error import ResourceUsage
from ferroproc.protocol import ProcessProtocol

__all__ = ["settle_engines"]  # the no_leaks fixture's hook (conftest.py)


@pytest.fixture(
    params=[
        pytest.param(asyncio.run, id="asyncio"),
        pytest.param(fa.run, id="ferroproc-loop"),
        pytest.param(
            "uvloop",
            id="uvloop",
            marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"),
        ),
    ]
)
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a coroutine to completion on a new loop: asyncio's, ferroproc's
    EventLoop, or uvloop's."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    return request.param  # type: ignore[no-any-return]


# -- types: what mypy --strict says of a program using the API ------------------------

USAGE = """
from __future__ import annotations

import asyncio
import signal
from asyncio.subprocess import PIPE
from typing import Literal, assert_type

import ferroproc.asyncio as fa
from ferroproc.error import ResourceUsage


async def main() -> None:
    p = await fa.create_subprocess_exec(
        "make", "-j4", stdout=PIPE, cwd="/tmp", env={"LANG": "C"}, umask=0o022,
        start_new_session=True, kill_group_on_exit=True, timeout=600, kill_grace=2.0,
        rlimits={"nofile": 1024}, cpu_affinity=[0], parent_death_signal="TERM",
    )
    assert_type(p, fa.Process)
    plain: asyncio.subprocess.Process = p
    out, _ = await plain.communicate()
    assert_type(out, bytes)
    assert_type(p.stdout, asyncio.StreamReader | None)
    assert_type(p.timed_out, fa.TimedOut | None)
    if p.timed_out is not None:
        assert_type(p.timed_out.kind, Literal["wall", "idle"])
        assert_type(p.timed_out.timeout, float)
        assert_type(p.timed_out.killed, bool)
    assert_type(p.resource_usage, ResourceUsage | None)
    assert_type(p.pgid, int | None)
    p.signal_group(signal.SIGTERM)
    p.signal_group("KILL")
    s = await fa.create_subprocess_shell("exit 3", idle_timeout=5.0, no_new_privileges=True, process_group=0)
    assert_type(await s.wait(), int)
    # Each of these must be rejected, with this error code (--strict's
    # warn_unused_ignores fails the check if one is accepted):
    await fa.create_subprocess_exec("make", kill_group_on_exti=True)  # type: ignore[call-arg]
    await fa.create_subprocess_exec("make", killGroupOnExit=True)  # type: ignore[call-arg]
    await fa.create_subprocess_exec("make", timeout="600")  # type: ignore[arg-type]
    await fa.create_subprocess_shell("make", cpu_affinity=0)  # type: ignore[arg-type]
    await fa.create_subprocess_exec("make", text=True)  # type: ignore[arg-type]
    p.signal_group(1.5)  # type: ignore[arg-type]
    p.timed_out = None  # type: ignore[misc]
"""


def test_the_asyncio_api_type_checks_as_a_program_uses_it(tmp_path: Path) -> None:
    """A program using ferroproc.asyncio, checked by ``mypy --strict``: the
    extra keywords are typed (a typo or a wrong type is an error), and the
    ``Process`` accessors have their types, with no private attribute."""
    pytest.importorskip("mypy")
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    # The ferroproc being tested, whatever is installed: its package's parent.
    package = Path(fa.__file__).resolve().parent.parent
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(usage),
        ],
        cwd=tmp_path,
        env=dict(os.environ, MYPYPATH=str(package)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- Process: asyncio's, plus what ferroproc knows ------------------------------------


def test_process_is_asyncios_and_tells_what_a_time_limit_did(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            "sleep", "30", stdout=PIPE, timeout=0.2, kill_grace=0, start_new_session=True
        )
        before = (p.timed_out, p.resource_usage, p.returncode)
        out, err = await p.communicate()
        return p, before, (out, err)

    p, before, output = run(main())
    assert isinstance(p, asyncio.subprocess.Process) and isinstance(p, fa.Process)
    assert before == (None, None, None)
    assert output == (b"", None)
    assert p.returncode == -signal.SIGKILL
    assert p.timed_out == fa.TimedOut("wall", 0.2, True)
    assert (p.timed_out.kind, p.timed_out.timeout, p.timed_out.killed) == ("wall", 0.2, True)
    assert isinstance(p.resource_usage, ResourceUsage) and p.resource_usage.maxRSS > 0
    assert p.pgid == p.pid


def test_a_child_in_our_group_that_ended_by_itself(run: Runner) -> None:
    async def main() -> fa.Process:
        p = await fa.create_subprocess_exec(PY, "-c", "sum(range(10**6))", timeout=30)
        await p.wait()
        return p

    p = run(main())
    assert (p.returncode, p.timed_out, p.pgid) == (0, None, None)
    assert p.resource_usage is not None and p.resource_usage.userTime + p.resource_usage.systemTime > 0


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_signal_group_reaches_a_grandchild_until_the_child_is_reaped(run: Runner) -> None:
    """The grandchild holds the pipe after the child's exit: the group is
    still the child's (it is not reaped yet), and ``signal_group`` reaches
    it. Once the child is reaped: ``ProcessLookupError``, asyncio's word."""
    script = "sleep 30 & echo $!; exit 3"

    async def main() -> Any:
        p = await fa.create_subprocess_shell(script, stdout=PIPE, start_new_session=True)
        assert p.stdout is not None
        grandchild = int(await p.stdout.readline())
        # The child's exit, seen without reaping it (the engine holds a
        # group leader until its pipes close).
        await asyncio.wait_for(asyncio.to_thread(os.waitid, os.P_PID, p.pid, os.WEXITED | os.WNOWAIT), 10)
        p.signal_group("KILL")
        rest = await p.stdout.read()
        await p.wait()
        with pytest.raises(ProcessLookupError):
            p.signal_group(signal.SIGTERM)
        return p, grandchild, rest

    p, grandchild, rest = run(main())
    assert p.returncode == 3 and rest == b""
    assert wait_dead(grandchild, 10.0), _state(grandchild)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"signal_group: the child leads no process group of its own \(create it with start_new_session=True"),
        ({"process_group": "ours"}, r"signal_group: the child leads no process group of its own \(it joined group \d+"),
    ],
)
def test_signal_group_without_a_group_of_its_own(run: Runner, kwargs: dict[str, Any], message: str) -> None:
    async def main() -> None:
        if kwargs.get("process_group") == "ours":
            kwargs["process_group"] = os.getpgid(0)
        p = await fa.create_subprocess_exec("sleep", "30", **kwargs)
        try:
            with pytest.raises(ValueError, match=message):
                p.signal_group("TERM")
        finally:
            p.kill()
            await p.wait()

    run(main())


def test_signal_group_names_an_unknown_signal_as_signal_group(run: Runner) -> None:
    async def main() -> None:
        p = await fa.create_subprocess_exec("sleep", "30", start_new_session=True)
        try:
            with pytest.raises(ValueError, match=r"^signal_group: unknown signal name 'NOPE'"):
                p.signal_group("NOPE")
        finally:
            p.kill()
            await p.wait()

    run(main())


def test_output_kept_before_the_stream_is_first_used(run: Runner) -> None:
    """``proc.stdout`` is made when first asked for: what came before (more
    than twice the limit, so reading paused meanwhile, as asyncio's reader
    pauses it) is all there, in order, then the rest."""
    size = 600_000
    src = f"import sys; sys.stdout.buffer.write(bytes(range(256)) * {size // 256}); sys.stdout.flush()"

    async def main() -> Any:
        p = await fa.create_subprocess_exec(PY, "-c", src, stdout=PIPE, limit=4096)
        # The child writes while nobody reads, until reading pauses.
        deadline = time.monotonic() + 10
        while p._protocol._sizes.get(1, 0) <= 8192 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        assert p.stdout is not None
        first = await p.stdout.readexactly(1000)
        rest = await p.stdout.read()
        return first + rest, await p.wait()

    data, code = run(main())
    assert code == 0 and data == bytes(range(256)) * (size // 256)


def test_communicate_after_a_read_and_with_input(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec(
            PY,
            "-c",
            "import sys; print('ready', flush=True); sys.stdout.write(sys.stdin.read())",
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
        )
        assert p.stdout is not None
        ready = await p.stdout.readline()
        out, err = await p.communicate(b"x" * 300_000)
        q = await fa.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE, stderr=STDOUT)
        echoed = await q.communicate(b"y" * 300_000)
        return ready, out, err, echoed

    ready, out, err, echoed = run(main())
    assert (ready, len(out), err) == (b"ready\n", 300_000, b"")
    assert echoed == (b"y" * 300_000, None)


def test_a_program_may_set_the_streams_as_on_asyncios(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec("echo", "hi", stdout=PIPE)
        reader = p.stdout
        p.stdout = None
        return reader, p.stdout, await p.communicate(), await reader.read() if reader else None

    reader, now, result, read = run(main())
    assert isinstance(reader, asyncio.StreamReader) and now is None
    assert result == (None, None) and read == b"hi\n"


def test_asyncios_own_function_on_ferroprocs_loop_gives_asyncios_process() -> None:
    """Deliberately: asyncio builds its ``Process`` by name, and its type
    says so to a type checker. The transport still tells what happened."""

    async def main() -> Any:
        p = await asyncio.create_subprocess_exec("sleep", "30", timeout=0.1, kill_grace=0)  # type: ignore[call-overload]
        await p.wait()
        return type(p), p._transport.get_extra_info("timed_out")

    cls, timedOut = fa.run(main())
    assert cls is asyncio.subprocess.Process
    assert timedOut == fa.TimedOut("wall", 0.1, True)


def test_preexec_fn_gives_ferroprocs_process_over_the_loops_own_child(run: Runner) -> None:
    async def main() -> Any:
        p = await fa.create_subprocess_exec("echo", "hi", stdout=PIPE, preexec_fn=lambda: None)
        out, _ = await p.communicate()
        return p, out

    p, out = run(main())
    assert isinstance(p, fa.Process) and out == b"hi\n" and p.returncode == 0
    assert (p.timed_out, p.resource_usage, p.pgid) == (None, None, None)
    with pytest.raises(ValueError, match="signal_group: the loop's own implementation started this child"):
        p.signal_group("TERM")


def test_creation_yields_to_the_loop_and_a_cancel_there_starts_no_child() -> None:
    """As asyncio's creation does, ours lets other tasks run (one loop turn);
    a task cancelled in it has started nothing."""
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async def main() -> Any:
        asyncio.get_running_loop().create_task(other())
        p = await fa.create_subprocess_exec("true")
        seen = list(ran)
        await p.wait()
        task = asyncio.get_running_loop().create_task(fa.create_subprocess_exec("sleep", "30"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(main()) == ["other"]


# -- a mistyped keyword ---------------------------------------------------------------


def _ferroLoopCall(name: str) -> Callable[..., Awaitable[Any]]:
    """A way in through ferroproc's loop: asyncio's own function, or the
    loop's method (with a protocol)."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if name.startswith("create_"):
            return await getattr(asyncio, name)(*args, **kwargs)
        return await getattr(loop, name)(asyncio.SubprocessProtocol, *args, **kwargs)

    return call


#: (how the call is made, the loop, the function the message must name).
WAYS_IN = [
    pytest.param(fa.create_subprocess_exec, asyncio.run, "create_subprocess_exec", id="fa.exec"),
    pytest.param(_ferroLoopCall("create_subprocess_exec"), fa.run, "create_subprocess_exec", id="asyncio.exec"),
    pytest.param(_ferroLoopCall("subprocess_exec"), fa.run, "subprocess_exec", id="loop.subprocess_exec"),
]


@pytest.mark.parametrize(
    ("call", "runner", "function", "typo", "nearest"),
    [
        pytest.param(
            fa.create_subprocess_exec,
            asyncio.run,
            "create_subprocess_exec",
            "kill_group_on_exti",
            "kill_group_on_exit",
            id="exec",
        ),
        pytest.param(
            fa.create_subprocess_exec,
            asyncio.run,
            "create_subprocess_exec",
            "killGroupOnExit",
            "kill_group_on_exit",
            id="camelCase",
        ),
        pytest.param(fa.create_subprocess_exec, asyncio.run, "create_subprocess_exec", "cdw", "cwd", id="cwd"),
        pytest.param(
            fa.create_subprocess_shell,
            asyncio.run,
            "create_subprocess_shell",
            "start_new_sesion",
            "start_new_session",
            id="shell",
        ),
        pytest.param(
            _ferroLoopCall("create_subprocess_exec"),
            fa.run,
            "create_subprocess_exec",
            "idle_timout",
            "idle_timeout",
            id="asyncio.exec",
        ),
        pytest.param(
            _ferroLoopCall("subprocess_shell"),
            fa.run,
            "subprocess_shell",
            "proces_group",
            "process_group",
            id="loop.subprocess_shell",
        ),
    ],
)
def test_a_mistyped_keyword_names_the_function_and_the_nearest_one(
    call: Callable[..., Awaitable[Any]], runner: Runner, function: str, typo: str, nearest: str
) -> None:
    async def main() -> None:
        await call("true", **{typo: True})

    with pytest.raises(TypeError) as info:
        runner(main())
    assert str(info.value) == f"{function}: unexpected keyword argument {typo!r} (did you mean {nearest!r}?)"


def test_a_keyword_near_none_is_named_alone() -> None:
    async def main() -> None:
        await fa.create_subprocess_exec("true", colour="red")  # type: ignore[call-arg]

    with pytest.raises(TypeError) as info:
        asyncio.run(main())
    assert str(info.value) == "create_subprocess_exec: unexpected keyword argument 'colour'"


def test_spawnprocess_names_the_nearest_option_too() -> None:
    with pytest.raises(TypeError) as info:
        reactor.spawnProcess(ProcessProtocol(), "true", ["true"], killGroupOnExti=True)  # type: ignore[call-arg]
    assert (
        str(info.value)
        == "spawnProcess: unexpected keyword argument 'killGroupOnExti' (did you mean 'killGroupOnExit'?)"
    )


# -- every error in the caller's words ------------------------------------------------

#: Words of spawnProcess (Twisted's) that an asyncio caller never wrote.
TWISTED_WORDS = re.compile(
    r"spawnProcess|childFDs|processGroup|newSession|killGroupOn|idleTimeout|killGrace|cpuAffinity"
    r"|parentDeathSignal|noNewPrivileges|usePTY|\bpath\b(?!-)|\buid\b|\bgid\b"
)


def _closedFd() -> int:
    """An fd number nothing holds (high enough that the loop the test makes
    does not take it)."""
    fd = 1000
    while True:
        try:
            os.fstat(fd)
        except OSError:
            return fd
        fd += 1


def _cases() -> list[Any]:
    """(program and arguments, keywords, exception, what the message says
    after ``<function>: ``): every check prepareSpawn and preparePopen make
    that an asyncio call can reach, and the engine's own failures."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    ngroups = os.sysconf("SC_NGROUPS_MAX")
    c = [
        # the program and its arguments
        (("tr\0ue",), {}, ValueError, "program contains a NUL byte"),
        (("",), {}, ValueError, "program must not be empty"),
        (("\ud800",), {}, ValueError, "program cannot be encoded to bytes"),
        ((3,), {}, TypeError, "program must be str, bytes or path-like, not int"),
        (("true", 3), {}, TypeError, "args[0] must be str, bytes or path-like, not int"),
        (("true", "a", "b\0"), {}, ValueError, "args[1] contains a NUL byte"),
        (("no-such-program-here",), {}, FileNotFoundError, 'executable "no-such-program-here" not found on PATH'),
        (("true",), {"executable": 3}, TypeError, "executable must be str, bytes or path-like"),
        (("true",), {"executable": "/no/such/program"}, FileNotFoundError, 'executable "/no/such/program" not found'),
        # env
        (("true",), {"env": [("A", "b")]}, TypeError, "env must be a dict"),
        (("true",), {"env": {1: "x"}}, TypeError, "env key 1 must be str or bytes, not int"),
        (("true",), {"env": {"A": 1}}, TypeError, "env['A'] must be str or bytes, not int"),
        (("true",), {"env": {"A=": "b"}}, ValueError, "env key 'A=' is not a valid variable name"),
        (("true",), {"env": {"A": "b\0"}}, ValueError, "env['A'] contains a NUL byte"),
        (("true",), {"env": {"A": "\ud800"}}, ValueError, "env['A'] cannot be encoded to bytes"),
        # cwd
        (("true",), {"cwd": 3}, TypeError, "cwd must be str, bytes or path-like, not int"),
        (("true",), {"cwd": ""}, FileNotFoundError, "cwd must not be empty"),
        (("true",), {"cwd": "a\0b"}, ValueError, "cwd contains a NUL byte"),
        (("true",), {"cwd": "/no/such/dir"}, FileNotFoundError, 'cwd: cannot change to directory "/no/such/dir"'),
        # stdio and pass_fds
        (("true",), {"stdin": 2**40}, ValueError, f"stdin: parent fd {2**40} is not a valid fd number"),
        (("true",), {"stdout": "closed"}, OSError, "stdout: parent fd {closed} is not open"),
        (("true",), {"stdin": -5}, ValueError, "stdin=-5 is not PIPE, STDOUT, DEVNULL or an fd"),
        (("true",), {"stderr": 1.5}, TypeError, "stderr must be PIPE, DEVNULL, an fd, a file object or None"),
        (("true",), {"stdout": STDOUT}, ValueError, "STDOUT can only be used for stderr, not stdout"),
        (("true",), {"pass_fds": ["x"]}, TypeError, "pass_fds: 'x' is not an fd"),
        (("true",), {"pass_fds": [-1]}, ValueError, "pass_fds: -1 is not an fd"),
        (
            ("true",),
            {"pass_fds": [soft + 5]},
            ValueError,
            f"pass_fds entry {soft + 5} is not below the open-file limit",
        ),
        (("true",), {"startupinfo": 1}, ValueError, "startupinfo is only supported on Windows platforms"),
        (("true",), {"creationflags": 4}, ValueError, "creationflags is only supported on Windows platforms"),
        (("true",), {"pipesize": 1.5}, TypeError, "pipesize must be an int, not float"),
        # asyncio's own checks
        (("true",), {"text": True}, ValueError, "text must be False"),
        (("true",), {"universal_newlines": True}, ValueError, "universal_newlines must be False"),
        (("true",), {"bufsize": 4096}, ValueError, "bufsize must be 0"),
        (("true",), {"encoding": "utf-8"}, ValueError, "encoding must be None"),
        (("true",), {"errors": "strict"}, ValueError, "errors must be None"),
        (("true",), {"shell": True}, ValueError, "shell must be False"),
        # credentials
        (("true",), {"user": 1.5}, TypeError, "user must be an int or a str, not float"),
        (("true",), {"user": -1}, ValueError, "user ID cannot be negative, got -1"),
        (("true",), {"user": "no-such-user-here"}, KeyError, "user 'no-such-user-here' not found"),
        (("true",), {"group": 2**33}, ValueError, f"group ID {2**33} is out of range"),
        (("true",), {"group": "no-such-group-here"}, KeyError, "group 'no-such-group-here' not found"),
        (("true",), {"extra_groups": "abc"}, ValueError, "extra_groups must be a list, not a string"),
        (("true",), {"extra_groups": 3}, TypeError, "extra_groups must be a list, not int"),
        (("true",), {"extra_groups": [1.5]}, TypeError, "extra_groups entry must be an int or a str, not float"),
        (("true",), {"extra_groups": [-1]}, ValueError, "extra_groups: group ID cannot be negative, got -1"),
        (("true",), {"extra_groups": list(range(ngroups + 1))}, ValueError, "extra_groups: too many extra_groups"),
        (("true",), {"umask": 1.5}, TypeError, "umask must be an int, not float"),
        (("true",), {"umask": 2**40}, OverflowError, f"umask {2**40} is out of range"),
        # sessions and groups
        (("true",), {"process_group": 1.5}, TypeError, "process_group must be an int, not float"),
        (
            ("true",),
            {"start_new_session": True, "process_group": 5},
            ValueError,
            "start_new_session and process_group=5 exclude each other",
        ),
        (
            ("true",),
            {"process_group": 1},
            PermissionError,
            "cannot set the session or process group (start_new_session, process_group)",
        ),
        (("true",), {"kill_group_on_exit": 1}, TypeError, "kill_group_on_exit must be a bool, not int"),
        (
            ("true",),
            {"kill_group_on_exit": True},
            ValueError,
            "kill_group_on_exit needs start_new_session=True or process_group=0 (a group of its own)",
        ),
        (
            ("true",),
            {"kill_group_on_lost": True, "process_group": "ours"},
            ValueError,
            "kill_group_on_lost needs start_new_session=True or process_group=0",
        ),
        # time limits
        (("true",), {"timeout": "x"}, ValueError, "timeout must be a finite number of seconds, not 'x'"),
        (("true",), {"timeout": 0}, ValueError, "timeout must be positive, not 0"),
        (("true",), {"idle_timeout": -1}, ValueError, "idle_timeout must be positive, not -1"),
        (("true",), {"kill_grace": -1}, ValueError, "kill_grace must be >= 0, not -1"),
        # limits and hygiene
        (("true",), {"rlimits": 3}, TypeError, "rlimits must be a dict, not int"),
        (("true",), {"rlimits": {"nope": 1}}, ValueError, "rlimits: unknown resource 'nope'"),
        (("true",), {"rlimits": {"nofile": "x"}}, ValueError, "rlimits['nofile'] must be an int >= 0"),
        (
            ("true",),
            {"rlimits": {"nofile": (10, 5)}},
            ValueError,
            "rlimits['nofile']: soft limit 10 is above the hard limit 5",
        ),
        (("true",), {"rlimits": {"nofile": 2**40}}, OSError, "rlimits: cannot set RLIMIT_NOFILE"),
        (("true",), {"nice": 50}, ValueError, "nice must be an int from -20 to 19, not 50"),
        (("true",), {"cpu_affinity": 3}, TypeError, "cpu_affinity must be an iterable of CPU numbers, not int"),
        (("true",), {"cpu_affinity": [-1]}, ValueError, "cpu_affinity must name CPUs 0 to 1023"),
        (("true",), {"parent_death_signal": "NOPE"}, ValueError, "parent_death_signal: unknown signal name 'NOPE'"),
        (("true",), {"parent_death_signal": 0}, ValueError, "parent_death_signal: 0 is not a signal"),
        (
            ("true",),
            {"parent_death_signal": True},
            TypeError,
            "parent_death_signal: signal must be a name or an int, not bool",
        ),
        (("true",), {"no_new_privileges": 1}, TypeError, "no_new_privileges must be a bool, not int"),
        (("true",), {"cgroup": 3}, TypeError, "cgroup must be str, bytes or path-like, not int"),
        (("true",), {"cgroup": "/no/such/cgroup"}, ValueError, "cgroup '/no/such/cgroup' is not a directory"),
        (("true",), {"cgroup": "/"}, ValueError, "cgroup '/' is not a cgroup v2 directory"),
    ]
    if (os.cpu_count() or 1) < 1023:
        c.append((("true",), {"cpu_affinity": [1022]}, OSError, "cannot set the child's cpu_affinity"))
    if os.geteuid() != 0:
        c.append((("true",), {"nice": -20}, PermissionError, "cannot set the child's nice value"))
        c.append((("true",), {"user": 0}, PermissionError, "cannot switch to user=0 group=unchanged"))
    return [pytest.param(*case, id=f"{next(iter(case[1]), 'args')}-{n}") for n, case in enumerate(c)]


@pytest.mark.parametrize(("args", "kwargs", "error", "says"), _cases())
@pytest.mark.parametrize(("call", "runner", "function"), WAYS_IN)
def test_every_error_speaks_the_callers_words(
    call: Callable[..., Awaitable[Any]],
    runner: Runner,
    function: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[BaseException],
    says: str,
) -> None:
    """Each error raised for an asyncio call names the function the program
    called and the keywords as it wrote them (never ``spawnProcess``,
    ``childFDs``, ``newSession``, ``killGroupOnExit``...)."""
    kwargs = dict(kwargs)
    closed = _closedFd()
    for key, value in kwargs.items():
        if value == "closed":
            kwargs[key] = closed
        elif value == "ours":
            kwargs[key] = os.getpgid(0)
    says = says.format(closed=closed)

    async def main() -> None:
        await call(*args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(error) as info:
            runner(main())
    message = str(info.value.args[0] if isinstance(info.value, KeyError) else info.value)
    if isinstance(info.value, OSError) and info.value.strerror:
        message = info.value.strerror
    assert message.startswith(f"{function}: "), message
    assert says in message, message
    assert not TWISTED_WORDS.search(message), message


@pytest.mark.parametrize(
    ("runner", "function"),
    [(asyncio.run, "create_subprocess_shell"), (fa.run, "create_subprocess_shell")],
)
def test_the_shells_command_is_cmd(runner: Runner, function: str) -> None:
    create = fa.create_subprocess_shell if runner is asyncio.run else asyncio.create_subprocess_shell

    async def main() -> None:
        await create("echo a\0b")

    with pytest.raises(ValueError) as info:
        runner(main())
    assert str(info.value).startswith(f"{function}: cmd contains a NUL byte"), info.value


# -- Popen's forms, as subprocess.Popen takes them -------------------------------------


REPORT = textwrap.dedent(
    """
    import os, sys
    def where(fd):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    print(where(0), oct(os.umask(0)), where(int(sys.argv[1])) if len(sys.argv) > 1 else None, file=sys.stderr)
    """
)


def _outcome(f: Callable[[], str]) -> tuple[str, str]:
    try:
        return ("ok", f())
    except Exception as e:  # noqa: BLE001 - the outcome compared
        return (type(e).__name__, "")


def _popen(args: list[str], kwargs: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, **kwargs)
    _, err = proc.communicate(timeout=30)
    return err.decode()


def _ours(args: list[str], kwargs: dict[str, Any]) -> str:
    async def main() -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = await fa.create_subprocess_exec(*args, stderr=PIPE, **kwargs)
        return (await p.communicate())[1]

    return asyncio.run(main()).decode()


#: Popen on 3.10 leaves its stderr pipe open when it refuses these arguments
#: after making it (not ferroproc's; 3.11 checks them first).
_POPEN_310_LEAKS = (
    [pytest.mark.allow_leaks("Popen 3.10 leaks its pipe on this refusal")] if sys.version_info < (3, 11) else []
)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"stdin": False}, id="stdin=False"),
        pytest.param({"stdin": True}, id="stdin=True"),
        pytest.param({"umask": 0o7022}, id="umask=0o7022"),
        pytest.param({"umask": 0o1777}, id="umask=0o1777"),
        pytest.param({"umask": -5}, id="umask=-5"),
        pytest.param({"extra_groups": "many"}, id="extra_groups-over-NGROUPS_MAX"),
        pytest.param({"extra_groups": [-1]}, id="extra_groups-negative", marks=_POPEN_310_LEAKS),
        pytest.param({"extra_groups": "abc"}, id="extra_groups-a-string", marks=_POPEN_310_LEAKS),
        pytest.param({"user": -1}, id="user-negative", marks=_POPEN_310_LEAKS),
        pytest.param({"pass_fds": "one", "close_fds": False}, id="pass_fds-overrides-close_fds"),
    ],
)
def test_popens_forms_as_popen_takes_them(kwargs: dict[str, Any]) -> None:
    """The same call through ``subprocess.Popen`` and through
    ``create_subprocess_exec``: the child sees the same (its stdin, its
    umask, which fds it has), or both refuse it with the same exception."""
    kwargs = dict(kwargs)
    if kwargs.get("extra_groups") == "many":
        kwargs["extra_groups"] = list(range(os.sysconf("SC_NGROUPS_MAX") + 1))
    args = [PY, "-c", REPORT]
    opened: list[int] = []
    try:
        if kwargs.get("pass_fds") == "one":
            # An inheritable fd not passed: Popen closes it (pass_fds forces
            # close_fds, with a RuntimeWarning), whatever close_fds says.
            passed, other = os.pipe()
            opened += [passed, other]
            os.set_inheritable(other, True)
            kwargs["pass_fds"] = [passed]
            args.append(str(other))
        popen = _outcome(lambda: _popen(args, kwargs))
        ours = _outcome(lambda: _ours(args, kwargs))
    finally:
        for fd in opened:
            os.close(fd)
    assert ours == popen
    assert popen[0] != "ok" or popen[1].strip(), popen


def test_pass_fds_overriding_close_fds_warns_as_popen_does() -> None:
    r, w = os.pipe()

    async def main() -> None:
        p = await fa.create_subprocess_exec("true", pass_fds=[w], close_fds=False)
        await p.wait()

    try:
        with pytest.warns(RuntimeWarning, match="pass_fds overriding close_fds"):
            asyncio.run(main())
    finally:
        os.close(r)
        os.close(w)
