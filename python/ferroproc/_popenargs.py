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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ferroproc._spawnargs import SpawnArgs, prepareSpawn

__all__ = ["FERROPROC_KEYWORDS", "PopenSpawn", "preparePopen"]

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


class PopenSpawn(NamedTuple):
    """What to spawn, and the parent's fds to close once it has been."""

    args: SpawnArgs
    #: Child fds that are pipes to us: ``{childFD: 'r' | 'w'}``.
    pipes: dict[int, str]
    #: fds opened for the spawn (``DEVNULL``), closed after it.
    opened: list[int]


def _fd(value: Any, what: str) -> int:
    """A stdio argument that names an fd: an int or a file object."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be PIPE, DEVNULL, an fd, a file object or None, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what}={value} is not PIPE, STDOUT, DEVNULL or an fd")
        return value
    fileno = getattr(value, "fileno", None)
    if fileno is None:
        raise TypeError(f"{what} must be PIPE, DEVNULL, an fd, a file object or None, not {type(value).__name__}")
    return int(fileno())


def _isOpen(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _numericId(value: Any, what: str, byName: Callable[[str], int]) -> int:
    """A uid or gid given as a number or a name (looked up with ``byName``;
    an unknown name raises the database's ``KeyError``, as Popen lets it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return byName(value)
    raise TypeError(f"{what} must be an int or a str, not {type(value).__name__}")


def _uid(user: Any) -> int:
    import pwd

    return _numericId(user, "user", lambda name: pwd.getpwnam(name).pw_uid)


def _gid(group: Any, what: str = "group") -> int:
    import grp

    return _numericId(group, what, lambda name: grp.getgrnam(name).gr_gid)


def _stdio(
    stdin: Any, stdout: Any, stderr: Any, passFds: Iterable[int], opened: list[int]
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
                raise ValueError(f"STDOUT can only be used for stderr, not {name}")
            if 1 in pipes:
                same.append((2, "same", 1))
            elif 1 in childFDs:
                childFDs[2] = childFDs[1]
        else:
            childFDs[target] = _fd(value, name)
    for entry in passFds:
        fd = int(entry)  # as Popen takes them
        if fd < 0:
            raise ValueError(f"pass_fds: {entry!r} is not an fd")
        if fd > 2:
            childFDs[fd] = fd
    return childFDs, pipes, same


def preparePopen(
    protocol: Any,
    args: Sequence[Any],
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    kwargs: Mapping[str, Any],
) -> PopenSpawn | None:
    """Check and translate a ``subprocess_exec``/``subprocess_shell`` call
    for ``protocol`` (the engine's protocol of the transport): ``args`` is
    the program and its arguments (or ``(cmd,)`` with ``shell``); ``kwargs`` the Popen keywords asyncio passes on (and
    ferroproc's own, :data:`FERROPROC_KEYWORDS`). Returns ``None`` when
    asyncio's own path must be taken (``preexec_fn``). Raises what Popen
    raises for bad arguments (``TypeError``/``ValueError``), before any child
    exists; fds it opened are closed again on error."""
    kw = dict(kwargs)
    if kw.get("preexec_fn") is not None:
        return None
    kw.pop("preexec_fn", None)
    for name, default in _WINDOWS_ONLY.items():
        if kw.pop(name, default) != default:
            raise ValueError(f"{name} is only supported on Windows platforms")
    executable = kw.pop("executable", None)
    cwd = kw.pop("cwd", None)
    env = kw.pop("env", None)
    closeFds = kw.pop("close_fds", True)
    passFds = tuple(kw.pop("pass_fds", ()))
    restoreSignals = kw.pop("restore_signals", True)
    newSession = kw.pop("start_new_session", False)
    processGroup = kw.pop("process_group", None)
    user = kw.pop("user", None)
    group = kw.pop("group", None)
    extraGroups = kw.pop("extra_groups", None)
    umask = kw.pop("umask", -1)
    pipesize = kw.pop("pipesize", -1)
    options: dict[str, Any] = {}
    for name, option in FERROPROC_KEYWORDS.items():
        if name in kw:
            options[option] = kw.pop(name)
    if kw:
        raise TypeError(f"unexpected keyword argument {sorted(kw)[0]!r}")

    if shell:
        (cmd,) = args
        argv: list[Any] = ["/bin/sh", "-c", cmd]
    else:
        argv = list(args)
        if not argv:
            raise ValueError("no program given")
    program = argv[0] if executable is None else executable
    if shell and executable is not None:
        argv[0] = executable
    if newSession:
        options["newSession"] = True
    if processGroup is not None:
        if not isinstance(processGroup, int) or isinstance(processGroup, bool):
            raise TypeError(f"process_group must be an int, not {type(processGroup).__name__}")
        if processGroup < 0:  # Popen's "no process group"
            processGroup = None
    if processGroup is not None:
        if newSession:
            # Popen applies both: setsid() then setpgid(0, pgid); a new
            # session leader's group is its own already.
            if processGroup not in (0,):
                raise ValueError("start_new_session and process_group (other than 0) exclude each other")
        else:
            options["processGroup"] = True if processGroup == 0 else processGroup
    if umask is not None and umask >= 0:
        options["umask"] = umask

    opened: list[int] = []
    try:
        childFDs, pipes, same = _stdio(stdin, stdout, stderr, passFds, opened)
        uid = None if user is None else _uid(user)
        gid = None if group is None else _gid(group)
        groups = None if extraGroups is None else [_gid(g, "extra_groups entry") for g in extraGroups]
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
        )
        spawn = spawn._replace(
            fds=spawn.fds + same,
            parent_path=os.fsencode(os.defpath),
            exact_ids=True,
            groups=groups,
            signals="restore" if restoreSignals else "inherit",
            keep_fds=not closeFds,
            pipe_size=pipesize if pipesize is not None and pipesize > 0 else None,
        )
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    return PopenSpawn(spawn, pipes, opened)
