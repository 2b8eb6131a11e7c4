"""GNU parallel's ``--joblog``: one TAB-separated line per job, so the tools
that read GNU parallel's logs read ours, and the resume sets read from one.

The format, as GNU parallel 20221122 writes it (``print_joblog``)::

    Seq  Host  Starttime  JobRuntime  Send  Receive  Exitval  Signal  Command
    1    :     1700000000.123      0.004  0  6  0  0  echo hello

``Host`` is ``:`` (this machine) unless the caller names one; ``Starttime`` is seconds since the epoch
with 3 decimals; ``JobRuntime`` is ``%10.3f`` of the run time cut (not
rounded) to milliseconds; ``Exitval`` is the exit code, or -1 when the job
was stopped (a time limit, a cancel, a ``now`` halt), and 0 when a signal
ended it by itself; ``Signal`` the signal that ended it, else 0. ``Command``
is the job's command as a shell line (``Job.shell``'s command as written);
newlines in it are written as NUL bytes, as GNU parallel does, so each job
stays on one line.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferroproc.jobs._job import Job, JobResult

__all__ = ["HEADER", "JobLog", "ResumeSet", "checkHost", "command", "logLine", "readResumeSet"]

HEADER = b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


def command(job: Job) -> bytes:
    """The job's command line as the log shows it: a ``Job.shell`` command
    as written, otherwise the argv joined as a shell would quote it."""
    argv = job.argv
    if len(argv) == 3 and argv[0] in ("/bin/sh", b"/bin/sh") and argv[1] in ("-c", b"-c"):
        return os.fsencode(argv[2])
    return os.fsencode(shlex.join(os.fsdecode(a) for a in argv))


def checkHost(host: object, what: str = "joblogHost") -> str:
    """``host`` if it can be a job log's Host column: a non-empty str with
    no TAB, newline or NUL (it would break the line into other columns or
    lines); raises ``TypeError`` or ``ValueError`` naming ``what``."""
    if not isinstance(host, str):
        raise TypeError(f"{what} must be a str, not {type(host).__name__}")
    if not host or any(c in host for c in "\t\n\r\0"):
        raise ValueError(f"{what} must be a non-empty str without TAB, newline or NUL, not {host!r}")
    return host


def logLine(result: JobResult, cmd: bytes, host: str = ":") -> bytes:
    """One job's line (with its newline); ``host`` its Host column."""
    runtime = int(result.runtime * 1000) / 1000
    stopped = result.timedOut or result.cancelled
    if stopped:
        exitval = -1
    elif result.exitCode is not None:
        exitval = result.exitCode
    else:
        exitval = 0
    sig = result.signal or 0
    head = (
        f"{result.seq}\t{host}\t{result.startTime:.3f}\t{runtime:10.3f}\t"
        f"{result.sent}\t{result.received}\t{exitval}\t{sig}\t"
    )
    return head.encode() + cmd.replace(b"\n", b"\0") + b"\n"


class JobLog:
    """An open job log: a new one (truncated, with the header), or one
    appended to (``append``, for resume: the header is written only if the
    file is new or empty). ``host`` fills the Host column of its lines."""

    def __init__(
        self, path: str | bytes | os.PathLike[str] | os.PathLike[bytes], append: bool, host: str = ":"
    ) -> None:
        self.path = path
        self.host = checkHost(host)
        self._file = open(path, "ab" if append else "wb")
        if self._file.tell() == 0:
            self._file.write(HEADER)

    def write(self, result: JobResult, cmd: bytes) -> None:
        """Add one job's line (buffered until :meth:`flush`)."""
        self._file.write(logLine(result, cmd, self.host))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class ResumeSet:
    """The jobs a log shows as done, by number: a bitmap, as GNU parallel
    keeps it (a million jobs take 125 KB)."""

    __slots__ = ("_bits", "count")

    def __init__(self) -> None:
        self._bits = bytearray()
        #: How many distinct jobs are marked.
        self.count = 0

    def add(self, seq: int) -> None:
        byte, bit = divmod(seq, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        if not self._bits[byte] & (1 << bit):
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        byte, bit = divmod(seq, 8)
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << bit))


def readResumeSet(path: str | bytes | os.PathLike[str] | os.PathLike[bytes], failedToo: bool) -> ResumeSet:
    """The jobs to skip on resume, from the log at ``path``: every job it
    lists (GNU parallel's ``--resume``), or with ``failedToo`` only those
    that ended with exit value 0 and no signal (``--resume-failed``: the
    failed ones run again). A missing log skips nothing. Raises
    ``ValueError`` naming the first line that is not a job log line."""
    done = ResumeSet()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return done
    with f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip(b"\n")
            if not line:
                continue
            cols = line.split(b"\t", 8)
            if number == 1 and cols[:3] == [b"Seq", b"Host", b"Starttime"]:
                continue
            if len(cols) < 9 or not cols[0].isdigit() or not all(_isNumber(c) for c in cols[2:8]):
                raise ValueError(f"resume: {os.fsdecode(path)!r} line {number} is not a job log line: {line[:200]!r}")
            if failedToo and (cols[6] != b"0" or cols[7] != b"0"):
                continue
            done.add(int(cols[0]))
    return done


def _isNumber(col: bytes) -> bool:
    text = col.strip()
    if text.startswith(b"-"):
        text = text[1:]
    return bool(text) and text.replace(b".", b"", 1).isdigit()
