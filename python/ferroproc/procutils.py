"""``twisted.python.procutils.which``: find a program on ``PATH``."""

from __future__ import annotations

import os

__all__ = ["which"]


def which(name: str, flags: int = os.X_OK) -> list[str]:
    """Every file called ``name`` in the directories of ``PATH`` that this
    process may access with ``flags`` (default: execute), in ``PATH`` order.

    As in Twisted, a list (possibly empty) is returned, never an exception:
    ``spawnProcess(p, which("gzip")[0], ...)``.
    """
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, name)
        if os.access(candidate, flags) and not os.path.isdir(candidate):
            found.append(candidate)
    return found
