"""The records that :func:`ferroproc.utils.getProcessResult` and
:mod:`ferroproc.pipeline` fire with (public there).

No postponed annotations here, unlike the other modules: a NamedTuple's
generated constructor belongs to no module, so string annotations on it
could not be resolved by readers of its signature (pdoc, the API reference).
"""

from typing import NamedTuple

from ferroproc.error import ResourceUsage

__all__ = ["ProcessResult"]


class ProcessResult(NamedTuple):
    """How a process ended and what it wrote: the result of
    :func:`ferroproc.utils.getProcessResult` (a ferroproc extension).

    Example::

        result = await utils.getProcessResult("ls", ["/nonexistent"])
        if not result.ok:
            print(result.exitCode, result.err.decode())
    """

    #: What the child wrote to stdout.
    out: bytes
    #: What the child wrote to stderr.
    err: bytes
    #: The exit code; None when a signal ended the child (or when its status
    #: is unknown because someone else reaped it).
    exitCode: int | None
    #: The signal that ended the child; None when it exited.
    signal: int | None
    #: What the child used (CPU times, peak RSS); None when the host does
    #: not report it (Twisted's own ``spawnProcess``).
    resourceUsage: ResourceUsage | None
    #: Whether ``timeout`` ran out, so the child was stopped (``exitCode``
    #: and ``signal`` say how it then ended).
    timedOut: bool

    @property
    def ok(self) -> bool:
        """Whether the child exited with code 0 within its time limit."""
        return self.exitCode == 0 and not self.timedOut
