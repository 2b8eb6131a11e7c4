"""A frozen cgroup v2 group: a child started in it (``cgroup=``) stops at
birth, before it runs a single instruction of its own, and its spawn waits
(``CLONE_VFORK``) until the group is thawed or the child killed. The real way
to hold a spawn between its clone and its exec (as a slow exec, a stopped
child or an OOM kill at birth would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import iterate_until


def cgroup2_root() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    return None


@pytest.fixture
def frozen_cgroup(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A new, frozen group (skips where there is none to make, or no
    ``cgroup.freeze``/``cgroup.kill``: Linux 5.14); thawed and removed after."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    path = root / f"ferroproc-{request.node.name[:40].replace('[', '-').replace(']', '')}-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup under {root}: {e}")
    try:
        if not (path / "cgroup.freeze").exists() or not (path / "cgroup.kill").exists():
            pytest.skip("this kernel's cgroups cannot freeze or kill (Linux 5.14)")
        (path / "cgroup.freeze").write_text("1")
        yield path
    finally:
        (path / "cgroup.freeze").write_text("0")
        iterate_until(lambda: not (path / "cgroup.procs").read_text(), 10.0)
        path.rmdir()


def members(group: Path) -> list[int]:
    """The pids in ``group``."""
    return [int(p) for p in (group / "cgroup.procs").read_text().split()]
