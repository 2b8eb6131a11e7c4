"""What travels between a client and the workers of a cluster run (any
engine): a batch's jobs, the settings of the runner each worker runs, the
results coming back in chunks, and the bitmaps that say which jobs of a
batch the client already has.

Plain tuples, bytes and dicts only (a :class:`Job`'s default ``options`` is a
read-only mapping, which pickle refuses; a :class:`JobResult` carries its
job, which the client already has): small on the wire, and read the same by
any engine's serializer.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any, NamedTuple

from ferroproc.error import ResourceUsage
from ferroproc.jobs._job import Job, JobResult

__all__ = [
    "BatchSettings",
    "BatchStats",
    "PackedJob",
    "PackedResult",
    "allDone",
    "bitmapHas",
    "bitmapSet",
    "dumpResults",
    "loadResults",
    "packJob",
    "packResult",
    "unpackJob",
    "unpackResult",
]

#: A job on the wire: argv, env, path, stdinBytes, timeout, idleTimeout, options.
PackedJob = tuple[
    tuple[str | bytes, ...],
    dict[Any, Any] | None,
    str | bytes | None,
    bytes | None,
    float | None,
    float | None,
    dict[str, Any] | None,
]

#: A result on the wire: the job's index in its batch, then JobResult's
#: fields from ``exitCode`` to ``resourceUsage`` (``resourceUsage`` as a
#: plain tuple), then ``cancelled``.
PackedResult = tuple[Any, ...]


class BatchSettings(NamedTuple):
    """How a worker runs a batch: the options of its :class:`Runner`, and
    how often it sends results back."""

    #: Jobs the batch runs at once; None: the worker decides (its CPUs
    #: divided by the batches it runs at once).
    concurrency: int | None
    timeout: float | None
    idleTimeout: float | None
    killGrace: float
    retries: int
    retryDelay: float
    memfree: int | None
    maxBytes: int | None
    capture: bool
    processGroup: bool
    parentDeathSignal: int | str | None
    #: Send the results gathered so far at least this often (seconds) ...
    flushSeconds: float = 0.1
    #: ... or as soon as this many have gathered ...
    flushResults: int = 1000
    #: ... or as soon as their captured output reaches this many bytes.
    flushBytes: int = 4 << 20

    def runnerOptions(self) -> dict[str, Any]:
        """The keyword arguments of the worker's :class:`Runner` (but
        ``concurrency`` and ``reactor``)."""
        return {
            "timeout": self.timeout,
            "idleTimeout": self.idleTimeout,
            "killGrace": self.killGrace,
            "retries": self.retries,
            "retryDelay": self.retryDelay,
            "memfree": self.memfree,
            "maxBytes": self.maxBytes,
            "capture": self.capture,
            "processGroup": self.processGroup,
            "parentDeathSignal": self.parentDeathSignal,
        }


class BatchStats(NamedTuple):
    """What one attempt at a batch reports when it ends."""

    #: The attempt's id (each chunk it sent carries it).
    attempt: str
    #: Chunks of results it sent (the client waits for all of them).
    chunks: int
    #: Jobs it ran (started or not, as the runner took them from the batch).
    ran: int
    #: Jobs it skipped because the client already had them (or wanted none).
    skipped: int
    #: Seconds its runner ran.
    elapsed: float


def packJob(job: Job) -> PackedJob:
    """``job`` for the wire (already checked by the client)."""
    env = job.env
    path = job.path
    if path is not None and not isinstance(path, (str, bytes)):
        path = os.fspath(path)
    return (
        tuple(a if isinstance(a, (str, bytes)) else os.fspath(a) for a in job.argv),
        None if env is None else dict(env),
        path,
        job.stdinBytes,
        job.timeout,
        job.idleTimeout,
        dict(job.options) if job.options else None,
    )


def unpackJob(packed: Sequence[Any]) -> Job:
    """The :class:`Job` a packed job stands for (on the worker)."""
    argv, env, path, stdin, timeout, idle, options = packed
    job = Job(tuple(argv), env, path, stdin, timeout, idle)
    return job._replace(options=options) if options else job


def packResult(index: int, r: JobResult) -> PackedResult:
    """A worker's result for the wire: ``index`` is the job's place in its
    batch (the worker's runner numbers the jobs it ran itself)."""
    usage = r.resourceUsage
    return (
        index,
        r.exitCode,
        r.signal,
        r.timedOut,
        r.startTime,
        r.runtime,
        r.attempts,
        r.out,
        r.err,
        r.truncated,
        r.sent,
        r.received,
        None if usage is None else tuple(usage),
        r.cancelled,
    )


def unpackResult(seq: int, job: Job, p: Sequence[Any]) -> JobResult:
    """The client's :class:`JobResult` for a packed one (``seq`` and ``job``
    are the client's own)."""
    usage = p[12]
    return JobResult(
        seq,
        job,
        p[1],
        p[2],
        p[3],
        p[4],
        p[5],
        p[6],
        p[7],
        p[8],
        p[9],
        p[10],
        p[11],
        None if usage is None else ResourceUsage(*usage),
        None,
        None,
        p[13],
    )


def dumpResults(results: list[PackedResult]) -> bytes:
    """A chunk of packed results as bytes (every engine carries bytes)."""
    return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


def loadResults(payload: bytes) -> list[PackedResult]:
    """The packed results of a chunk (sent by this run's workers: the
    cluster is trusted as the engine itself trusts it)."""
    results: list[PackedResult] = pickle.loads(payload)
    return results


def bitmapSet(bits: bytearray, index: int) -> None:
    """Mark job ``index`` of a batch in its bitmap (sized for the batch)."""
    bits[index >> 3] |= 1 << (index & 7)


def bitmapHas(bits: bytes | bytearray, index: int) -> bool:
    """Whether job ``index`` is marked in a batch's bitmap."""
    byte = index >> 3
    return byte < len(bits) and bool(bits[byte] & (1 << (index & 7)))


def allDone(size: int) -> bytes:
    """The bitmap of a batch of ``size`` jobs with every job marked: what a
    stopped run tells attempts that have not started (run none)."""
    return b"\xff" * ((size + 7) >> 3)
