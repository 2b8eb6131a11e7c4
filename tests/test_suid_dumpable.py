"""A child that switches user shares the parent's memory only where the
switch makes that memory undumpable (issue 21, item 12): with
``fs.suid_dumpable`` 0 or 2. With 1 the kernel leaves it dumpable, so a
process of the target user could ptrace the child between its
``setresuid`` and its ``execve`` and, through shared memory, the parent:
such a child gets its own copy of the parent's memory.

These tests change the machine's ``fs.suid_dumpable`` for a moment (root
only; the old value is always put back) and skip where they cannot."""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cgroup_support
import pytest
from engine_support import Recorder
from helpers import iterate_until, run_reactor

from ferroproc import reactor

#: The fixture (see cgroup_support).
frozen_cgroup = cgroup_support.frozen_cgroup

SETTING = Path("/proc/sys/fs/suid_dumpable")
NOBODY = 65534


@pytest.fixture
def suid_dumpable() -> Iterator[Callable[[int], None]]:
    """Set ``fs.suid_dumpable``; put back as it was after the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root (uid switches, and fs.suid_dumpable)")
    old = SETTING.read_text()
    try:
        SETTING.write_text(old)
    except OSError as e:
        pytest.skip(f"fs.suid_dumpable is not writable here: {e}")
    try:
        yield lambda value: SETTING.write_text(f"{value}\n")
    finally:
        SETTING.write_text(old)


@pytest.mark.parametrize("value", [0, 1, 2])
def test_a_switching_child_shares_our_memory_only_where_that_is_safe(
    value: int, suid_dumpable: Callable[[int], None], frozen_cgroup: Path
) -> None:
    suid_dumpable(value)
    page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    page[:6] = b"before"
    view = ctypes.c_char.from_buffer(page)
    address = ctypes.addressof(view)
    del view
    proto = Recorder()
    result: dict[str, Any] = {}

    def spawn() -> None:
        result["t"] = reactor.spawnProcess(
            proto, "/bin/sh", ["sh", "-c", "id -u"], env=None, uid=NOBODY, gid=NOBODY, cgroup=str(frozen_cgroup)
        )

    # The child is held at birth (frozen) while we change our page and look
    # at the same address in its memory: ours, or a copy made at its clone.
    t = threading.Thread(target=spawn)
    t.start()
    try:
        assert iterate_until(lambda: bool(cgroup_support.members(frozen_cgroup)), 10.0)
        (pid,) = cgroup_support.members(frozen_cgroup)
        page[:6] = b"after!"
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            seen = mem.read(6)
    finally:
        (frozen_cgroup / "cgroup.freeze").write_text("0")
        t.join(10)
    run_reactor(proto.ended, 10)
    page.close()
    assert proto.output() == f"{NOBODY}\n".encode()
    assert seen == (b"after!" if value in (0, 2) else b"before"), f"fs.suid_dumpable={value}"


def test_a_child_with_its_own_memory_reports_each_failed_step(suid_dumpable: Callable[[int], None]) -> None:
    suid_dumpable(1)
    with pytest.raises(FileNotFoundError, match="/no/such/program"):
        reactor.spawnProcess(Recorder(), "/no/such/program", ["x"], uid=NOBODY, gid=NOBODY)
    with pytest.raises(OSError, match="/no/such/dir"):
        reactor.spawnProcess(Recorder(), "/bin/true", ["true"], path="/no/such/dir", uid=NOBODY, gid=NOBODY)
    # And a good one runs as the user, with exactly its fds.
    proto = Recorder()
    reactor.spawnProcess(
        proto, "/bin/sh", ["sh", "-c", "id -u; ls /proc/self/fd | tr '\\n' ' '"], env=None, uid=NOBODY, gid=NOBODY
    )
    run_reactor(proto.ended, 10)
    assert proto.output() == f"{NOBODY}\n0 1 2 3 ".encode()
