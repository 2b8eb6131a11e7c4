"""Python-level calls per ferroproc spawn (``sys.setprofile``), most frequent first.

usage: calls.py [N]
"""

from __future__ import annotations

import collections
import os
import sys
from types import FrameType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import impl_twisted


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    api = impl_twisted.load("ferroproc")
    impl_twisted.spawn_rate(api, {"n": 50, "conc": 1})
    count: collections.Counter[tuple[str, str]] = collections.Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            count[(os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)] += 1
        elif event == "c_call":
            count[("C", getattr(arg, "__qualname__", str(arg)))] += 1

    sys.setprofile(profile)
    impl_twisted.spawn_rate(api, {"n": n, "conc": 1})
    sys.setprofile(None)
    print(f"{sum(count.values()) / n:.1f} calls per spawn")
    for (where, name), v in count.most_common(40):
        print(f"{v / n:7.2f}  {where}: {name}")


if __name__ == "__main__":
    main()
