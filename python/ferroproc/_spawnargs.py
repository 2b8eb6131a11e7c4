"""``spawnProcess``'s arguments, checked and made ready for the engine.

Every host (the standalone reactor, :mod:`ferroproc.twisted`) calls
:func:`prepareSpawn`, so they all reject the same mistakes with the same
messages, before any child exists: ``TypeError``/``ValueError``/``OSError``
naming the parameter. The result is a :class:`SpawnArgs` record of bytes and
ints that the Rust engine (``Engine.spawn``) reads by attribute name.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias

__all__ = ["SpawnArgs", "SpawnMethod", "prepareSpawn"]

#: A spawn mechanism forced by tests and Twisted's ``_neverUseSpawn``.
SpawnMethod: TypeAlias = Literal["posix_spawn", "clone"]

_DEFAULT_CHILD_FDS: Mapping[int, str | int] = {0: "w", 1: "r", 2: "r"}
_PROTOCOL_METHODS = (
    "makeConnection",
    "childDataReceived",
    "childConnectionLost",
    "processExited",
    "processEnded",
)
_MAX_FD = 0x7FFFFFFF


class SpawnArgs(NamedTuple):
    """What the engine needs to start a child (all checked). A named tuple,
    not a dataclass: ``dataclasses`` would double the import time of
    ``ferroproc``."""

    #: The executable: a path, or a bare name looked up on ``PATH``.
    executable: bytes
    #: argv, ``argv[0]`` included.
    argv: list[bytes]
    #: The environment as ``KEY=value`` entries.
    envp: list[bytes]
    #: The parent's ``PATH``, for a bare executable name when the child's
    #: environment has none.
    parent_path: bytes | None
    #: The child's working directory (None: ours).
    cwd: bytes | None
    #: ``(childFD, 'r' | 'w' | 'fd', parentFD)``; empty with a terminal.
    fds: list[tuple[int, str, int]]
    #: A new terminal as fds 0, 1 and 2.
    pty: bool
    #: A caller's ``(master, slave)`` terminal.
    pty_fds: tuple[int, int] | None
    #: The terminal's initial ``(rows, cols)``.
    window_size: tuple[int, int] | None
    uid: int | None
    gid: int | None
    #: ``"inherit"``, ``"session"`` (a new session) or ``"group"`` (a new process group).
    session: Literal["inherit", "session", "group"]
    #: An existing process group to join.
    process_group: int | None
    #: ``"posix_spawn"`` or ``"clone"`` forces a mechanism (tests run both).
    method: SpawnMethod | None


def _typeName(value: object) -> str:
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


def _toBytes(value: object, what: str) -> bytes:
    """A str/bytes/path-like as bytes (filesystem encoding), NUL-free."""
    if isinstance(value, bytes):
        out = value
    elif isinstance(value, (str, os.PathLike)):
        out = _fsencode(value, what)
    else:
        raise TypeError(f"spawnProcess: {what} must be str, bytes or path-like, not {_typeName(value)}")
    if b"\0" in out:
        raise ValueError(f"spawnProcess: {what} contains a NUL byte: {value!r}")
    return out


def _envEntries(env: Mapping[Any, Any] | None) -> list[bytes]:
    if env is None:
        env = os.environb
    elif not isinstance(env, Mapping):
        raise TypeError(f"spawnProcess: env must be a dict (or None for os.environ), not {_typeName(env)}")
    out = []
    for key, value in env.items():
        if not isinstance(key, (str, bytes)):
            raise TypeError(f"spawnProcess: env key {key!r} must be str or bytes, not {_typeName(key)}")
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"spawnProcess: env[{key!r}] must be str or bytes, not {_typeName(value)}")
        k = _fsencode(key, f"env key {key!r}")
        if not k or b"=" in k or b"\0" in k:
            raise ValueError(f"spawnProcess: env key {key!r} is not a valid variable name (empty, or has '=' or NUL)")
        v = _fsencode(value, f"env[{key!r}]")
        if b"\0" in v:
            raise ValueError(f"spawnProcess: env[{key!r}] contains a NUL byte")
        out.append(k + b"=" + v)
    return out


def _fdLimit() -> int:
    """The soft RLIMIT_NOFILE, which the child inherits: fd numbers at or
    above it cannot be given to the child."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _MAX_FD if soft == resource.RLIM_INFINITY else soft


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _childFDs(childFDs: Mapping[Any, Any]) -> list[tuple[int, str, int]]:
    if not isinstance(childFDs, Mapping):
        raise TypeError(f"spawnProcess: childFDs must be a dict, not {_typeName(childFDs)}")
    out = []
    limit = _fdLimit()
    for child, value in sorted(childFDs.items(), key=lambda kv: kv[0] if _isInt(kv[0]) else -1):
        if not _isInt(child):
            raise TypeError(
                f"spawnProcess: childFDs key {child!r} must be an int (a child fd), not {_typeName(child)}"
            )
        if child < 0 or child >= _MAX_FD:
            raise ValueError(f"spawnProcess: childFDs key {child} is not a valid fd number")
        if child >= limit:
            # dup2 in the child would fail with EBADF: say so here, by name.
            raise ValueError(
                f"spawnProcess: childFDs key {child} is not below the open-file limit (RLIMIT_NOFILE {limit})"
            )
        if value == "r" or value == "w":
            out.append((child, str(value), -1))
        elif _isInt(value):
            if value < 0:
                raise ValueError(f"spawnProcess: childFDs[{child}]: parent fd {value} is negative")
            if value > _MAX_FD:
                raise ValueError(f"spawnProcess: childFDs[{child}]: parent fd {value} is not a valid fd number")
            out.append((child, "fd", value))
        else:
            raise ValueError(f"spawnProcess: childFDs[{child}]: {value!r} is not 'r', 'w' or an fd")
    return out


def _id(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not _isInt(value):
        raise TypeError(f"spawnProcess: {what} must be an int or None, not {_typeName(value)}")
    assert isinstance(value, int)
    if not 0 <= value < 2**32 - 1:
        raise ValueError(f"spawnProcess: {what} {value} is out of range")
    return value


def _ptyFds(usePTY: object) -> tuple[int, int]:
    """A ``(masterfd, slavefd, ttyname)`` tuple's fds, checked to be fd
    numbers (the engine checks they are a master and its own slave)."""
    if not isinstance(usePTY, (tuple, list)) or len(usePTY) != 3:
        raise TypeError("spawnProcess: usePTY must be True or a (masterfd, slavefd, ttyname) tuple")
    master, slave = usePTY[0], usePTY[1]
    for fd, what in ((master, "masterfd"), (slave, "slavefd")):
        if not _isInt(fd):
            raise TypeError(f"spawnProcess: usePTY {what} must be an int, not {_typeName(fd)}")
        if not 0 <= fd < _MAX_FD:
            raise ValueError(f"spawnProcess: usePTY {what} {fd} is not a valid fd number")
    return (master, slave)


def _windowSize(windowSize: object, usePTY: object) -> tuple[int, int] | None:
    if windowSize is None:
        return None
    if not usePTY:
        raise ValueError("spawnProcess: windowSize needs usePTY")
    if (
        not isinstance(windowSize, tuple)
        or len(windowSize) != 2
        or not all(_isInt(n) and 0 <= n <= 0xFFFF for n in windowSize)
    ):
        raise ValueError(f"spawnProcess: windowSize must be (rows, cols) with 0 <= n <= 65535, not {windowSize!r}")
    return (windowSize[0], windowSize[1])


def _checkProtocol(processProtocol: object, needsProtocol: bool) -> None:
    if processProtocol is None:
        if needsProtocol:
            raise TypeError("spawnProcess: processProtocol is None, but childFDs/usePTY create pipes that need one")
        return
    if isinstance(processProtocol, type):
        # A class has every method (unbound): it would pass the check below,
        # start the child, then fail in every callback.
        raise TypeError(
            f"spawnProcess: processProtocol must be a protocol instance, not the class "
            f"{processProtocol.__name__} (did you mean {processProtocol.__name__}()?)"
        )
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(processProtocol, m, None))]
    if missing:
        raise TypeError(
            f"spawnProcess: processProtocol {processProtocol!r} lacks {', '.join(missing)} "
            "(subclass ferroproc.protocol.ProcessProtocol)"
        )


def prepareSpawn(
    processProtocol: Any,
    executable: Any,
    args: Any,
    env: Any,
    path: Any,
    uid: Any,
    gid: Any,
    usePTY: Any,
    childFDs: Any,
    windowSize: Any = None,
    method: SpawnMethod | None = None,
) -> SpawnArgs:
    """Check and normalise ``spawnProcess``'s arguments. Raises
    ``TypeError``/``ValueError``/``OSError`` naming the bad parameter."""
    exe = _toBytes(executable, "executable")
    if not exe:
        raise ValueError("spawnProcess: executable must not be empty")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"spawnProcess: args must be a list or tuple of str/bytes, not {_typeName(args)}")
    if len(args) == 0:
        raise ValueError("spawnProcess: args must not be empty (args[0] is the program's name)")
    argv = [_toBytes(a, f"args[{i}]") for i, a in enumerate(args)]
    envp = _envEntries(env)
    cwd = None
    if path is not None:
        cwd = _toBytes(path, "path")
        if not os.path.isdir(cwd):
            code = errno.ENOTDIR if os.path.exists(cwd) else errno.ENOENT
            what = "is not a directory" if code == errno.ENOTDIR else "does not exist"
            raise OSError(code, f"spawnProcess: path {os.fsdecode(cwd)!r} {what}", os.fsdecode(cwd))

    ptyFds: tuple[int, int] | None = None
    if usePTY:
        if childFDs is not None:
            raise ValueError("Using childFDs is not supported with usePTY=True.")
        if isinstance(usePTY, (tuple, list)):
            ptyFds = _ptyFds(usePTY)
        fds: list[tuple[int, str, int]] = []
    else:
        fds = _childFDs(_DEFAULT_CHILD_FDS if childFDs is None else childFDs)
    _checkProtocol(processProtocol, bool(usePTY) or any(kind != "fd" for _, kind, _ in fds))

    return SpawnArgs(
        executable=exe,
        argv=argv,
        envp=envp,
        parent_path=os.environb.get(b"PATH"),
        cwd=cwd,
        fds=fds,
        pty=bool(usePTY) and ptyFds is None,
        pty_fds=ptyFds,
        window_size=_windowSize(windowSize, usePTY),
        uid=_id(uid, "uid"),
        gid=_id(gid, "gid"),
        session="inherit",
        process_group=None,
        method=method,
    )

