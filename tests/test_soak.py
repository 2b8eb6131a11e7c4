"""A shortened soak in the suite: 2,000 short children in waves of 200
(``benches/soak.py`` runs 100,000), with data through each; afterwards the
parent has the fds it started with, no zombies and no children, and its RSS
grew by less than 10 MiB after the warm-up wave.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SOAK = Path(__file__).resolve().parent.parent / "benches" / "soak.py"
MiB = 1 << 20


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ferroproc_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_soak_2000_children() -> None:
    soak = load_soak()
    r = soak.soak(total=2000, wave=200, payload_size=16, pty_every=10, timeout=60.0)
    assert r.children == 2000 and r.timeouts == 0
    assert r.failures == [], r.failures[:5]
    assert r.fds_end == r.fds_start, f"fds {r.fds_start} -> {r.fds_end}"
    assert r.children_left == [] and r.zombies == 0
    assert r.rss_growth < 10 * MiB, f"RSS grew {r.rss_growth / MiB:.2f} MiB after warm-up"
