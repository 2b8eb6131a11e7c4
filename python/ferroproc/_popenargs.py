"""``subprocess.Popen``'s keywords, as asyncio passes them on, turned into
ferroproc's spawn arguments (:class:`ferroproc._spawnargs.SpawnArgs`).

Popen's rules are kept where they differ from Twisted's ``spawnProcess``:
``env=None`` is our environment; a bare program name is looked up on the
child's ``PATH`` (else ``os.defpath``); ``user``/``group``/``extra_groups``
set exactly those ids; ``restore_signals`` resets SIGPIPE and SIGXFSZ only
(signals ignored here stay ignored otherwise); ``close_fds``/``pass_fds``;
``stdin``/``stdout``/``stderr`` as ``PIPE``, ``DEVNULL``, ``STDOUT``, an
fd, a file object or ``None`` (ours).

:func:`preparePopen` returns ``None`` for what only a fork can do
(``preexec_fn``): the caller then takes asyncio's own path.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ferroproc._spawnargs import Caller, SpawnArgs, prepareSpawn, unexpectedKeyword

__all__ = ["ASYNCIO_KEYWORDS", "FERROPROC_KEYWORDS", "PopenCaller", "PopenSpawn", "preparePopen"]

#: ferroproc's own keywords (process control), and the ``spawnProcess``
#: options they stand for.
FERROPROC_KEYWORDS: Mapping[str, str] = {
    "kill_group_on_exit": "killGroupOnExit",
    "kill_group_on_lost": "killGroupOnLost",
    "timeout": "timeout",
    "idle_timeout": "idleTimeout",
    "kill_grace": "killGrace",
    "rlimits": "rlimits",
    "nice": "nice",
    "cpu_affinity": "cpuAffinity",
    "parent_death_signal": "parentDeathSignal",
    "no_new_privileges": "noNewPrivileges",
    "cgroup": "cgroup",
}

#: Popen keywords that only matter on Windows: accepted with their defaults.
_WINDOWS_ONLY = {"startupinfo": None, "creationflags": 0}

#: The Popen keywords :func:`preparePopen` takes.
_POPEN_KEYWORDS = frozenset(
    {
        "executable",
        "preexec_fn",
        "close_fds",
        "cwd",
        "env",
        "restore_signals",
        "start_new_session",
        "process_group",
        "pass_fds",
        "user",
        "group",
        "extra_groups",
        "umask",
        "pipesize",
        *_WINDOWS_ONLY,
    }
)

#: What :func:`preparePopen` takes in ``kwargs``.
_KNOWN = _POPEN_KEYWORDS | frozenset(FERROPROC_KEYWORDS)

#: Every keyword an asyncio caller may pass to ``create_subprocess_*`` (or
#: ``loop.subprocess_*``): what an unknown one is compared with.
ASYNCIO_KEYWORDS = frozenset(
    {
        "stdin",
        "stdout",
        "stderr",
        "limit",
        "shell",
        "bufsize",
        "universal_newlines",
        "text",
        "encoding",
        "errors",
        *_POPEN_KEYWORDS,
        *FERROPROC_KEYWORDS,
    }
)

#: ``spawnProcess``'s names in the words of an asyncio caller.
_POPEN_NAMES: Mapping[str, str] = {
    "path": "cwd",
    "uid": "user",
    "gid": "group",
    "processGroup": "process_group",
    "newSession": "start_new_session",
    **{option: keyword for keyword, option in FERROPROC_KEYWORDS.items()},
}
_STDIO_NAMES = ("stdin", "stdout", "stderr")
#: Where a bare program name is looked up when the child's environment has
#: no ``PATH`` (Popen's rule, ``os.get_exec_path``).
_DEFPATH = os.fsencode(os.defpath)


class PopenCaller(Caller):
    """An asyncio call's words (:class:`ferroproc._spawnargs.Caller`): Popen's
    keywords (``cwd``, ``user``, ``start_new_session``, ``process_group``),
    ferroproc's in snake_case, and the arguments by their place in the call:
    ``program`` and ``args[i]`` (``create_subprocess_exec(program, *args)``)
    or ``cmd`` (the shell's), the stdio keywords and ``pass_fds`` for the
    childFDs built from them."""

    __slots__ = ("_executable", "_shell")

    def __init__(self, function: str, shell: bool, executable: bool) -> None:
        # Made for every spawn: Caller's fields set here, without its __init__.
        self.function = function
        self.names = _POPEN_NAMES
        self.ownGroup = "start_new_session=True or process_group=0"
        self._shell = shell
        self._executable = executable

    def name(self, what: str) -> str:
        if what.startswith("args["):
            index, rest = what[5:].split("]", 1)
            i = int(index)
            if i == 0:
                head = "executable" if self._executable else "program"
            elif self._shell:
                head = "cmd" if i == 2 else f"argv[{i}]"
            else:
                head = f"args[{i - 1}]"
            return head + rest
        if what == "executable":
            return "executable" if self._executable else "program"
        if what.startswith("childFDs"):
            fd = int("".join(c for c in what.split("]")[0] if c.isdigit()))
            rest = what.split("]", 1)[1] if "]" in what else ""
            return (_STDIO_NAMES[fd] if fd < 3 else f"pass_fds entry {fd}") + rest
        return super().name(what)


class PopenSpawn(NamedTuple):
    """What to spawn, and the parent's fds to close once it has been."""

    args: SpawnArgs
    #: Child fds that are pipes to us: ``{childFD: 'r' | 'w'}``.
    pipes: dict[int, str]
    #: fds opened for the spawn (``DEVNULL``), closed after it.
    opened: list[int]


def _fd(value: Any, what: str, caller: Caller) -> int:
    """A stdio argument that names an fd: an int (a ``bool`` too, as Popen
    takes it: ``stdin=False`` is fd 0) or a file object."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{caller.function}: {what}={value} is not PIPE, STDOUT, DEVNULL or an fd")
        return int(value)
    fileno = getattr(value, "fileno", None)
    if fileno is None:
        raise TypeError(
            f"{caller.function}: {what} must be PIPE, DEVNULL, an fd, a file object or None, not {type(value).__name__}"
        )
    try:
        return int(fileno())
    except (ValueError, OSError) as e:
        # A closed file, or one with no fd (io.StringIO): Popen's exception
        # (io.UnsupportedOperation, ValueError), saying which argument.
        raise type(e)(f"{caller.function}: {what}: {e}") from None


def _isOpen(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _numericId(value: Any, what: str, caller: Caller, byName: Callable[[str], int]) -> int:
    """A uid or gid given as a number or a name (looked up with ``byName``;
    an unknown name raises the database's ``KeyError``, as Popen lets it,
    with the keyword named)."""
    if isinstance(value, int):  # a bool too, as Popen takes it
        number = int(value)
    elif isinstance(value, str):
        try:
            number = byName(value)
        except KeyError as e:
            raise KeyError(f"{caller(what)} {value!r} not found ({e.args[0] if e.args else e})") from None
    else:
        raise TypeError(f"{caller(what)} must be an int or a str, not {type(value).__name__}")
    if number < 0 or number >= 2**32 - 1:
        # Popen's words: "User ID cannot be negative, got -1".
        label = f"{caller('extra_groups')}: group" if what == "extra_groups entry" else caller(what)
        problem = f"cannot be negative, got {number}" if number < 0 else f"{number} is out of range"
        raise ValueError(f"{label} ID {problem}")
    return number


def _uid(user: Any, caller: Caller) -> int:
    import pwd

    return _numericId(user, "user", caller, lambda name: pwd.getpwnam(name).pw_uid)


def _gid(group: Any, what: str, caller: Caller) -> int:
    import grp

    return _numericId(group, what, caller, lambda name: grp.getgrnam(name).gr_gid)


def _extraGroups(groups: Any, caller: Caller) -> list[int]:
    """Popen's ``extra_groups``: names or numbers, at most the system's
    ``NGROUPS_MAX`` (Popen's ``ValueError`` beyond it, before any child)."""
    if isinstance(groups, (str, bytes)):
        raise ValueError(f"{caller('extra_groups')} must be a list, not a string")
    try:
        entries = list(groups)
    except TypeError:
        raise TypeError(f"{caller('extra_groups')} must be a list, not {type(groups).__name__}") from None
    gids = [_gid(g, "extra_groups entry", caller) for g in entries]
    limit = os.sysconf("SC_NGROUPS_MAX")
    if len(gids) > limit:
        raise ValueError(f"{caller('extra_groups')}: too many extra_groups ({len(gids)}; NGROUPS_MAX is {limit})")
    return gids


def _umask(umask: Any, caller: Caller) -> int | None:
    """Popen's ``umask``: any C int; a negative one leaves ours, and the
    kernel keeps the 0o777 bits of the rest."""
    if not isinstance(umask, int):
        raise TypeError(f"{caller('umask')} must be an int, not {type(umask).__name__}")
    if not -(2**31) <= umask < 2**31:
        raise OverflowError(f"{caller('umask')} {umask} is out of range (a C int)")
    return None if umask < 0 else umask & 0o777


def _stdio(
    stdin: Any, stdout: Any, stderr: Any, passFds: Iterable[Any], opened: list[int], caller: Caller
) -> tuple[dict[int, str | int], dict[int, str], list[tuple[int, str, int]]]:
    """childFDs for the three stdio arguments and ``pass_fds``, the pipes to
    us, and the extra ``(2, 'same', 1)`` entry of ``stderr=STDOUT`` onto a
    pipe."""
    childFDs: dict[int, str | int] = {}
    pipes: dict[int, str] = {}
    same: list[tuple[int, str, int]] = []
    devnull: list[int] = []

    def nullFd() -> int:
        if not devnull:
            fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            opened.append(fd)
            devnull.append(fd)
        return devnull[0]

    for target, value, name, pipeKind in (
        (0, stdin, "stdin", "w"),
        (1, stdout, "stdout", "r"),
        (2, stderr, "stderr", "r"),
    ):
        if value is None:
            if _isOpen(target):
                childFDs[target] = target
        elif value == subprocess.PIPE:
            childFDs[target] = pipeKind
            pipes[target] = pipeKind
        elif value == subprocess.DEVNULL:
            childFDs[target] = nullFd()
        elif value == subprocess.STDOUT:
            if target != 2:
                raise ValueError(f"{caller.function}: STDOUT can only be used for stderr, not {name}")
            if 1 in pipes:
                same.append((2, "same", 1))
            elif 1 in childFDs:
                childFDs[2] = childFDs[1]
        else:
            childFDs[target] = _fd(value, name, caller)
    for entry in passFds:
        try:
            fd = int(entry)  # as Popen takes them
        except (TypeError, ValueError):
            raise TypeError(f"{caller('pass_fds')}: {entry!r} is not an fd") from None
        if fd < 0:
            raise ValueError(f"{caller('pass_fds')}: {entry!r} is not an fd")
        if fd > 2:
            childFDs[fd] = fd
    return childFDs, pipes, same


#: The largest ``pipesize`` (F_SETPIPE_SZ takes a C int).
_PIPESIZE_MAX = 2**31 - 1
#: The largest process group id (a pid_t).
_PID_MAX = 2**31 - 1


def preparePopen(
    protocol: Any,
    args: Sequence[Any],
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    kwargs: Mapping[str, Any],
    function: str,
) -> PopenSpawn | None:
    """Check and translate a ``subprocess_exec``/``subprocess_shell`` call
    for ``protocol`` (the engine's protocol of the transport): ``args`` is
    the program and its arguments (or ``(cmd,)`` with ``shell``); ``kwargs``
    the Popen keywords asyncio passes on (and ferroproc's own,
    :data:`FERROPROC_KEYWORDS`); ``function`` what the caller called
    (``"create_subprocess_exec"``...), named in every message with the
    keywords as they wrote them. Returns ``None`` when asyncio's own path
    must be taken (``preexec_fn``). Raises what Popen raises for bad
    arguments (``TypeError``/``ValueError``/``KeyError``/``OverflowError``),
    before any child exists; fds it opened are closed again on error."""
    kw = kwargs
    if not _KNOWN.issuperset(kw):
        unknown = sorted(name for name in kw if name not in _KNOWN)
        raise unexpectedKeyword(function, unknown[0], ASYNCIO_KEYWORDS)
    if kw.get("preexec_fn") is not None:
        ours = sorted(name for name in kw if name in FERROPROC_KEYWORDS)
        if ours:
            # Popen would say "unexpected keyword argument", naming neither
            # the function called nor why.
            raise TypeError(
                f"{function}: {ours[0]} cannot be used with preexec_fn (the loop's own implementation "
                "starts such a child, without ferroproc's process control)"
            )
        return None
    get = kw.get
    executable = get("executable")
    caller = PopenCaller(function, shell, executable is not None)
    for name, default in _WINDOWS_ONLY.items():
        if get(name, default) != default:
            raise ValueError(f"{function}: {name} is only supported on Windows platforms")
    cwd = get("cwd")
    env = get("env")
    closeFds = get("close_fds", True)
    try:
        passFds = tuple(get("pass_fds", ()))
    except TypeError:
        given = type(get("pass_fds")).__name__
        raise TypeError(f"{function}: pass_fds must be a collection of fds, not {given}") from None
    restoreSignals = get("restore_signals", True)
    newSession = get("start_new_session", False)
    processGroup = get("process_group")
    user = get("user")
    group = get("group")
    extraGroups = get("extra_groups")
    umask = get("umask", -1)
    pipesize = get("pipesize", -1)
    options: dict[str, Any] = {}
    for name in kw:
        option = FERROPROC_KEYWORDS.get(name)
        if option is not None:
            options[option] = kw[name]

    if shell:
        (cmd,) = args
        argv: list[Any] = ["/bin/sh", "-c", cmd]
    else:
        argv = list(args)
        if not argv:
            raise ValueError(f"{function}: no program given")
    program = argv[0] if executable is None else executable
    if shell and executable is not None:
        argv[0] = executable
    if newSession:
        options["newSession"] = True
    if processGroup is not None:
        if not isinstance(processGroup, int) or isinstance(processGroup, bool):
            raise TypeError(f"{function}: process_group must be an int, not {type(processGroup).__name__}")
        if processGroup < 0:  # Popen's "no process group"
            processGroup = None
        elif processGroup > _PID_MAX:  # Popen's error for what no pid_t holds
            raise OverflowError(f"{function}: process_group {processGroup} is out of range (a process group id)")
    if processGroup is not None:
        if newSession:
            # Popen applies both: setsid() then setpgid(0, pgid); a new
            # session leader's group is its own already.
            if processGroup != 0:
                raise ValueError(
                    f"{function}: start_new_session and process_group={processGroup} exclude each other "
                    "(a new session is a new group)"
                )
        else:
            options["processGroup"] = True if processGroup == 0 else processGroup
    if umask is not None and umask != -1:  # -1: Popen's default, ours
        mask = _umask(umask, caller)
        if mask is not None:
            options["umask"] = mask
    if pipesize is None:
        pipesize = -1
    if not isinstance(pipesize, int):
        raise TypeError(f"{function}: pipesize must be an int, not {type(pipesize).__name__}")
    if pipesize > _PIPESIZE_MAX:
        # A C int (F_SETPIPE_SZ's), as Popen's fcntl call would refuse it.
        raise OverflowError(f"{function}: pipesize {pipesize} is out of range (a C int)")
    if passFds and not closeFds:
        warnings.warn("pass_fds overriding close_fds.", RuntimeWarning, stacklevel=2)
        closeFds = True

    opened: list[int] = []
    try:
        childFDs: dict[int, str | int] | None
        same: list[tuple[int, str, int]]
        if type(stdin) is int and stdin == stdout == stderr == subprocess.PIPE and not passFds:
            # The usual form: spawnProcess's default childFDs, which
            # prepareSpawn has ready-made.
            childFDs, pipes, same = None, {0: "w", 1: "r", 2: "r"}, []
        else:
            childFDs, pipes, same = _stdio(stdin, stdout, stderr, passFds, opened, caller)
        uid = None if user is None else _uid(user, caller)
        gid = None if group is None else _gid(group, "group", caller)
        groups = None if extraGroups is None else _extraGroups(extraGroups, caller)
        spawn = prepareSpawn(
            protocol,
            program,
            argv,
            env,
            cwd,
            uid,
            gid,
            False,
            childFDs,
            options,
            caller=caller,
            fields={
                "parent_path": _DEFPATH,
                "exact_ids": True,
                "groups": groups,
                "signals": "restore" if restoreSignals else "inherit",
                "keep_fds": not closeFds,
                "pipe_size": pipesize if pipesize > 0 else None,
                "caller": function,
            },
        )
        spawn.fds.extend(same)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    return PopenSpawn(spawn, pipes, opened)
