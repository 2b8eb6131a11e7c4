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
import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferroproc.jobs._job import Job, JobResult

__all__ = ["HEADER", "JobLog", "ResumeSet", "checkHost", "command", "logLine", "readResumeSet"]

#: How far (in bytes of bitmap) past what its jobs need a ResumeSet's
#: bitmap may grow for one number; numbers beyond go into a set.
_BITMAP_SLACK = 1 << 16

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
        ending = _endLastLine(path) if append else b""
        self._file = open(path, "ab" if append else "wb")
        if self._file.tell() == 0:
            self._file.write(HEADER)
        else:
            self._file.write(ending)

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

    __slots__ = ("_bits", "_far", "count")

    def __init__(self) -> None:
        self._bits = bytearray()
        #: Numbers far past the others (a damaged or hand-made log's
        #: ``99999999999999``), which the bitmap would need terabytes for.
        self._far: set[int] = set()
        #: How many distinct jobs are marked.
        self.count = 0

    def add(self, seq: int) -> None:
        byte, bit = divmod(seq, 8)
        if byte >= len(self._bits):
            if byte > (self.count >> 3) + _BITMAP_SLACK:
                if seq not in self._far:
                    self._far.add(seq)
                    self.count += 1
                return
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        if not self._bits[byte] & (1 << bit):
            self._bits[byte] |= 1 << bit
            self.count += 1

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        byte, bit = divmod(seq, 8)
        if byte < len(self._bits) and self._bits[byte] & (1 << bit):
            return True
        return bool(self._far) and seq in self._far


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
            if not _isLogLine(cols):
                if not raw.endswith(b"\n") and _isCutLine(line):
                    # The last line, cut short (the run was killed while
                    # writing it): that job runs again; JobLog cuts it off.
                    break
                raise ValueError(f"resume: {os.fsdecode(path)!r} line {number} is not a job log line: {line[:200]!r}")
            if failedToo and (cols[6] != b"0" or cols[7] != b"0"):
                continue
            done.add(int(cols[0]))
    return done


def _endLastLine(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bytes:
    """For a log to append to whose last line has no newline: a job log
    line (or its header) cut short by a run killed while writing it is cut
    off here (the job it was about runs again: readResumeSet did not count
    it); any other line (a whole job log line, or something that is not
    ours to cut) needs a newline, returned, to write first. Either way our
    first line does not run into it."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return b""
    with f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    if not tail or tail.endswith(b"\n"):
        return b""
    start = tail.rfind(b"\n") + 1
    last = tail[start:]
    if (start == 0 and size > len(tail)) or _isLogLine(last.split(b"\t", 8)) or not _isCutLine(last):
        return b"\n"
    os.truncate(path, size - len(last))
    return b""


def _isCutLine(line: bytes) -> bool:
    """Whether ``line`` (no newline) may be the start of the header or of a
    job's line, cut short."""
    return HEADER.startswith(line) or re.fullmatch(rb"[0-9]+(\t.*)?", line, re.DOTALL) is not None


def _isLogLine(cols: list[bytes]) -> bool:
    """Whether a line's columns (split at TAB, at most 9) are a job's."""
    return len(cols) >= 9 and cols[0].isdigit() and all(_isNumber(c) for c in cols[2:8])


def _isNumber(col: bytes) -> bool:
    text = col.strip()
    if text.startswith(b"-"):
        text = text[1:]
    return bool(text) and text.replace(b".", b"", 1).isdigit()
