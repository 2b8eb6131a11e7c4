"""ferroproc's engine under asyncio: spawn children from any asyncio program.

Three ways in, from least to most change to a program:

- **Any running loop** (asyncio's own, uvloop...):
  :func:`create_subprocess_exec` and :func:`create_subprocess_shell` take
  the arguments of asyncio's functions of the same names and return an
  ``asyncio.subprocess.Process``; the child is started and watched by
  ferroproc's engine, which the running loop drives (one fd in its poll: no
  thread, no child watcher, no SIGCHLD handler).
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

- **Twisted-style code**: ``ferroproc.reactor.spawnProcess`` and the
  ``ferroproc.utils`` functions work inside a running loop without running
  the reactor (their Deferreds can be awaited).

Popen's keywords are honoured natively: ``stdin``/``stdout``/``stderr`` as
``PIPE``, ``DEVNULL``, ``STDOUT``, an fd, a file object or ``None``;
``cwd``, ``env``, ``executable``, ``start_new_session``, ``process_group``,
``user``, ``group``, ``extra_groups``, ``umask``, ``pass_fds``,
``close_fds``, ``restore_signals``, ``pipesize``. ``preexec_fn`` (a Python
function run in a forked child) cannot be: such a call goes through
asyncio's own implementation, and works as it does there.

ferroproc's process control comes as extra keywords (see
:class:`ferroproc.SpawnOptions` for each): ``kill_group_on_exit``,
``kill_group_on_lost`` (with ``start_new_session=True`` or
``process_group=0``), ``timeout``, ``idle_timeout``, ``kill_grace``,
``rlimits``, ``nice``, ``cpu_affinity``, ``parent_death_signal``,
``no_new_privileges``, ``cgroup``. The transport's ``get_extra_info``
gives ``"ferroproc"`` (the engine's transport: ``signalGroup``, ``pgid``,
``resourceUsage``) and, once the child has exited, ``"timed_out"`` (None,
or ``(kind, limit, killed)`` when a time limit ended it).

Differences from asyncio's own subprocess transport: ``send_signal`` raises
``ProcessLookupError`` as soon as the child's exit is known (it can never
signal a reused pid); ``get_extra_info("subprocess")`` is None (there is no
``Popen``); a child given other credentials (``user``, ``group``,
``extra_groups``) starts a session of its own unless ``process_group`` says
otherwise, so that it cannot reach a privileged parent's terminal (TIOCSTI).
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import streams
from asyncio.subprocess import Process, SubprocessStreamProtocol
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ferroproc._asynciotransport import closeEngineOf, loopCaller, makeTransport

__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "new_event_loop",
    "run",
]

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.BaseProtocol)


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


async def create_subprocess_exec(
    program: Any,
    *args: Any,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    limit: int = streams._DEFAULT_LIMIT,  # type: ignore[attr-defined]
    **kwds: Any,
) -> Process:
    """``asyncio.create_subprocess_exec``, through ferroproc's engine, on the
    running loop (any loop). Raises what asyncio's raises (``OSError``
    subclasses for a failed start, ``ValueError``/``TypeError`` for bad
    arguments), before any child is left behind."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, EventLoop):
        return await asyncio.create_subprocess_exec(
            program, *args, stdin=stdin, stdout=stdout, stderr=stderr, limit=limit, **kwds
        )
    checked = dict(kwds)
    _checkPopenText(checked, False, "create_subprocess_exec")
    protocol = SubprocessStreamProtocol(limit=limit, loop=loop)
    transport = await makeTransport(
        loop, protocol, (program, *args), False, stdin, stdout, stderr, checked, "create_subprocess_exec"
    )
    if transport is None:
        return await asyncio.create_subprocess_exec(
            program, *args, stdin=stdin, stdout=stdout, stderr=stderr, limit=limit, **kwds
        )
    return Process(transport, protocol, loop)


async def create_subprocess_shell(
    cmd: str | bytes,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    limit: int = streams._DEFAULT_LIMIT,  # type: ignore[attr-defined]
    **kwds: Any,
) -> Process:
    """``asyncio.create_subprocess_shell`` (``/bin/sh -c cmd``), through
    ferroproc's engine, on the running loop (any loop)."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, EventLoop):
        return await asyncio.create_subprocess_shell(
            cmd, stdin=stdin, stdout=stdout, stderr=stderr, limit=limit, **kwds
        )
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("create_subprocess_shell: cmd must be a string")
    checked = dict(kwds)
    _checkPopenText(checked, True, "create_subprocess_shell")
    protocol = SubprocessStreamProtocol(limit=limit, loop=loop)
    transport = await makeTransport(
        loop, protocol, cmd, True, stdin, stdout, stderr, checked, "create_subprocess_shell"
    )
    if transport is None:
        return await asyncio.create_subprocess_shell(
            cmd, stdin=stdin, stdout=stdout, stderr=stderr, limit=limit, **kwds
        )
    return Process(transport, protocol, loop)


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
