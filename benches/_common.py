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


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
