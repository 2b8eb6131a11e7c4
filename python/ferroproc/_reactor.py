"""The standalone reactor: ``spawnProcess``, timers, threads and ``run``.

All argument checking happens here, before any child exists, so a mistake is
a ``TypeError``/``ValueError``/``OSError`` from ``spawnProcess`` that names the
parameter; the Rust engine (``ferroproc._core.Engine``) then gets bytes only.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec

from ferroproc._core import DelayedCall, Engine, Process
from ferroproc.error import ProcessDone, ProcessTerminated, ReactorNotRunning

if TYPE_CHECKING:
    from types import FrameType

    from ferroproc.failure import Failure
    from ferroproc.interfaces import IProcessProtocol

__all__ = ["Reactor", "reactor"]

#: The parameters of a callable scheduled with its arguments (``callLater`` ...),
#: so a type checker matches the arguments against the callable.
_P = ParamSpec("_P")

_DEFAULT_CHILD_FDS: dict[int, str | int] = {0: "w", 1: "r", 2: "r"}
_PROTOCOL_METHODS = (
    "makeConnection",
    "childDataReceived",
    "childConnectionLost",
    "processExited",
    "processEnded",
)


def _endReason(
    status: int | None,
    done: Callable[[int], BaseException],
    terminated: Callable[[int | None, int | None, int | None], BaseException],
) -> BaseException:
    """The exception a raw wait status means: ``done(status)`` for exit 0,
    else ``terminated(exitCode, signal, status)``; an unknown status (the
    child was reaped by someone else) is ``terminated(None, None, None)``.
    Hosts pass their own classes (Twisted's, under ``ferroproc.twisted``)."""
    if status is None:
        return terminated(None, None, None)
    if os.WIFEXITED(status):
        code: int | None = os.WEXITSTATUS(status)
        sig: int | None = None
    else:
        code, sig = None, os.WTERMSIG(status)
    if code == 0:
        return done(status)
    return terminated(code, sig, status)


def _reason(status: int | None) -> Failure:
    """The ``Failure`` that ``processExited``/``processEnded`` receive."""
    from ferroproc.failure import Failure

    return Failure(_endReason(status, ProcessDone, ProcessTerminated))


def _log_error(where: str, exc: BaseException) -> None:
    import logging

    logging.getLogger("ferroproc").error(
        "Unhandled error in %s", where, exc_info=(type(exc), exc, exc.__traceback__)
    )


def _type_name(value: object) -> str:
    return type(value).__name__


def _fsencode(value: Any, what: str) -> bytes:
    """``os.fsencode``, with an unencodable str (a lone surrogate that
    surrogateescape cannot map back to a byte) reported by parameter name."""
    try:
        return os.fsencode(value)
    except UnicodeEncodeError as e:
        raise ValueError(
            f"spawnProcess: {what} cannot be encoded to bytes ({e.reason} at position {e.start}): {value!r}"
        ) from None


def _to_bytes(value: object, what: str) -> bytes:
    """A str/bytes/path-like as bytes (filesystem encoding), NUL-free."""
    if isinstance(value, bytes):
        out = value
    elif isinstance(value, (str, os.PathLike)):
        out = _fsencode(value, what)
    else:
        raise TypeError(f"spawnProcess: {what} must be str, bytes or path-like, not {_type_name(value)}")
    if b"\0" in out:
        raise ValueError(f"spawnProcess: {what} contains a NUL byte: {value!r}")
    return out


def _env_entries(env: Mapping[Any, Any] | None) -> list[bytes]:
    if env is None:
        env = os.environb
    elif not isinstance(env, Mapping):
        raise TypeError(f"spawnProcess: env must be a dict (or None for os.environ), not {_type_name(env)}")
    out = []
    for key, value in env.items():
        if not isinstance(key, (str, bytes)):
            raise TypeError(f"spawnProcess: env key {key!r} must be str or bytes, not {_type_name(key)}")
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"spawnProcess: env[{key!r}] must be str or bytes, not {_type_name(value)}")
        k = _fsencode(key, f"env key {key!r}")
        if not k or b"=" in k or b"\0" in k:
            raise ValueError(f"spawnProcess: env key {key!r} is not a valid variable name (empty, or has '=' or NUL)")
        v = _fsencode(value, f"env[{key!r}]")
        if b"\0" in v:
            raise ValueError(f"spawnProcess: env[{key!r}] contains a NUL byte")
        out.append(k + b"=" + v)
    return out


def _fd_limit() -> int:
    """The soft RLIMIT_NOFILE, which the child inherits: fd numbers at or
    above it cannot be given to the child."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 0x7FFFFFFF if soft == resource.RLIM_INFINITY else soft


def _child_fds(childFDs: Mapping[Any, Any]) -> list[tuple[int, str, int]]:
    if not isinstance(childFDs, Mapping):
        raise TypeError(f"spawnProcess: childFDs must be a dict, not {_type_name(childFDs)}")
    out = []
    limit = _fd_limit()
    for child, value in sorted(childFDs.items(), key=lambda kv: kv[0] if isinstance(kv[0], int) else -1):
        if not isinstance(child, int) or isinstance(child, bool):
            raise TypeError(
                f"spawnProcess: childFDs key {child!r} must be an int (a child fd), not {_type_name(child)}"
            )
        if child < 0 or child > 0x7FFFFFFE:
            raise ValueError(f"spawnProcess: childFDs key {child} is not a valid fd number")
        if child >= limit:
            # dup2 in the child would fail with EBADF: say so here, by name.
            raise ValueError(
                f"spawnProcess: childFDs key {child} is not below the open-file limit (RLIMIT_NOFILE {limit})"
            )
        if value == "r" or value == "w":
            out.append((child, str(value), -1))
        elif isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"spawnProcess: childFDs[{child}]: parent fd {value} is negative")
            if value > 0x7FFFFFFF:
                raise ValueError(f"spawnProcess: childFDs[{child}]: parent fd {value} is not a valid fd number")
            out.append((child, "fd", value))
        else:
            raise ValueError(f"spawnProcess: childFDs[{child}]: {value!r} is not 'r', 'w' or an fd")
    return out


def _id(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"spawnProcess: {what} must be an int or None, not {_type_name(value)}")
    if not 0 <= value < 2**32 - 1:
        raise ValueError(f"spawnProcess: {what} {value} is out of range")
    return value


def _prepare_spawn(
    processProtocol: Any,
    executable: Any,
    args: Any,
    env: Any,
    path: Any,
    uid: Any,
    gid: Any,
    usePTY: Any,
    childFDs: Any,
    windowSize: Any,
    method: str | None,
) -> tuple[Any, ...]:
    """Check and normalise ``spawnProcess``'s arguments into the positional
    arguments of ``Engine.spawn`` (bytes everywhere, ``fds`` as
    ``(childFD, kind, parentFD)``). Shared by every host (this reactor,
    :mod:`ferroproc.twisted`), so they all reject the same mistakes with the
    same messages. Raises ``TypeError``/``ValueError``/``OSError`` naming the
    bad parameter.
    """
    exe = _to_bytes(executable, "executable")
    if not exe:
        raise ValueError("spawnProcess: executable must not be empty")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"spawnProcess: args must be a list or tuple of str/bytes, not {_type_name(args)}")
    if len(args) == 0:
        raise ValueError("spawnProcess: args must not be empty (args[0] is the program's name)")
    argv = [_to_bytes(a, f"args[{i}]") for i, a in enumerate(args)]
    envp = _env_entries(env)
    cwd = None
    if path is not None:
        cwd = _to_bytes(path, "path")
        if not os.path.isdir(cwd):
            code = errno.ENOTDIR if os.path.exists(cwd) else errno.ENOENT
            what = "is not a directory" if code == errno.ENOTDIR else "does not exist"
            raise OSError(code, f"spawnProcess: path {os.fsdecode(cwd)!r} {what}", os.fsdecode(cwd))
    uid_ = _id(uid, "uid")
    gid_ = _id(gid, "gid")

    pty: Any = None
    if usePTY:
        if childFDs is not None:
            raise ValueError("Using childFDs is not supported with usePTY=True.")
        if isinstance(usePTY, (tuple, list)):
            if len(usePTY) != 3 or not all(isinstance(x, int) for x in usePTY[:2]):
                raise TypeError("spawnProcess: usePTY must be True or a (masterfd, slavefd, ttyname) tuple")
            pty = (usePTY[0], usePTY[1])
        else:
            pty = True
        fds: list[tuple[int, str, int]] = []
    else:
        fds = _child_fds(_DEFAULT_CHILD_FDS if childFDs is None else childFDs)
    if windowSize is not None:
        if not usePTY:
            raise ValueError("spawnProcess: windowSize needs usePTY")
        if (
            not isinstance(windowSize, tuple)
            or len(windowSize) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 0xFFFF for n in windowSize)
        ):
            raise ValueError(f"spawnProcess: windowSize must be (rows, cols) with 0 <= n <= 65535, not {windowSize!r}")

    needsProtocol = bool(pty) or any(kind != "fd" for _, kind, _ in fds)
    if processProtocol is None:
        if needsProtocol:
            raise TypeError(
                "spawnProcess: processProtocol is None, but childFDs/usePTY create pipes that need one"
            )
    elif isinstance(processProtocol, type):
        # A class has every method (unbound): it would pass the check below,
        # start the child, then fail in every callback.
        raise TypeError(
            f"spawnProcess: processProtocol must be a protocol instance, not the class "
            f"{processProtocol.__name__} (did you mean {processProtocol.__name__}()?)"
        )
    else:
        missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(processProtocol, m, None))]
        if missing:
            raise TypeError(
                f"spawnProcess: processProtocol {processProtocol!r} lacks {', '.join(missing)} "
                "(subclass ferroproc.protocol.ProcessProtocol)"
            )

    return (
        processProtocol,
        exe,
        argv,
        envp,
        os.environb.get(b"PATH"),
        cwd,
        fds,
        pty,
        windowSize,
        uid_,
        gid_,
        method,
    )


class Reactor:
    """ferroproc's own reactor: enough of Twisted's for process work.

    One instance, :data:`ferroproc.reactor`, is the default. Unlike Twisted's,
    it can be run again after ``stop()``.
    """

    #: Twisted's test hook: force the vfork-style path even where posix_spawn fits.
    _neverUseSpawn: bool = False

    def __init__(self) -> None:
        self._engine = Engine(_reason, _log_error)
        self._whenRunning: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._triggers: dict[tuple[str, str], list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]] = {}
        self._spawnMethod: str | None = None

    # -- processes ---------------------------------------------------------

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol | None,
        executable: str | bytes | os.PathLike[Any],
        args: Sequence[str | bytes | os.PathLike[Any]] = (),
        env: Mapping[Any, Any] | None = {},  # Twisted's default: an empty environment
        path: str | bytes | os.PathLike[Any] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool | tuple[int, int, str | bytes | None] = False,
        childFDs: Mapping[int, str | int] | None = None,
        *,
        windowSize: tuple[int, int] | None = None,
    ) -> Process:
        """Start ``executable`` with ``args`` (``args[0]`` is the program's
        name) and connect ``processProtocol`` to it; returns the transport,
        after ``connectionMade`` has run.

        - ``env``: omitted → an empty environment; ``None`` → ``os.environ``;
          a dict → exactly that. A bare executable name is looked up on the
          child's ``PATH``, else the parent's, else ``/bin:/usr/bin``.
        - ``path``: the child's working directory (default: the parent's).
        - ``uid``/``gid``: run as that user/group (``uid`` alone takes the
          user's primary group; supplementary groups are the user's own).
        - ``usePTY``: true for a new terminal as fds 0, 1 and 2, or a
          ``(masterfd, slavefd, ttyname)`` tuple; not with ``childFDs``.
        - ``childFDs``: ``{childFD: 'r' | 'w' | parentFD}``; default
          ``{0: 'w', 1: 'r', 2: 'r'}``. Unlisted fds are closed in the child.
        - ``windowSize`` (ferroproc extension, with ``usePTY``): the
          terminal's initial ``(rows, cols)``.

        Raises ``TypeError``/``ValueError`` naming the bad parameter, or the
        ``OSError`` subclass for a failed start (``FileNotFoundError`` for a
        missing executable, ``PermissionError`` ...); no child is left behind.
        """
        method = self._spawnMethod or ("clone" if self._neverUseSpawn else None)
        return self._engine.spawn(
            *_prepare_spawn(
                processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs, windowSize, method
            )
        )

    # -- time and threads --------------------------------------------------

    def seconds(self) -> float:
        """The current time in seconds, as ``time.time()``."""
        return self._engine.seconds()

    def callLater(self, delay: float, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds; returns a
        ``DelayedCall`` (``cancel``, ``active``, ``getTime``, ``delay``, ``reset``)."""
        return self._engine.callLater(delay, callable, args, kw or None)

    def callFromThread(self, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> None:
        """Run ``callable(*args, **kw)`` on the reactor's thread soon; safe
        from any thread, and wakes a sleeping reactor."""
        self._engine.callFromThread(callable, args, kw or None)

    def callWhenRunning(self, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> None:
        """Call ``callable`` once the reactor runs (now, if it already does)."""
        if self.running:
            callable(*args, **kw)
        else:
            self._whenRunning.append((callable, args, kw))

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs
    ) -> tuple[str, str, Callable[..., Any]]:
        """Call ``callable`` at ``phase`` ('before', 'during', 'after') of
        ``eventType`` ('startup' or 'shutdown'); returns an id for
        :meth:`removeSystemEventTrigger`."""
        if phase not in ("before", "during", "after"):
            raise ValueError(f"addSystemEventTrigger: unknown phase {phase!r}")
        self._triggers.setdefault((eventType, phase), []).append((callable, args, kw))
        return (eventType, phase, callable)

    def removeSystemEventTrigger(self, triggerID: tuple[str, str, Callable[..., Any]]) -> None:
        """Remove a trigger added with :meth:`addSystemEventTrigger`."""
        eventType, phase, fn = triggerID
        calls = self._triggers.get((eventType, phase), [])
        for i, (f, _, _) in enumerate(calls):
            if f is fn:
                del calls[i]
                return
        raise ValueError(f"removeSystemEventTrigger: no such trigger {triggerID!r}")

    def _fire(self, eventType: str) -> None:
        for phase in ("before", "during", "after"):
            for f, a, kw in list(self._triggers.get((eventType, phase), [])):
                try:
                    f(*a, **kw)
                except Exception as e:  # noqa: BLE001 - logged, as Twisted does
                    _log_error(f"a {phase} {eventType} trigger", e)

    # -- running -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is active."""
        return self._engine.running

    def _startRunning(self) -> None:
        self._fire("startup")
        calls, self._whenRunning = self._whenRunning, []
        for f, a, kw in calls:
            try:
                f(*a, **kw)
            except Exception as e:  # noqa: BLE001
                _log_error("callWhenRunning", e)

    def _onSignal(self, signum: int, frame: FrameType | None) -> None:
        import logging

        name = signal.Signals(signum).name
        logging.getLogger("ferroproc").info("Received %s, shutting down.", name)
        self.stop()

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run until :meth:`stop`. On the main thread (and with
        ``installSignalHandlers``), Ctrl-C and SIGTERM stop the reactor
        cleanly, as in Twisted. Children still running when it stops keep
        running and are handled when it runs again."""
        if self.running:
            raise RuntimeError("the reactor is already running")
        restore: list[tuple[signal.Signals, Any]] = []
        oldWakeup: int | None = None
        onMain = threading.current_thread() is threading.main_thread()
        if installSignalHandlers and onMain:
            oldWakeup = signal.set_wakeup_fd(self._engine.wakeupFd(), warn_on_full_buffer=False)
            for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(sig) is default:
                    restore.append((sig, signal.signal(sig, self._onSignal)))
        self.callLater(0, self._startRunning)
        try:
            self._engine.run()
        finally:
            for sig, handler in restore:
                signal.signal(sig, handler)
            if oldWakeup is not None:
                signal.set_wakeup_fd(oldWakeup)
            self._fire("shutdown")

    def stop(self) -> None:
        """Stop :meth:`run` after the current turn. Raises ``ReactorNotRunning``
        when it is not running."""
        if not self.running:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        self._engine.stop()

    def iterate(self, delay: float = 0.0) -> None:
        """Run one turn of the loop, waiting at most ``delay`` seconds."""
        self._engine.runOnce(delay)

    def __repr__(self) -> str:
        return f"<ferroproc.Reactor running={self.running}>"


#: The default reactor.
reactor = Reactor()
