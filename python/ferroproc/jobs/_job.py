"""The records of :mod:`ferroproc.jobs`: a :class:`Job` to run, the
:class:`JobResult` of one that ran, and the :class:`JobSummary` of a run.

No postponed annotations here (as in :mod:`ferroproc._results`): a
NamedTuple's generated constructor belongs to no module, so string
annotations on it could not be resolved by readers of its signature.
"""

import os
import types
from collections.abc import Mapping
from typing import Any, NamedTuple, Union

from ferroproc.error import ResourceUsage

__all__ = ["Job", "JobResult", "JobSummary"]

#: What ``path`` may be.
_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: The shared empty ``options`` (read-only, so no job can change another's).
_NO_OPTIONS: Mapping[str, Any] = types.MappingProxyType({})


class Job(NamedTuple):
    """One command to run: an argv, and how to run it.

    Only ``argv`` is required; a plain list or tuple of str/bytes given to
    :meth:`Runner.run` stands for ``Job(tuple(it))``.

    Example::

        Job(("gzip", "-9", "big.log"), timeout=600)
        Job.shell("sort data.txt | uniq -c > counts.txt")
    """

    #: The program and its arguments; ``argv[0]`` is looked up on ``PATH``
    #: as ``spawnProcess`` does (the job's own ``PATH`` first, then ours).
    argv: tuple[str | bytes, ...]
    #: The job's environment; None (the default) passes ours on, as it was
    #: when the run started (unlike Twisted's ``{}`` default).
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = None
    #: The working directory (default: ours).
    path: _Path | None = None
    #: Written to the job's stdin, which is then closed; None (the default)
    #: gives it ``/dev/null``.
    stdinBytes: bytes | None = None
    #: A wall-clock limit in seconds for this job (overrides the runner's):
    #: then its process group gets SIGTERM, and SIGKILL after ``killGrace``.
    timeout: float | None = None
    #: As ``timeout``, for that long without output (overrides the runner's).
    idleTimeout: float | None = None
    #: Any of ``spawnProcess``'s :class:`ferroproc.ChildOptions`
    #: (``rlimits``, ``umask``, ``nice``, ``cgroup``, ``parentDeathSignal``,
    #: ``processGroup``, ``killGroupOnExit`` ...), over the runner's.
    options: Mapping[str, Any] = _NO_OPTIONS

    @classmethod
    def shell(cls, command: str, **fields: Any) -> "Job":
        """A job that runs ``command`` with ``/bin/sh -c`` (its job log line
        shows ``command`` as written). ``fields`` are the other fields
        (``env``, ``path``, ``timeout`` ...)."""
        if not isinstance(command, str):
            raise TypeError(f"Job.shell: command must be a str, not {type(command).__name__}")
        return cls(("/bin/sh", "-c", command), **fields)


class JobResult(NamedTuple):
    """How one job ended and what it wrote, as :meth:`Runner.run` reports
    it (once per job, for its last attempt when it was retried).

    A job whose program could not be started at all (not found, not
    executable) ends as a shell would end it: exit code 127 (not found) or
    126 (anything else), with the reason in ``err``.
    """

    #: The job's number in input order, from 1 (the job log's ``Seq``).
    seq: int
    #: The job as it was given (a plain sequence becomes a :class:`Job`).
    job: Job
    #: The exit code; None when a signal ended it.
    exitCode: int | None
    #: The signal that ended it; None when it exited.
    signal: int | None
    #: A time limit (``timeout`` or ``idleTimeout``) ran out, so it was stopped.
    timedOut: bool
    #: When its (last) attempt started, as ``time.time()``.
    startTime: float
    #: How long its (last) attempt ran until it exited, in seconds.
    runtime: float
    #: How many times it was started: 1, plus the retries it used.
    attempts: int
    #: What it wrote to stdout: at most ``maxBytes`` (empty when output went
    #: to files, to an fd of yours, or was not captured).
    out: bytes
    #: What it wrote to stderr (as ``out``).
    err: bytes
    #: Output beyond ``maxBytes`` was dropped (``received`` still counts it).
    truncated: bool
    #: Bytes written to its stdin.
    sent: int
    #: Bytes it wrote to stdout, all of them (captured or not; the file's
    #: size with ``results``; 0 when it wrote to an fd of yours).
    received: int
    #: What it used (CPU times, peak RSS); None when it never started.
    resourceUsage: ResourceUsage | None
    #: With ``results=DIR``: the file its stdout went to.
    outPath: str | None = None
    #: With ``results=DIR``: the file its stderr went to.
    errPath: str | None = None
    #: The runner stopped it (``cancel()``, or a ``halt`` policy's ``now``)
    #: before it ended by itself.
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """Whether it exited with code 0, by itself and within its time limits."""
        return self.exitCode == 0 and not self.timedOut and not self.cancelled

    @property
    def status(self) -> int:
        """Its status as a shell reports it: the exit code, or 128 plus the
        signal number."""
        if self.exitCode is not None:
            return self.exitCode
        return 128 + (self.signal or 0)


class JobSummary(NamedTuple):
    """What a run did, once every job it started has ended (and been
    reaped): what :meth:`Runner.run`'s Deferred fires with."""

    #: Jobs taken from the input (those skipped by ``resume`` included;
    #: those a halt or a cancel kept from starting are in none of the
    #: counts below).
    total: int
    #: Jobs that ended with :attr:`JobResult.ok`.
    succeeded: int
    #: Jobs that ran and did not.
    failed: int
    #: Jobs not run because the job log showed them done (``resume``).
    skipped: int
    #: A ``halt`` policy stopped the run.
    halted: bool
    #: :meth:`Runner.cancel` stopped the run.
    cancelled: bool
    #: Seconds from the start of the run to its end.
    elapsed: float
    #: The exit status a ``halt`` policy decided, as GNU parallel decides it
    #: (None when no policy triggered); :attr:`exitStatus` uses it.
    haltStatus: int | None = None

    @property
    def exitStatus(self) -> int:
        """GNU parallel's exit status: the number of failed jobs, at most
        101; when a ``halt`` policy stopped the run, the status it decided
        (with ``fail=1``: the failing job's own status; with a percentage:
        the percentage of jobs that failed; with ``success``: 0)."""
        if self.haltStatus is not None:
            return self.haltStatus
        return min(self.failed, 101)
