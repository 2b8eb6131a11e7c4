"""Measurement helpers shared by every Python runner (one fresh process per run)."""

from __future__ import annotations

import os
import resource
import shutil
import time

#: Every child of every peer gets this environment (argv[0] resolved to an absolute path).
ENV = {"PATH": "/usr/bin:/bin"}

#: The line S5 echoes; the native baseline uses the same bytes.
ECHO_LINE = b"ferroproc round trip\n"


class NotApplicable(Exception):
    """The peer cannot do what this case asks (reported as "n/a", not as an error)."""


def exe(name: str) -> str:
    """Absolute path of a program on PATH (the same for every peer)."""
    path = shutil.which(name, path=ENV["PATH"])
    if path is None:
        raise FileNotFoundError(name)
    return path


def now() -> float:
    return time.perf_counter()


def cpu_seconds() -> float:
    """User + system CPU time of this process (not its children)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise KeyError(field)


def rss_baseline() -> float:
    """Reset this process's peak RSS to its current RSS and return that, in MiB.

    ru_maxrss is not used as the baseline: after a vfork-style spawn + exec, Linux starts the
    child's ru_maxrss at the *parent's* peak (the orchestrator's), which hides growth.
    VmHWM is per address space, and writing 5 to clear_refs resets it to VmRSS (Linux 4.0+).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not resettable: the growth below is then a lower bound
    return _status_kib("VmRSS:") / 1024.0


def peak_rss_mib() -> float:
    """Peak resident set size of this process's address space (VmHWM), in MiB."""
    return _status_kib("VmHWM:") / 1024.0


def thread_count() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def hold_memory(mib: int) -> bytearray:
    """Allocate ``mib`` MiB and touch every page, so that the parent really is that big."""
    buf = bytearray(mib << 20)
    pages = len(range(0, len(buf), 4096))
    buf[::4096] = b"\x01" * pages
    return buf


def pin_to_one_cpu(cpu: int) -> None:
    """Pin this process (and so every child it spawns) to one CPU."""
    os.sched_setaffinity(0, {cpu})


def open_fd_count() -> int:
    """How many fds this process holds (the listing's own fd not counted)."""
    return len(os.listdir("/proc/self/fd")) - 1


def held_children(total_fds: int) -> int:
    """S8: how many live ``cat`` children a run holding ``total_fds`` fds keeps (one per 8 fds:
    three pipes each, plus a pidfd where the peer keeps one: about half the fds)."""
    return total_fds // 8


def fill_fds(total: int) -> list[int]:
    """Dup /dev/null (close-on-exec, as Python makes every fd) until this process holds
    ``total`` open fds; the new fds, for :func:`close_fds`."""
    missing = total - open_fd_count()
    if missing <= 0:
        return []
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return [null] + [os.dup(null) for _ in range(missing - 1)]


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


#: S8's held children echo this byte once started (so none is still starting, and competing
#: for the CPU, while the measurement runs); closing their stdin ends them.
HELD_PING = b"x"


def s9_options(cgroup: str | None) -> dict[str, object]:
    """Every ferroproc spawn option S9 sets (the native baseline's ``-O`` does the same in C).

    ``nice`` is our own value and ``cpuAffinity`` every CPU we may use: the child really makes
    both calls, but a higher nice value or a single CPU would measure the scheduler (on a busy
    machine a niced ``/bin/true`` waits), not the spawn.
    """
    opts: dict[str, object] = {
        "processGroup": True,
        "killGroupOnExit": True,
        "timeout": 60.0,
        "idleTimeout": 60.0,
        "rlimits": {"nofile": (1024, 1024), "core": 0, "cpu": (60, 60)},
        "umask": 0o077,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpuAffinity": sorted(os.sched_getaffinity(0)),
        "parentDeathSignal": "SIGTERM",
        "noNewPrivileges": True,
    }
    if cgroup is not None:
        opts["cgroup"] = cgroup
    return opts


def cgroup2_root() -> str | None:
    """Where the cgroup v2 hierarchy is mounted, if it is."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


def make_cgroup() -> str:
    """A new, empty cgroup v2 group for this run (``remove_cgroup`` once its children are reaped)."""
    root = cgroup2_root()
    if root is None:
        raise NotApplicable("no cgroup v2 hierarchy is mounted")
    path = os.path.join(root, f"ferroproc-bench-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise NotApplicable(f"cannot create a cgroup under {root}: {exc.strerror}") from None
    return path


def remove_cgroup(path: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except OSError:  # EBUSY until the last child has left it
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
