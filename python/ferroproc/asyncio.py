"""ferroproc's engine under asyncio: spawn children from any asyncio program.

Three ways in, from least to most change to a program:

- **Any running loop** (asyncio's own, uvloop...):
  :func:`create_subprocess_exec` and :func:`create_subprocess_shell` take
  the arguments of asyncio's functions of the same names (and ferroproc's
  process control, :class:`SubprocessOptions`) and return a
  :class:`Process`: asyncio's ``Process`` (a subclass: ``isinstance`` checks
  for ``asyncio.subprocess.Process`` hold) plus what ferroproc knows of the
  child: :attr:`Process.timed_out`, :attr:`Process.resource_usage`,
  :attr:`Process.pgid`, :meth:`Process.signal_group`. The child is started
  and watched by ferroproc's engine, which the running loop drives (one fd
  in its poll: no thread, no child watcher, no SIGCHLD handler).
- **ferroproc's event loop**: :func:`new_event_loop` (and
  :class:`EventLoop`, :class:`EventLoopPolicy`, :func:`run`, as uvloop names
  them) is asyncio's default loop whose ``subprocess_exec`` and
  ``subprocess_shell`` use the engine, so that
  ``asyncio.create_subprocess_*``, ``loop.subprocess_exec`` with any
  ``SubprocessProtocol`` and libraries built on them (anyio's
  ``run_process``...) get it unchanged::

      asyncio.run(main(), loop_factory=ferroproc.asyncio.new_event_loop)  # 3.12+
      with asyncio.Runner(loop_factory=ferroproc.asyncio.new_event_loop) as runner:  # 3.11+
          runner.run(main())
      ferroproc.asyncio.run(main())  # any version

  ``asyncio.create_subprocess_exec`` still returns asyncio's own
  ``Process`` there (asyncio builds it; its type says so to a type
  checker): use this module's function for ferroproc's accessors. The
  transport's ``get_extra_info`` gives them to code that only holds the
  transport: ``"ferroproc"`` (the engine's transport: ``signalGroup``,
  ``pgid``, ``resourceUsage``) and, once the child has exited,
  ``"timed_out"`` (None, or a :class:`TimedOut`).
- **Twisted-style code**: ``ferroproc.reactor.spawnProcess`` and the
  ``ferroproc.utils`` functions work inside a running loop without running
  the reactor (their Deferreds can be awaited).

Popen's keywords are honoured natively, in Popen's forms:
``stdin``/``stdout``/``stderr`` as ``PIPE``, ``DEVNULL``, ``STDOUT``, an fd
(a ``bool`` is one: ``stdin=False`` is fd 0), a file object or ``None``;
``cwd``, ``env``, ``executable``, ``start_new_session``, ``process_group``,
``user``, ``group``, ``extra_groups`` (at most ``NGROUPS_MAX``), ``umask``
(any int: the kernel keeps its 0o777 bits; negative leaves ours),
``pass_fds``, ``close_fds``, ``restore_signals``, ``pipesize``.
``preexec_fn`` (a Python function run in a forked child) cannot be: such a
call goes through the loop's own implementation, and works as it does
there. Every error names the function the program called and the keywords
as it wrote them (``create_subprocess_exec: kill_group_on_exit needs
start_new_session=True or process_group=0``); an unknown keyword names the
nearest one.

Differences from asyncio's own subprocess transport: ``send_signal`` raises
``ProcessLookupError`` as soon as the child's exit is known (it can never
signal a reused pid); ``get_extra_info("subprocess")`` is None (there is no
``Popen``); a child given other credentials (``user``, ``group``,
``extra_groups``) starts a session of its own unless ``process_group`` says
otherwise, so that it cannot reach a privileged parent's terminal (TIOCSTI).
"""

from __future__ import annotations

import asyncio
import os
import sys
import types
from asyncio import streams
from asyncio.subprocess import SubprocessStreamProtocol
from collections.abc import Callable, Collection, Coroutine, Generator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, TypeVar

from ferroproc._asynciostreams import StreamProtocol
from ferroproc._asynciotransport import (
    SubprocessTransport,
    TimedOut,
    closeEngineOf,
    loopCaller,
    makeTransport,
    startTransport,
)
from ferroproc.error import ProcessExitedAlready, ResourceUsage

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "Process",
    "SubprocessOptions",
    "TimedOut",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "new_event_loop",
    "run",
]

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: A program, an argument or a directory, as asyncio takes them.
_Path: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
#: What ``stdin``/``stdout``/``stderr`` take: ``PIPE``, ``DEVNULL``,
#: ``STDOUT`` (stderr only), an fd, a file object, or None (ours).
_Stdio: TypeAlias = int | IO[Any] | None

#: 3.12+ ``communicate()`` closes a piped stdin even without input.
_COMMUNICATE_CLOSES_STDIN = sys.version_info >= (3, 12)


class SubprocessOptions(TypedDict, total=False):
    """Every keyword :func:`create_subprocess_exec` and
    :func:`create_subprocess_shell` take besides ``stdin``, ``stdout``,
    ``stderr`` and ``limit``: Popen's, as asyncio passes them on, then
    ferroproc's process control (the :class:`ferroproc.SpawnOptions` of
    ``spawnProcess``, in snake_case). A keyword not listed here is a type
    error, and a ``TypeError`` naming the nearest one at run time. Each is
    checked before any child exists."""

    # asyncio's own checks (base_events): only these values are accepted.
    universal_newlines: Literal[False]
    shell: bool
    bufsize: Literal[0]
    encoding: None
    errors: None
    text: Literal[False] | None
    # subprocess.Popen's.
    #: The program to run (argv[0] stays the first argument), or the shell
    #: instead of ``/bin/sh``.
    executable: _Path | None
    #: Run in the child before exec: only asyncio's own implementation can
    #: (the loop's, through a fork), and none of ferroproc's keywords apply.
    preexec_fn: Callable[[], object] | None
    close_fds: bool
    cwd: _Path | None
    #: The child's environment (None: ours).
    env: Mapping[str, str | os.PathLike[str]] | Mapping[bytes, bytes | os.PathLike[bytes]] | None
    startupinfo: None
    creationflags: Literal[0]
    restore_signals: bool
    start_new_session: bool
    #: A process group to join, or 0 for a new one the child leads.
    process_group: int | None
    pass_fds: Collection[int]
    user: str | int | None
    group: str | int | None
    extra_groups: Collection[str | int] | None
    #: Any int: the kernel keeps its 0o777 bits; a negative one leaves ours.
    umask: int
    pipesize: int
    # ferroproc's process control (ferroproc.SpawnOptions, snake_case).
    #: SIGKILL the child's group once the child has exited (grandchildren
    #: that outlive it). Needs ``start_new_session=True`` or
    #: ``process_group=0``.
    kill_group_on_exit: bool
    #: SIGKILL the child's group when its transport is closed (or its loop
    #: goes). Needs ``start_new_session=True`` or ``process_group=0``.
    kill_group_on_lost: bool
    #: Wall-clock limit in seconds: then SIGTERM (to the group, when the
    #: child leads one), SIGKILL after ``kill_grace``; see
    #: :attr:`Process.timed_out`.
    timeout: float | None
    #: As ``timeout``, for that long without output on any pipe while its
    #: output is read.
    idle_timeout: float | None
    #: Seconds between SIGTERM and SIGKILL for the limits (default 5).
    kill_grace: float
    #: ``{resource: limit or (soft, hard)}`` (``"nofile"``, ``"RLIMIT_CPU"``,
    #: a ``resource.RLIMIT_*`` number).
    rlimits: Mapping[str | int, int | tuple[int, int]] | None
    #: The child's nice value, -20 to 19.
    nice: int | None
    #: The CPUs the child may run on.
    cpu_affinity: Sequence[int] | None
    #: A signal (number or name) the child gets when the spawning thread exits.
    parent_death_signal: int | str | None
    #: exec can never grant the child more privileges (set-uid bits, file
    #: capabilities).
    no_new_privileges: bool
    #: A cgroup v2 directory to start the child in.
    cgroup: _Path | None


#: The keywords :func:`_checkPopenText` checks.
_TEXT_KEYWORDS = frozenset({"universal_newlines", "shell", "bufsize", "text", "encoding", "errors"})


def _checkPopenText(kwds: dict[str, Any], shell: bool, function: str) -> None:
    """What ``loop.subprocess_exec``/``subprocess_shell`` refuse (asyncio's
    own checks and words), named for ``function``; those keywords are taken
    out of ``kwds``."""
    if _TEXT_KEYWORDS.isdisjoint(kwds):
        return
    if kwds.pop("universal_newlines", False):
        raise ValueError(f"{function}: universal_newlines must be False")
    if bool(kwds.pop("shell", shell)) != shell:
        raise ValueError(f"{function}: shell must be True" if shell else f"{function}: shell must be False")
    if kwds.pop("bufsize", 0) != 0:
        raise ValueError(f"{function}: bufsize must be 0")
    if kwds.pop("text", None):
        raise ValueError(f"{function}: text must be False")
    if kwds.pop("encoding", None) is not None:
        raise ValueError(f"{function}: encoding must be None")
    if kwds.pop("errors", None) is not None:
        raise ValueError(f"{function}: errors must be None")


class Process(asyncio.subprocess.Process):
    """What :func:`create_subprocess_exec` and :func:`create_subprocess_shell`
    return: asyncio's ``Process`` (``stdin``, ``stdout``, ``stderr``,
    ``pid``, ``returncode``, ``wait()``, ``communicate()``,
    ``send_signal()``, ``terminate()``, ``kill()``, as the running Python's
    asyncio has them; ``isinstance(p, asyncio.subprocess.Process)`` holds),
    plus what ferroproc knows of the child.

    Its streams are made when first used: ``communicate()`` on a process
    whose ``stdout``/``stderr`` were never touched collects the output
    without them (the same result, with less work per child).
    """

    def __init__(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # asyncio's __init__ copies the protocol's three streams; ferroproc's
        # protocol makes them when first asked for (the properties below).
        self._transport: asyncio.SubprocessTransport = transport  # type: ignore[assignment]
        self._protocol: SubprocessStreamProtocol = protocol  # type: ignore[assignment]
        self._loop = loop
        self.pid = self._transport.get_pid()
        #: ferroproc's protocol while the streams are made on demand; None
        #: once they are plain (another protocol, or a program set one).
        self._streams: StreamProtocol | None = protocol if isinstance(protocol, StreamProtocol) else None
        self._plain: list[Any] = (
            []
            if self._streams is not None
            else [
                self._protocol.stdin,
                self._protocol.stdout,
                self._protocol.stderr,
            ]
        )

    # -- asyncio's streams, made on demand -------------------------------------------

    @property
    def stdin(self) -> streams.StreamWriter | None:
        """The child's stdin (``stdin=PIPE``), else None."""
        if self._streams is not None:
            return self._streams.writer()
        return self._plain[0]  # type: ignore[no-any-return]

    @stdin.setter
    def stdin(self, value: streams.StreamWriter | None) -> None:
        self._set(0, value)

    @property
    def stdout(self) -> streams.StreamReader | None:
        """The child's stdout (``stdout=PIPE``), else None."""
        if self._streams is not None:
            return self._streams.reader(1)
        return self._plain[1]  # type: ignore[no-any-return]

    @stdout.setter
    def stdout(self, value: streams.StreamReader | None) -> None:
        self._set(1, value)

    @property
    def stderr(self) -> streams.StreamReader | None:
        """The child's stderr (``stderr=PIPE``), else None."""
        if self._streams is not None:
            return self._streams.reader(2)
        return self._plain[2]  # type: ignore[no-any-return]

    @stderr.setter
    def stderr(self, value: streams.StreamReader | None) -> None:
        self._set(2, value)

    def _set(self, fd: int, value: Any) -> None:
        """A program's own stream in place of one, as asyncio's plain
        attributes allow: all three are plain from then on."""
        if self._streams is not None:
            self._plain = [self.stdin, self.stdout, self.stderr]
            self._streams = None
        self._plain[fd] = value

    async def communicate(self, input: bytes | bytearray | memoryview | None = None) -> tuple[bytes, bytes]:
        """asyncio's ``communicate()``: send ``input`` (then close stdin, as
        the running Python does), read stdout and stderr to their end, wait
        for the exit; ``(stdout, stderr)``, None for what is no pipe."""
        lazy = self._streams
        if (
            lazy is None
            or not lazy.lazy()
            or (input is not None and not lazy.hasStdin())
            or self._loop.get_debug()  # asyncio's own logs each step
        ):
            return await super().communicate(input)
        if lazy.collecting():
            # asyncio's second communicate() at once fails in its read, as
            # here: its input must not vanish and its result be empty.
            raise RuntimeError("communicate() called while another coroutine is already waiting for the output")
        if input is not None or (_COMMUNICATE_CLOSES_STDIN and lazy.hasStdin()):
            lazy.endInput(input)
        out = await lazy.collect()
        await self.wait()
        return out  # type: ignore[return-value]  # None for no pipe, as asyncio's

    # -- what ferroproc adds -------------------------------------------------------------

    def _ours(self) -> SubprocessTransport | None:
        transport = self._transport
        return transport if isinstance(transport, SubprocessTransport) else None

    @property
    def timed_out(self) -> TimedOut | None:
        """Once the child has exited: a :class:`TimedOut` (``kind``,
        ``timeout``, ``killed``) if a time limit (``timeout``,
        ``idle_timeout``) ended it, else None. None before the exit too,
        and for a child the loop's own implementation started
        (``preexec_fn``)."""
        transport = self._ours()
        return None if transport is None else transport._timedOut

    @property
    def resource_usage(self) -> ResourceUsage | None:
        """What the child used (``userTime``, ``systemTime`` in seconds,
        ``maxRSS`` in bytes: see :class:`ferroproc.error.ResourceUsage`) as
        the kernel reported it at the exit; None until then (and for a child
        the loop's own implementation started)."""
        transport = self._ours()
        return None if transport is None else transport._usage

    @property
    def pgid(self) -> int | None:
        """The child's process group id when it leads one
        (``start_new_session=True``, ``process_group=0``: its pid) or joined
        one (``process_group=N``); None when it is in ours (or the loop's own
        implementation started it)."""
        transport = self._ours()
        engine = None if transport is None else transport._info.get("ferroproc")
        return None if engine is None else engine.pgid

    def signal_group(self, signal: int | str) -> None:
        """Send ``signal`` (a number, or a name as ``"TERM"``/``"SIGKILL"``)
        to the process group the child leads (``start_new_session=True`` or
        ``process_group=0``): every process still in it, descendants too (not
        one that left it with ``setsid``/``setpgid``). Works after the child
        has exited while its pipes are open (a descendant that holds them
        keeps the group signallable), until the child is reaped: the group's
        id may be reused after that, so it is never signalled.

        Raises:
            ValueError: an unknown signal; the child leads no group (it is in
                ours, joined another one, or was started by the loop's own
                implementation).
            ProcessLookupError: the child has been reaped, or nothing is left
                in its group.
        """
        transport = self._ours()
        engine = None if transport is None else transport._info.get("ferroproc")
        if engine is None:
            raise ValueError(
                "signal_group: the loop's own implementation started this child (preexec_fn): "
                "ferroproc does not know its group"
            )
        pgid = engine.pgid
        if pgid != self.pid:
            raise ValueError(
                "signal_group: the child leads no process group of its own "
                + (
                    "(create it with start_new_session=True or process_group=0)"
                    if pgid is None
                    else f"(it joined group {pgid}; signal that group yourself with os.killpg if it is yours)"
                )
            )
        if transport is None or transport._process is None:
            raise ProcessLookupError()
        try:
            transport._process.signalGroup(signal)
        except ProcessExitedAlready:
            raise ProcessLookupError() from None
        except (TypeError, ValueError) as e:
            # The engine's words are Twisted's (signalGroup): the program
            # called signal_group.
            raise type(e)(str(e).replace("signalGroup", "signal_group", 1)) from None


async def create_subprocess_exec(
    program: _Path,
    *args: _Path,
    stdin: _Stdio = None,
    stdout: _Stdio = None,
    stderr: _Stdio = None,
    limit: int = streams._DEFAULT_LIMIT,  # type: ignore[attr-defined]
    **kwds: Unpack[SubprocessOptions],
) -> Process:
    """``asyncio.create_subprocess_exec``, through ferroproc's engine, on the
    running loop (any loop): a :class:`Process`. Takes Popen's keywords and
    ferroproc's (:class:`SubprocessOptions`). Raises what asyncio's raises
    (``OSError`` subclasses for a failed start, ``ValueError``/``TypeError``
    for bad arguments, naming this function and the keyword), before any
    child is left behind."""
    # One turn of the loop first, as asyncio's (and uvloop's) creation gives
    # one: a program that starts many children in a row lets its other
    # tasks run between them. Cancelled here, no child has been started.
    await _yield()
    process = _start("create_subprocess_exec", (program, *args), False, stdin, stdout, stderr, limit, kwds)
    if process is not None:
        return process
    return await _startByLoop((program, *args), False, stdin, stdout, stderr, limit, kwds)


async def create_subprocess_shell(
    cmd: str | bytes,
    stdin: _Stdio = None,
    stdout: _Stdio = None,
    stderr: _Stdio = None,
    limit: int = streams._DEFAULT_LIMIT,  # type: ignore[attr-defined]
    **kwds: Unpack[SubprocessOptions],
) -> Process:
    """``asyncio.create_subprocess_shell`` (``/bin/sh -c cmd``), through
    ferroproc's engine, on the running loop (any loop): a :class:`Process`.
    Takes the keywords of :func:`create_subprocess_exec`."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("create_subprocess_shell: cmd must be a string")
    await _yield()
    process = _start("create_subprocess_shell", cmd, True, stdin, stdout, stderr, limit, kwds)
    if process is not None:
        return process
    return await _startByLoop(cmd, True, stdin, stdout, stderr, limit, kwds)


@types.coroutine
def _yield() -> Generator[None, None, None]:
    """Let the loop run its other callbacks once (``asyncio.sleep(0)``'s
    bare yield, without its call)."""
    yield


def _start(
    function: str,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    limit: int,
    kwds: SubprocessOptions,
) -> Process | None:
    """The child, started by the engine, as a :class:`Process` (a plain
    function: nothing here waits); None when only the loop's own
    implementation can start it (``preexec_fn``)."""
    loop = asyncio.get_running_loop()
    if type(limit) is not int or limit <= 0:
        # Checked now: the StreamReaders that would refuse it are made later.
        raise ValueError(f"{function}: limit must be an int > 0, not {limit!r}")
    popen: dict[str, Any] = kwds  # type: ignore[assignment]  # checked here
    _checkPopenText(popen, shell, function)
    protocol = StreamProtocol(limit, loop)
    transport = startTransport(loop, protocol, args, shell, stdin, stdout, stderr, popen, function)
    return None if transport is None else Process(transport, protocol, loop)


async def _startByLoop(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, limit: int, kwds: SubprocessOptions
) -> Process:
    """``preexec_fn``: the running loop's own implementation (asyncio's,
    uvloop's) starts the child; the result is still a :class:`Process`."""
    loop = asyncio.get_running_loop()

    def factory() -> SubprocessStreamProtocol:
        return SubprocessStreamProtocol(limit=limit, loop=loop)

    popen: dict[str, Any] = kwds  # type: ignore[assignment]  # the text keywords were checked
    if shell:
        pair = await loop.subprocess_shell(factory, args, stdin=stdin, stdout=stdout, stderr=stderr, **popen)
    else:
        pair = await loop.subprocess_exec(factory, *args, stdin=stdin, stdout=stdout, stderr=stderr, **popen)
    return Process(pair[0], pair[1], loop)


class EventLoop(asyncio.SelectorEventLoop):
    """asyncio's default event loop, whose ``subprocess_exec`` and
    ``subprocess_shell`` start and watch children with ferroproc's engine
    (and take ferroproc's extra keywords). ``preexec_fn`` goes through
    asyncio's own implementation."""

    async def subprocess_exec(  # asyncio's keywords, passed on
        self, protocol_factory: Callable[[], _P], program: Any, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _P]:
        """asyncio's ``subprocess_exec``, through ferroproc's engine; its
        checks name the function the program called."""
        if not _TEXT_KEYWORDS.isdisjoint(kwargs):
            _checkPopenText(dict(kwargs), False, loopCaller(False))
        return await super().subprocess_exec(protocol_factory, program, *args, **kwargs)

    async def subprocess_shell(  # asyncio's keywords, passed on
        self, protocol_factory: Callable[[], _P], cmd: Any, **kwargs: Any
    ) -> tuple[asyncio.SubprocessTransport, _P]:
        """asyncio's ``subprocess_shell`` (``/bin/sh -c cmd``), through
        ferroproc's engine; its checks name the function the program called."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError(f"{loopCaller(True)}: cmd must be a string")
        if not _TEXT_KEYWORDS.isdisjoint(kwargs):
            _checkPopenText(dict(kwargs), True, loopCaller(True))
        return await super().subprocess_shell(protocol_factory, cmd, **kwargs)

    async def _make_subprocess_transport(
        self,
        protocol: asyncio.SubprocessProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> asyncio.SubprocessTransport:
        function = loopCaller(shell)
        transport = await makeTransport(self, protocol, args, shell, stdin, stdout, stderr, kwargs, function)
        if transport is not None:
            return transport
        return await super()._make_subprocess_transport(  # type: ignore[misc,no-any-return]
            protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra, **kwargs
        )

    def close(self) -> None:
        """asyncio's ``close()``; children still running (or not yet reaped)
        are handed to ferroproc's reaper, as nothing will turn their engine."""
        super().close()
        closeEngineOf(self)


def new_event_loop() -> EventLoop:
    """A new :class:`EventLoop` (for ``asyncio.run(..., loop_factory=...)``,
    ``asyncio.Runner(loop_factory=...)``)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making :class:`EventLoop` instances
    (``asyncio.set_event_loop_policy(ferroproc.asyncio.EventLoopPolicy())``)."""

    _loop_factory = EventLoop


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """``asyncio.run(main)`` on a new :class:`EventLoop`, on every Python
    ferroproc supports (3.10 has no ``asyncio.Runner``)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    else:
        return _run310(main, debug)


def _run310(main: Coroutine[Any, Any, _T], debug: bool | None) -> _T:
    """``asyncio.run``'s steps (3.10), on an :class:`EventLoop`."""
    from asyncio.runners import _cancel_all_tasks  # type: ignore[attr-defined]

    if asyncio.events._get_running_loop() is not None:
        raise RuntimeError("ferroproc.asyncio.run() cannot be called from a running event loop")
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
