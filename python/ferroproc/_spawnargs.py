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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias, TypedDict

__all__ = ["SPAWN_PROCESS", "Caller", "ChildOptions", "SpawnArgs", "SpawnMethod", "SpawnOptions", "prepareSpawn"]

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
    #: The asyncio function a Popen-style call came through: the engine's
    #: own messages (a failed exec, chdir or setgroups) then name it and use
    #: Popen's words (``cwd``, ``user``, ``cpu_affinity``); None for
    #: ``spawnProcess``'s.
    caller: str | None = None


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


class Caller:
    """Who asked for the spawn, in the words of the call they wrote: the
    function a message names, and each ``spawnProcess`` parameter and option
    as that caller spelled it. Every check below words its message through
    one, so that an asyncio caller, who wrote ``cwd=`` and
    ``start_new_session=True``, is never told about ``path`` or
    ``newSession`` (``_popenargs.PopenCaller``).

    ``caller("umask")`` is ``"spawnProcess: umask"``, the start of a message;
    ``caller.name(what)`` the name alone. ``what`` is a parameter, possibly
    with a detail after it (``"args[2]"``, ``"env key 'A'"``,
    ``"rlimits['nofile'] soft"``): only the parameter is renamed."""

    __slots__ = ("function", "names", "ownGroup")

    def __init__(
        self,
        function: str,
        names: Mapping[str, str] | None = None,
        ownGroup: str = "processGroup=True or newSession=True",
    ) -> None:
        #: The function named at the start of every message.
        self.function = function
        #: ``spawnProcess``'s name → the caller's.
        self.names: Mapping[str, str] = names or {}
        #: How this caller asks for a process group the child leads.
        self.ownGroup = ownGroup

    def name(self, what: str) -> str:
        """``what`` as the caller named it."""
        if not self.names:
            return what
        end = 0
        while end < len(what) and (what[end].isalnum() or what[end] == "_"):
            end += 1
        head = what[:end]
        return self.names.get(head, head) + what[end:]

    def __call__(self, what: str) -> str:
        return f"{self.function}: {self.name(what)}"


#: ``spawnProcess``'s own words (every Twisted-style host).
SPAWN_PROCESS = Caller("spawnProcess")


def _fsencode(value: Any, what: str, caller: Caller) -> bytes:
    """``os.fsencode``, with an unencodable str (a lone surrogate that
    surrogateescape cannot map back to a byte) reported by parameter name."""
    try:
        if type(value) is str:  # os.fsencode's own rule, without its two calls
            return value.encode(_FS_ENCODING, _FS_ERRORS)
        return os.fsencode(value)
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{caller(what)} cannot be encoded to bytes ({e.reason} at position {e.start}): {value!r}"
        ) from None


def _toBytes(value: object, what: str, caller: Caller) -> bytes:
    """A str/bytes/path-like as bytes (filesystem encoding), NUL-free."""
    if isinstance(value, bytes):
        out = value
    elif isinstance(value, (str, os.PathLike)):
        out = _fsencode(value, what, caller)
    else:
        raise TypeError(f"{caller(what)} must be str, bytes or path-like, not {_typeName(value)}")
    if b"\0" in out:
        raise ValueError(f"{caller(what)} contains a NUL byte: {value!r}")
    return out


def _envEntries(env: Mapping[Any, Any] | None, caller: Caller) -> list[bytes]:
    if env is None:
        # os.environ's entries are valid by construction (putenv refuses
        # the rest): no checks needed. Its encoded dict, where CPython keeps
        # one, is ten times quicker to walk than the mapping.
        data = getattr(os.environ, "_data", None)
        items = data.items() if isinstance(data, dict) else os.environb.items()
        return [k + b"=" + v for k, v in items]
    if type(env) is not dict and not isinstance(env, Mapping):
        raise TypeError(f"{caller('env')} must be a dict (or None for os.environ), not {_typeName(env)}")
    out = []
    enc, errs = _FS_ENCODING, _FS_ERRORS
    for key, value in env.items():
        try:
            k = key if type(key) is bytes else key.encode(enc, errs) if type(key) is str else None
            v = value if type(value) is bytes else value.encode(enc, errs) if type(value) is str else None
        except UnicodeEncodeError:
            k = v = None
        if k is None or v is None or not k or b"=" in k or b"\0" in k or b"\0" in v:
            return _checkedEnvEntries(env, caller)
        out.append(k + b"=" + v)
    return out


def _checkedEnvEntries(env: Mapping[Any, Any], caller: Caller) -> list[bytes]:
    """:func:`_envEntries` the slow way, raising for the first bad entry
    by name (also str/bytes subclasses, checked one by one)."""
    out = []
    for key, value in env.items():
        if not isinstance(key, (str, bytes)):
            raise TypeError(f"{caller(f'env key {key!r}')} must be str or bytes, not {_typeName(key)}")
        if not isinstance(value, (str, bytes)):
            raise TypeError(f"{caller(f'env[{key!r}]')} must be str or bytes, not {_typeName(value)}")
        k = _fsencode(key, f"env key {key!r}", caller)
        if not k or b"=" in k or b"\0" in k:
            raise ValueError(f"{caller(f'env key {key!r}')} is not a valid variable name (empty, or has '=' or NUL)")
        v = _fsencode(value, f"env[{key!r}]", caller)
        if b"\0" in v:
            raise ValueError(f"{caller(f'env[{key!r}]')} contains a NUL byte")
        out.append(k + b"=" + v)
    return out


def _fdLimit() -> int:
    """The soft RLIMIT_NOFILE, which the child inherits: fd numbers at or
    above it cannot be given to the child."""
    soft = _resource.getrlimit(_resource.RLIMIT_NOFILE)[0]
    return _MAX_FD if soft == _resource.RLIM_INFINITY else soft


#: The largest process (group) id: a pid_t.
_PID_MAX = 2**31 - 1


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _childFDs(childFDs: Mapping[Any, Any], caller: Caller) -> list[tuple[int, str, int]]:
    if type(childFDs) is not dict and not isinstance(childFDs, Mapping):
        raise TypeError(f"{caller('childFDs')} must be a dict, not {_typeName(childFDs)}")
    out = []
    limit = _fdLimit()
    items = list(childFDs.items())
    try:
        items.sort()  # keys are unique: only they are compared
    except TypeError:  # a key that is no int: reported below
        items.sort(key=lambda kv: kv[0] if _isInt(kv[0]) else -1)
    for child, value in items:
        if type(child) is not int and not _isInt(child):
            raise TypeError(f"{caller(f'childFDs key {child!r}')} must be an int (a child fd), not {_typeName(child)}")
        if child < 0 or child >= _MAX_FD:
            raise ValueError(f"{caller(f'childFDs key {child}')} is not a valid fd number")
        if child >= limit:
            # dup2 in the child would fail with EBADF: say so here, by name.
            raise ValueError(
                f"{caller(f'childFDs key {child}')} is not below the open-file limit (RLIMIT_NOFILE {limit})"
            )
        if value == "r" or value == "w":
            out.append((child, str(value), -1))
        elif type(value) is int or _isInt(value):
            if value < 0:
                raise ValueError(f"{caller(f'childFDs[{child}]')}: parent fd {value} is negative")
            if value > _MAX_FD:
                raise ValueError(f"{caller(f'childFDs[{child}]')}: parent fd {value} is not a valid fd number")
            out.append((child, "fd", value))
        else:
            raise ValueError(f"{caller(f'childFDs[{child}]')}: {value!r} is not 'r', 'w' or an fd")
    return out


def _id(value: object, what: str, caller: Caller) -> int | None:
    if value is None:
        return None
    if not _isInt(value):
        raise TypeError(f"{caller(what)} must be an int or None, not {_typeName(value)}")
    assert isinstance(value, int)
    if not 0 <= value < 2**32 - 1:
        raise ValueError(f"{caller(what)} {value} is out of range")
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


def _seconds(value: object, what: str, positive: bool, caller: Caller) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{caller(what)} must be a finite number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{caller(what)} must be {'positive' if positive else '>= 0'}, not {value!r}")
    return float(value)


def _limit(value: object, what: str, caller: Caller) -> int:
    if value is None or value == _resource.RLIM_INFINITY:
        return _UNLIMITED
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UNLIMITED:
        raise ValueError(f"{caller(what)} must be an int >= 0 or resource.RLIM_INFINITY, not {value!r}")
    return value


def _rlimits(rlimits: object, caller: Caller) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(rlimits, Mapping):
        raise TypeError(f"{caller('rlimits')} must be a dict, not {_typeName(rlimits)}")
    out = []
    for key, value in rlimits.items():
        if isinstance(key, str):
            name = key.upper().removeprefix("RLIMIT_")
            if name not in _RLIMITS:
                raise ValueError(f"{caller('rlimits')}: unknown resource {key!r}")
            res = _RLIMITS[name]
        elif _isInt(key) and key in _RLIMITS.values():
            res = key
        else:
            raise ValueError(f"{caller('rlimits')}: unknown resource {key!r}")
        if isinstance(value, tuple) and len(value) == 2:
            soft = _limit(value[0], f"rlimits[{key!r}] soft", caller)
            hard = _limit(value[1], f"rlimits[{key!r}] hard", caller)
        else:
            soft = hard = _limit(value, f"rlimits[{key!r}]", caller)
        if soft > hard:
            raise ValueError(f"{caller(f'rlimits[{key!r}]')}: soft limit {soft} is above the hard limit {hard}")
        out.append((res, soft, hard))
    return tuple(out)


def _signalNumber(value: object, what: str, caller: Caller) -> int:
    """A signal option's number: the engine's one parser, so every option
    takes what ``signalProcess`` takes (a name with or without ``SIG``, any
    case, ``RTMIN+n``/``RTMAX-n``, a number)."""
    from ferroproc._core import parseSignal

    number = parseSignal(value, caller(what))
    if number == 0:
        raise ValueError(f"{caller(what)}: 0 is not a signal")
    return number


def unexpectedKeyword(function: str, name: str, known: Iterable[str]) -> TypeError:
    """The ``TypeError`` for a keyword ``function`` does not take, naming the
    nearest one it does (a typo, or the other naming convention:
    ``killGroupOnExit`` for ``kill_group_on_exit``)."""
    import difflib

    def plain(word: str) -> str:
        return word.replace("_", "").lower()

    byPlain = {plain(k): k for k in known}
    close = difflib.get_close_matches(plain(name), list(byPlain), n=1, cutoff=0.6)
    hint = f" (did you mean {byPlain[close[0]]!r}?)" if close else ""
    return TypeError(f"{function}: unexpected keyword argument {name!r}{hint}")


def _extensions(ext: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
    """The ferroproc extensions of ``spawnProcess`` (process groups, time
    limits, resource limits and hygiene), checked, as ``SpawnArgs`` fields."""
    unknown = set(ext) - _EXTENSIONS
    if unknown:
        raise unexpectedKeyword(caller.function, sorted(unknown)[0], _EXTENSIONS)
    out: dict[str, Any] = {}
    group = ext.get("processGroup", False)
    session = ext.get("newSession", False)
    # A group id is a pid_t: past it the bindings could only say "failed to extract".
    if group is not False and group is not True and not (_isInt(group) and 0 < group <= _PID_MAX):
        raise ValueError(f"{caller('processGroup')} must be True, False or a process group id, not {group!r}")
    if not isinstance(session, bool):
        raise TypeError(f"{caller('newSession')} must be a bool, not {_typeName(session)}")
    if session and group is not False:
        raise ValueError(
            f"{caller('newSession')} and {caller.name('processGroup')} exclude each other "
            "(a new session is a new group)"
        )
    if session:
        out["session"] = "session"
    elif group is True:
        out["session"] = "group"
    elif group is not False:
        out["process_group"] = group
    for key, field in (("killGroupOnExit", "kill_group_on_exit"), ("killGroupOnLost", "kill_group_on_lost")):
        on = ext.get(key, False)
        if not isinstance(on, bool):
            raise TypeError(f"{caller(key)} must be a bool, not {_typeName(on)}")
        if on and not (session or group is True):
            raise ValueError(f"{caller(key)} needs {caller.ownGroup} (a group of its own)")
        out[field] = on
    if ext.get("timeout") is not None:
        out["timeout"] = _seconds(ext["timeout"], "timeout", True, caller)
    if ext.get("idleTimeout") is not None:
        out["idle_timeout"] = _seconds(ext["idleTimeout"], "idleTimeout", True, caller)
    if "killGrace" in ext:
        out["kill_grace"] = _seconds(ext["killGrace"], "killGrace", False, caller)
    if ext.get("rlimits") is not None:
        out["rlimits"] = _rlimits(ext["rlimits"], caller)
    umask = ext.get("umask")
    if umask is not None:
        if not _isInt(umask) or not 0 <= umask <= 0o777:
            raise ValueError(f"{caller('umask')} must be an int from 0 to 0o777, not {umask!r}")
        out["umask"] = umask
    nice = ext.get("nice")
    if nice is not None:
        if not _isInt(nice) or not -20 <= nice <= 19:
            raise ValueError(f"{caller('nice')} must be an int from -20 to 19, not {nice!r}")
        out["nice"] = nice
    cpus = ext.get("cpuAffinity")
    if cpus is not None:
        if isinstance(cpus, (str, bytes)) or not hasattr(cpus, "__iter__"):
            raise TypeError(f"{caller('cpuAffinity')} must be an iterable of CPU numbers, not {_typeName(cpus)}")
        cpuList = list(cpus)
        if not cpuList or not all(_isInt(c) and 0 <= c < 1024 for c in cpuList):
            raise ValueError(f"{caller('cpuAffinity')} must name CPUs 0 to 1023, not {cpuList!r}")
        out["affinity"] = cpuList
    if ext.get("parentDeathSignal") is not None:
        out["death_signal"] = _signalNumber(ext["parentDeathSignal"], "parentDeathSignal", caller)
    noNewPrivileges = ext.get("noNewPrivileges", False)
    if not isinstance(noNewPrivileges, bool):
        raise TypeError(f"{caller('noNewPrivileges')} must be a bool, not {_typeName(noNewPrivileges)}")
    out["no_new_privs"] = noNewPrivileges
    if ext.get("cgroup") is not None:
        cgroup = _toBytes(ext["cgroup"], "cgroup", caller)
        if not os.path.isdir(cgroup):
            raise ValueError(f"{caller('cgroup')} {os.fsdecode(cgroup)!r} is not a directory (a cgroup v2 group)")
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
    kind = type(processProtocol)
    if kind in _PROTOCOL_TYPES:
        return
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(processProtocol, m, None))]
    if missing:
        raise TypeError(
            f"{what} {processProtocol!r} lacks {', '.join(missing)} (subclass ferroproc.protocol.ProcessProtocol)"
        )
    if getattr(kind, "__dictoffset__", 1) == 0:
        # Its instances have no ``__dict__``, so its methods are its class's
        # (no instance can hide one): once checked, every instance of it
        # passes. Asked of the class: ``hasattr(instance, "__dict__")`` would
        # make every instance's dict (about 64 bytes per live child).
        _PROTOCOL_TYPES.add(kind)


#: Protocol classes whose instances have no ``__dict__`` and passed
#: :func:`_checkProtocol` (the asyncio host's bridge, spawned for every child).
_PROTOCOL_TYPES: set[type] = set()


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
    *,
    caller: Caller = SPAWN_PROCESS,
    fields: Mapping[str, Any] | None = None,
) -> SpawnArgs:
    """Check and normalise ``spawnProcess``'s arguments (``options``: its
    keyword-only ferroproc extensions, :class:`SpawnOptions`). Raises
    ``TypeError``/``ValueError``/``OSError`` naming the bad parameter as
    ``caller`` named it. ``fields``: ``SpawnArgs`` fields of the caller's own
    (Popen's rules), set as given."""
    exe = _toBytes(executable, "executable", caller)
    if not exe:
        raise ValueError(f"{caller('executable')} must not be empty")
    if type(args) is not list and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence)):
        raise TypeError(f"{caller('args')} must be a list or tuple of str/bytes, not {_typeName(args)}")
    if len(args) == 0:
        raise ValueError(f"{caller('args')} must not be empty (args[0] is the program's name)")
    argv = [_toBytes(a, f"args[{i}]", caller) for i, a in enumerate(args)]
    envp = _envEntries(env, caller)
    cwd = None
    if path is not None:
        # Checked by the child's chdir, which names the directory (no stat
        # here: it would block an asyncio loop on a slow filesystem).
        cwd = _toBytes(path, "path", caller)
        if not cwd:
            raise FileNotFoundError(errno.ENOENT, f"{caller('path')} must not be empty", "")

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
        fds = _childFDs(_DEFAULT_CHILD_FDS if childFDs is None else childFDs, caller)
    _checkProtocol(processProtocol, bool(usePTY) or any(kind != "fd" for _, kind, _ in fds))
    # No options: every field keeps its default (what _extensions({}) gives).
    chosen = {"session": "inherit", "process_group": None, **(_extensions(options, caller) if options else {})}
    if usePTY and chosen["process_group"] is not None:
        # A PTY child leads a session of its own (its terminal's), so it can
        # join no other group: refused, as newSession with processGroup is.
        raise ValueError(
            f"spawnProcess: usePTY and processGroup={chosen['process_group']} exclude each other "
            "(a PTY child leads a new session, so it cannot join an existing group)"
        )

    if fields is not None:
        chosen.update(fields)
    if "parent_path" not in chosen:
        # Only a bare name is looked up on the parent's PATH.
        chosen["parent_path"] = None if b"/" in exe else os.environb.get(b"PATH")
    return SpawnArgs(
        executable=exe,
        argv=argv,
        envp=envp,
        cwd=cwd,
        fds=fds,
        pty=bool(usePTY) and ptyFds is None,
        pty_fds=ptyFds,
        window_size=_windowSize(options.get("windowSize"), usePTY),
        uid=_id(uid, "uid", caller),
        gid=_id(gid, "gid", caller),
        method=method,
        **chosen,
    )
