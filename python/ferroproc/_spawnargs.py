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
import resource as _resource
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias, TypedDict

__all__ = ["ChildOptions", "SpawnArgs", "SpawnMethod", "SpawnOptions", "prepareSpawn"]

#: A spawn mechanism forced by tests and Twisted's ``_neverUseSpawn``.
SpawnMethod: TypeAlias = Literal["posix_spawn", "clone"]

_DEFAULT_CHILD_FDS: Mapping[int, str | int] = {0: "w", 1: "r", 2: "r"}
#: ``_childFDs(_DEFAULT_CHILD_FDS)``, built once: the form almost every spawn takes.
_DEFAULT_FDS: tuple[tuple[int, str, int], ...] = ((0, "w", -1), (1, "r", -1), (2, "r", -1))
#: What ``os.fsencode`` uses (fixed at start-up), for the str fast path below.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()
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
    #: ``(childFD, 'r' | 'w' | 'fd', parentFD)``, or ``(childFD, 'same',
    #: otherChildFD)``: the pipe made for another entry (Popen's
    #: ``stderr=STDOUT``); empty with a terminal.
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
    #: With ``uid``/``gid``: set exactly those and ``groups`` (each None left
    #: as ours), as ``subprocess.Popen`` does; else ferroproc's rule.
    exact_ids: bool = False
    groups: list[int] | None = None
    #: ``"default"`` (every signal at its default), or Popen's
    #: ``restore_signals`` True/False: ``"restore"``/``"inherit"``.
    signals: Literal["default", "restore", "inherit"] = "default"
    #: Keep the fds no entry names (Popen's ``close_fds=False``).
    keep_fds: bool = False
    umask: int | None = None
    #: ``(resource, soft, hard)``.
    rlimits: tuple[tuple[int, int, int], ...] = ()
    nice: int | None = None
    affinity: list[int] | None = None
    death_signal: int | None = None
    no_new_privs: bool = False
    #: A cgroup v2 directory to start the child in.
    cgroup: bytes | None = None
    #: ``F_SETPIPE_SZ`` for the pipes made for the child.
    pipe_size: int | None = None
    #: SIGKILL the child's own group when it exits / when the parent loses
    #: the connection.
    kill_group_on_exit: bool = False
    kill_group_on_lost: bool = False
    #: Time limits (seconds) and the grace between SIGTERM and SIGKILL.
    timeout: float | None = None
    idle_timeout: float | None = None
    kill_grace: float = 5.0


class ChildOptions(TypedDict, total=False):
    """The part of :class:`SpawnOptions` that sets up the child itself (its
    process group, limits and hygiene): what ``spawnProcess`` takes, and what
    :func:`ferroproc.utils.getProcessResult` and :mod:`ferroproc.pipeline`
    pass on to it unchanged. Each is checked before any child exists; a bad
    value raises ``TypeError``/``ValueError`` naming it."""

    #: ``True``: the child leads a new process group (its pgid is its pid);
    #: an int: it joins that existing group (never signalled as a whole by
    #: ferroproc: time limits and the helpers signal the child alone; not
    #: with ``usePTY``: a PTY child leads a session of its own).
    processGroup: bool | int
    #: The child leads a new session (and so a new process group), with no
    #: controlling terminal (but the one ``usePTY`` gives it).
    newSession: bool
    #: SIGKILL the child's group once the child has exited (grandchildren
    #: that outlive it). Needs ``processGroup=True`` or ``newSession=True``.
    killGroupOnExit: bool
    #: SIGKILL the child's group when its transport is lost: on
    #: ``loseConnection()`` (or ``stopProducing()``), when the reactor drops
    #: the process (Twisted's ``removeAll()``), or when its engine goes away,
    #: until the child is reaped (when its last pipe has closed).
    #: Needs ``processGroup=True`` or ``newSession=True``.
    killGroupOnLost: bool
    #: ``{resource: limit or (soft, hard)}``; a resource is a name
    #: (``"nofile"``, ``"RLIMIT_CPU"``) or a ``resource.RLIMIT_*`` number, a
    #: limit an int or ``resource.RLIM_INFINITY``.
    rlimits: Mapping[str | int, int | tuple[int, int]] | None
    #: The child's umask.
    umask: int | None
    #: The child's nice value, -20 to 19 (below ours needs CAP_SYS_NICE).
    nice: int | None
    #: The CPUs the child may run on.
    cpuAffinity: Sequence[int] | None
    #: A signal (number or name) the child gets when the thread that spawned
    #: it exits (Linux's parent-death signal); a child whose parent is
    #: already gone by then gets it at once.
    parentDeathSignal: int | str | None
    #: Set ``no_new_privs``: exec can never grant the child more privileges
    #: (set-uid bits, file capabilities).
    noNewPrivileges: bool
    #: A cgroup v2 directory to start the child in (``clone3`` with
    #: ``CLONE_INTO_CGROUP``: it never runs outside it).
    cgroup: str | bytes | os.PathLike[Any] | None


# TypedDict is named again as a base so that pdoc, which reads the bases to
# find where each key is declared, finds ChildOptions (TypedDict flattens them).
class SpawnOptions(ChildOptions, TypedDict, total=False):
    """ferroproc's keyword-only extensions of ``spawnProcess`` (all
    optional): those of :class:`ChildOptions`, applied in the child between
    its creation and ``exec``, and the terminal size and time limits below.
    Each is checked before any child exists; a bad value raises
    ``TypeError``/``ValueError`` naming it."""

    #: The terminal's initial ``(rows, cols)`` (with ``usePTY``).
    windowSize: tuple[int, int] | None
    #: Wall-clock limit in seconds: then SIGTERM (to the group, when the
    #: child leads one), SIGKILL after ``killGrace``; the protocol's reason is
    #: a :class:`ferroproc.error.ProcessTimedOut`.
    timeout: float | None
    #: As ``timeout``, for that long without output on any pipe while its
    #: output is read (the clock stands still while reading is paused).
    idleTimeout: float | None
    #: Seconds between SIGTERM and SIGKILL for the limits above (default 5;
    #: 0 sends SIGKILL at once).
    killGrace: float


def _typeName(value: object) -> str:
    return type(value).__name__


def _fsencode(value: Any, what: str) -> bytes:
    """``os.fsencode``, with an unencodable str (a lone surrogate that
    surrogateescape cannot map back to a byte) reported by parameter name."""
    try:
        if type(value) is str:  # os.fsencode's own rule, without its two calls
            return value.encode(_FS_ENCODING, _FS_ERRORS)
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
        # os.environ's entries are valid by construction (putenv refuses
        # the rest): no checks needed. Its encoded dict, where CPython keeps
        # one, is ten times quicker to walk than the mapping.
        data = getattr(os.environ, "_data", None)
        items = data.items() if isinstance(data, dict) else os.environb.items()
        return [k + b"=" + v for k, v in items]
    if not isinstance(env, Mapping):
        raise TypeError(f"spawnProcess: env must be a dict (or None for os.environ), not {_typeName(env)}")
    out = []
    encode = os.fsencode
    for key, value in env.items():
        try:
            k = key if type(key) is bytes else encode(key) if type(key) is str else None
            v = value if type(value) is bytes else encode(value) if type(value) is str else None
        except UnicodeEncodeError:
            k = v = None
        if k is None or v is None or not k or b"=" in k or b"\0" in k or b"\0" in v:
            return _checkedEnvEntries(env)
        out.append(k + b"=" + v)
    return out


def _checkedEnvEntries(env: Mapping[Any, Any]) -> list[bytes]:
    """:func:`_envEntries` the slow way, raising for the first bad entry
    by name (also str/bytes subclasses, checked one by one)."""
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
    soft = _resource.getrlimit(_resource.RLIMIT_NOFILE)[0]
    return _MAX_FD if soft == _resource.RLIM_INFINITY else soft


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _childFDs(childFDs: Mapping[Any, Any]) -> list[tuple[int, str, int]]:
    if not isinstance(childFDs, Mapping):
        raise TypeError(f"spawnProcess: childFDs must be a dict, not {_typeName(childFDs)}")
    out = []
    limit = _fdLimit()
    for child, value in sorted(childFDs.items(), key=lambda kv: kv[0] if _isInt(kv[0]) else -1):
        if not _isInt(child):
            raise TypeError(f"spawnProcess: childFDs key {child!r} must be an int (a child fd), not {_typeName(child)}")
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


_RLIMITS = {name[len("RLIMIT_") :]: value for name, value in vars(_resource).items() if name.startswith("RLIMIT_")}
_UNLIMITED = (1 << 64) - 1


def _seconds(value: object, what: str, positive: bool) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"spawnProcess: {what} must be a finite number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"spawnProcess: {what} must be {'positive' if positive else '>= 0'}, not {value!r}")
    return float(value)


def _limit(value: object, what: str) -> int:
    if value is None or value == _resource.RLIM_INFINITY:
        return _UNLIMITED
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UNLIMITED:
        raise ValueError(f"spawnProcess: {what} must be an int >= 0 or resource.RLIM_INFINITY, not {value!r}")
    return value


def _rlimits(rlimits: object) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(rlimits, Mapping):
        raise TypeError(f"spawnProcess: rlimits must be a dict, not {_typeName(rlimits)}")
    out = []
    for key, value in rlimits.items():
        if isinstance(key, str):
            name = key.upper().removeprefix("RLIMIT_")
            if name not in _RLIMITS:
                raise ValueError(f"spawnProcess: rlimits: unknown resource {key!r}")
            res = _RLIMITS[name]
        elif _isInt(key) and key in _RLIMITS.values():
            res = key
        else:
            raise ValueError(f"spawnProcess: rlimits: unknown resource {key!r}")
        if isinstance(value, tuple) and len(value) == 2:
            soft, hard = _limit(value[0], f"rlimits[{key!r}] soft"), _limit(value[1], f"rlimits[{key!r}] hard")
        else:
            soft = hard = _limit(value, f"rlimits[{key!r}]")
        if soft > hard:
            raise ValueError(f"spawnProcess: rlimits[{key!r}]: soft limit {soft} is above the hard limit {hard}")
        out.append((res, soft, hard))
    return tuple(out)


def _signalNumber(value: object, what: str) -> int:
    """A signal option's number: the engine's one parser, so every option
    takes what ``signalProcess`` takes (a name with or without ``SIG``, any
    case, ``RTMIN+n``/``RTMAX-n``, a number)."""
    from ferroproc._core import parseSignal

    number = parseSignal(value, f"spawnProcess: {what}")
    if number == 0:
        raise ValueError(f"spawnProcess: {what}: 0 is not a signal")
    return number


def _extensions(ext: Mapping[str, Any]) -> dict[str, Any]:
    """The ferroproc extensions of ``spawnProcess`` (process groups, time
    limits, resource limits and hygiene), checked, as ``SpawnArgs`` fields."""
    unknown = set(ext) - _EXTENSIONS
    if unknown:
        raise TypeError(f"spawnProcess: unexpected keyword argument {sorted(unknown)[0]!r}")
    out: dict[str, Any] = {}
    group = ext.get("processGroup", False)
    session = ext.get("newSession", False)
    if group is not False and group is not True and not (_isInt(group) and group > 0):
        raise ValueError(f"spawnProcess: processGroup must be True, False or a process group id, not {group!r}")
    if not isinstance(session, bool):
        raise TypeError(f"spawnProcess: newSession must be a bool, not {_typeName(session)}")
    if session and group is not False:
        raise ValueError("spawnProcess: newSession and processGroup exclude each other (a new session is a new group)")
    if session:
        out["session"] = "session"
    elif group is True:
        out["session"] = "group"
    elif group is not False:
        out["process_group"] = group
    for key, field in (("killGroupOnExit", "kill_group_on_exit"), ("killGroupOnLost", "kill_group_on_lost")):
        on = ext.get(key, False)
        if not isinstance(on, bool):
            raise TypeError(f"spawnProcess: {key} must be a bool, not {_typeName(on)}")
        if on and not (session or group is True):
            raise ValueError(f"spawnProcess: {key} needs processGroup=True or newSession=True (a group of its own)")
        out[field] = on
    if ext.get("timeout") is not None:
        out["timeout"] = _seconds(ext["timeout"], "timeout", True)
    if ext.get("idleTimeout") is not None:
        out["idle_timeout"] = _seconds(ext["idleTimeout"], "idleTimeout", True)
    if "killGrace" in ext:
        out["kill_grace"] = _seconds(ext["killGrace"], "killGrace", False)
    if ext.get("rlimits") is not None:
        out["rlimits"] = _rlimits(ext["rlimits"])
    umask = ext.get("umask")
    if umask is not None:
        if not _isInt(umask) or not 0 <= umask <= 0o777:
            raise ValueError(f"spawnProcess: umask must be an int from 0 to 0o777, not {umask!r}")
        out["umask"] = umask
    nice = ext.get("nice")
    if nice is not None:
        if not _isInt(nice) or not -20 <= nice <= 19:
            raise ValueError(f"spawnProcess: nice must be an int from -20 to 19, not {nice!r}")
        out["nice"] = nice
    cpus = ext.get("cpuAffinity")
    if cpus is not None:
        if isinstance(cpus, (str, bytes)) or not hasattr(cpus, "__iter__"):
            raise TypeError(f"spawnProcess: cpuAffinity must be an iterable of CPU numbers, not {_typeName(cpus)}")
        cpuList = list(cpus)
        if not cpuList or not all(_isInt(c) and 0 <= c < 1024 for c in cpuList):
            raise ValueError(f"spawnProcess: cpuAffinity must name CPUs 0 to 1023, not {cpuList!r}")
        out["affinity"] = cpuList
    if ext.get("parentDeathSignal") is not None:
        out["death_signal"] = _signalNumber(ext["parentDeathSignal"], "parentDeathSignal")
    noNewPrivileges = ext.get("noNewPrivileges", False)
    if not isinstance(noNewPrivileges, bool):
        raise TypeError(f"spawnProcess: noNewPrivileges must be a bool, not {_typeName(noNewPrivileges)}")
    out["no_new_privs"] = noNewPrivileges
    if ext.get("cgroup") is not None:
        cgroup = _toBytes(ext["cgroup"], "cgroup")
        if not os.path.isdir(cgroup):
            raise ValueError(f"spawnProcess: cgroup {os.fsdecode(cgroup)!r} is not a directory (a cgroup v2 group)")
        out["cgroup"] = cgroup
    return out


#: The keyword-only extensions ``spawnProcess`` takes.
_EXTENSIONS = frozenset(SpawnOptions.__optional_keys__)


def _checkProtocol(processProtocol: object, needsProtocol: bool, what: str = "spawnProcess: processProtocol") -> None:
    """Refuse what cannot receive a process's events; ``what`` names the
    argument in the message (the pipeline checks its ``protocols`` here too)."""
    if processProtocol is None:
        if needsProtocol:
            raise TypeError(f"{what} is None, but childFDs/usePTY create pipes that need one")
        return
    if isinstance(processProtocol, type):
        # A class has every method (unbound): it would pass the check below,
        # start the child, then fail in every callback.
        raise TypeError(
            f"{what} must be a protocol instance, not the class "
            f"{processProtocol.__name__} (did you mean {processProtocol.__name__}()?)"
        )
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(processProtocol, m, None))]
    if missing:
        raise TypeError(
            f"{what} {processProtocol!r} lacks {', '.join(missing)} (subclass ferroproc.protocol.ProcessProtocol)"
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
    options: Mapping[str, Any],
    method: SpawnMethod | None = None,
) -> SpawnArgs:
    """Check and normalise ``spawnProcess``'s arguments (``options``: its
    keyword-only ferroproc extensions, :class:`SpawnOptions`). Raises
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
        # Checked by the child's chdir, which names the directory (no stat
        # here: it would block an asyncio loop on a slow filesystem).
        cwd = _toBytes(path, "path")
        if not cwd:
            raise FileNotFoundError(errno.ENOENT, "spawnProcess: path must not be empty", "")

    ptyFds: tuple[int, int] | None = None
    if usePTY:
        if childFDs is not None:
            raise ValueError("Using childFDs is not supported with usePTY=True.")
        if isinstance(usePTY, (tuple, list)):
            ptyFds = _ptyFds(usePTY)
        fds: list[tuple[int, str, int]] = []
    elif childFDs is None and _fdLimit() > 2:
        fds = list(_DEFAULT_FDS)
    else:
        fds = _childFDs(_DEFAULT_CHILD_FDS if childFDs is None else childFDs)
    _checkProtocol(processProtocol, bool(usePTY) or any(kind != "fd" for _, kind, _ in fds))
    # No options: every field keeps its default (what _extensions({}) gives).
    fields = {"session": "inherit", "process_group": None, **(_extensions(options) if options else {})}
    if usePTY and fields["process_group"] is not None:
        # A PTY child leads a session of its own (its terminal's), so it can
        # join no other group: refused, as newSession with processGroup is.
        raise ValueError(
            f"spawnProcess: usePTY and processGroup={fields['process_group']} exclude each other "
            "(a PTY child leads a new session, so it cannot join an existing group)"
        )

    return SpawnArgs(
        executable=exe,
        argv=argv,
        envp=envp,
        # Only a bare name is looked up on the parent's PATH.
        parent_path=None if b"/" in exe else os.environb.get(b"PATH"),
        cwd=cwd,
        fds=fds,
        pty=bool(usePTY) and ptyFds is None,
        pty_fds=ptyFds,
        window_size=_windowSize(options.get("windowSize"), usePTY),
        uid=_id(uid, "uid"),
        gid=_id(gid, "gid"),
        method=method,
        **fields,
    )
