"""The records that :func:`ferroproc.utils.getProcessResult` and
:mod:`ferroproc.pipeline` fire with (public there).

No postponed annotations here, unlike the other modules: a NamedTuple's
generated constructor belongs to no module, so string annotations on it
could not be resolved by readers of its signature (pdoc, the API reference).
"""

from typing import NamedTuple

from ferroproc.error import ResourceUsage

__all__ = ["PipelineResult", "ProcessResult", "StageResult"]


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


class StageResult(NamedTuple):
    """How one stage of a pipeline ended: an item of
    :attr:`PipelineResult.stages` (see :mod:`ferroproc.pipeline` for when a
    stage counts as failed)."""

    #: The stage's argv, as str (decoded with the filesystem encoding).
    command: tuple[str, ...]
    #: What the stage wrote to stderr (empty when its stderr went to an fd,
    #: or to a protocol of yours).
    err: bytes
    #: The exit code; None when a signal ended the stage (or when its status
    #: is unknown because someone else reaped it).
    exitCode: int | None
    #: The signal that ended the stage; None when it exited.
    signal: int | None
    #: What the stage used (CPU times, peak RSS); None when the host does not
    #: report it.
    resourceUsage: ResourceUsage | None
    #: Whether the pipeline's ``timeout`` ran out while the stage ran (it was
    #: then stopped).
    timedOut: bool
    #: Whether the pipeline stopped the stage because a stage after it
    #: failed (any other stage, with ``stopAllOnFailure=True``): its status
    #: is then not its own doing and does not count.
    stoppedAfterFailure: bool
    #: Whether the stage counts as failed for the pipeline's ``exitCode``
    #: and ``ok`` (pipefail).
    failed: bool

    @property
    def status(self) -> int:
        """The status as a shell reports it: the exit code, or 128 plus the
        signal's number after a signal (143 for SIGTERM), or 255 when
        unknown."""
        if self.exitCode is not None:
            return self.exitCode
        if self.signal is not None:
            return 128 + self.signal
        return 255


class PipelineResult(NamedTuple):
    """How a pipeline ended: what :func:`ferroproc.pipeline.getPipelineOutput`
    fires with (and :attr:`ferroproc.pipeline.Pipeline.ended`).

    Example::

        result = await getPipelineOutput([["sort"], ["uniq", "-c"]], stdinBytes=b"b\\na\\nb\\n")
        if result.ok:
            print(result.out.decode())
        else:
            print("exit status", result.exitCode, [s.status for s in result.stages])
    """

    #: What the last stage wrote to stdout (empty when it went to an fd, or
    #: to a protocol of yours).
    out: bytes
    #: One result per stage, in pipeline order.
    stages: tuple[StageResult, ...]

    @property
    def exitCode(self) -> int:
        """The pipeline's status as bash's ``pipefail`` gives it: the
        :attr:`~StageResult.status` of the last stage that failed, or 0 when
        none did."""
        for stage in reversed(self.stages):
            if stage.failed:
                return stage.status
        return 0

    @property
    def ok(self) -> bool:
        """Whether no stage failed and the time limit was not reached."""
        return not any(stage.failed or stage.timedOut for stage in self.stages)

    @property
    def timedOut(self) -> bool:
        """Whether the pipeline's ``timeout`` ran out."""
        return any(stage.timedOut for stage in self.stages)
