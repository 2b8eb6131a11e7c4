"""Where ``ferroproc jobs`` puts the jobs' output: grouped per job (the
default), line by line (``--line-buffer``), straight from the jobs (``-u``),
or into files (``--results``).

The runner streams each job's output to :meth:`Output.onOutput` as it comes
(nothing is captured twice), and reports each job's end to
:meth:`Output.onResult` (in input order with ``-k``). Grouped output waits in
memory, or in an unnamed temporary file past :data:`SPOOL_IN_MEMORY` bytes, so
a job that writes gigabytes costs disk, not memory, as GNU parallel's does.
"""

from __future__ import annotations

import errno
import os
import re
import select
import tempfile
from collections.abc import Callable
from typing import IO

from ferroproc.jobs._job import JobResult
from ferroproc.jobs._template import JobInput

__all__ = [
    "SPOOL_IN_MEMORY",
    "GroupedOutput",
    "LineOutput",
    "Output",
    "OutputClosed",
    "ResultsOutput",
    "Sink",
    "UngroupedOutput",
    "resultsLayout",
]

#: A job's output kept in memory before it goes to a temporary file.
SPOOL_IN_MEMORY = 1 << 20
_COPY_CHUNK = 1 << 16


class OutputClosed(Exception):
    """Our stdout or stderr was closed by its reader (EPIPE)."""


class Sink:
    """Writes to our stdout and stderr, whole and in order; ``before`` is
    called first (to clear a progress line off the terminal). Once a
    reader has closed stderr, what would go there is dropped; once one has
    closed stdout, writing there raises :class:`OutputClosed`."""

    def __init__(self, before: Callable[[], None] = lambda: None) -> None:
        self.before = before
        self.closed: set[int] = set()

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        if not data or fd in self.closed:
            return
        self.before()
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                # Someone left our stdout non-blocking: wait until it drains.
                select.select([], [fd], [])
                continue
            except OSError as e:
                if e.errno == errno.EPIPE:
                    self.closed.add(fd)
                    if fd == 2:
                        return
                    raise OutputClosed(fd) from None
                raise
            view = view[n:]


class _Tagger:
    """Puts ``prefix`` before every line of a stream, as GNU parallel's
    ``--tag`` does (a last line without a newline gets it too, and no newline)."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.atLineStart = True

    def __call__(self, data: bytes) -> bytes:
        if not data:
            return data
        out = data.replace(b"\n", b"\n" + self.prefix)
        if data.endswith(b"\n"):
            out = out[: len(out) - len(self.prefix)]
        if self.atLineStart:
            out = self.prefix + out
        self.atLineStart = data.endswith(b"\n")
        return out


#: The tag of a job: its values (``--tag``), or ``--tagstring`` made for it.
TagFor = Callable[[JobInput], bytes]


class _Spool:
    """One stream of one job, kept until it is written out."""

    __slots__ = ("file", "memory")

    def __init__(self) -> None:
        self.memory = bytearray()
        self.file: IO[bytes] | None = None

    def add(self, data: bytes) -> None:
        if self.file is not None:
            self.file.write(data)
            return
        self.memory += data
        if len(self.memory) > SPOOL_IN_MEMORY:
            self.file = tempfile.TemporaryFile()
            self.file.write(self.memory)
            self.memory = bytearray()

    def drain(self, write: Callable[[bytes], None]) -> None:
        """Hand everything to ``write`` and let go of it."""
        f, self.file = self.file, None
        if f is None:
            data, self.memory = self.memory, bytearray()
            if data:
                write(bytes(data))
            return
        try:
            f.seek(0)
            while chunk := f.read(_COPY_CHUNK):
                write(chunk)
        finally:
            f.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.memory = bytearray()


class Output:
    """What the runner's output and results go through."""

    #: Whether the runner should stream each job's output here.
    streams = True

    def __init__(self, sink: Sink, tagFor: TagFor | None = None) -> None:
        self.sink = sink
        self.tagFor = tagFor

    def onOutput(self, seq: int, fd: int, data: bytes) -> None:
        """A piece of job ``seq``'s output on its ``fd`` (1 or 2)."""

    def onResult(self, result: JobResult, made: JobInput | None) -> None:
        """Job ``result.seq`` ended (and all its output was given); ``made``
        is what it was made of (None if not known)."""

    def close(self) -> None:
        """The run is over: let go of what is left (a cancelled run's jobs)."""

    def _startFailure(self, result: JobResult, made: JobInput | None) -> None:
        # A job that could not start has its reason in ``err`` (its output,
        # streamed, is empty): it is the job's stderr, as a shell's
        # "command not found" would be.
        if result.err and result.resourceUsage is None:
            self._write(2, result.err, made)

    def _write(self, fd: int, data: bytes, made: JobInput | None) -> None:
        if self.tagFor is not None and made is not None:
            data = _Tagger(self.tagFor(made))(data)
        self.sink.write(fd, data)


class GroupedOutput(Output):
    """Each job's output whole once it ends: its stdout, then its stderr."""

    def __init__(self, sink: Sink, tagFor: TagFor | None = None) -> None:
        super().__init__(sink, tagFor)
        self.spools: dict[int, tuple[_Spool, _Spool]] = {}

    def onOutput(self, seq: int, fd: int, data: bytes) -> None:
        spools = self.spools.get(seq)
        if spools is None:
            spools = self.spools[seq] = (_Spool(), _Spool())
        spools[fd == 2].add(data)

    def onResult(self, result: JobResult, made: JobInput | None) -> None:
        spools = self.spools.pop(result.seq, None)
        if spools is not None:
            prefix = self.tagFor(made) if self.tagFor is not None and made is not None else None
            for fd, spool in ((1, spools[0]), (2, spools[1])):
                tag = _Tagger(prefix) if prefix is not None else None

                def write(data: bytes, fd: int = fd, tag: _Tagger | None = tag) -> None:
                    self.sink.write(fd, tag(data) if tag else data)

                try:
                    spool.drain(write)
                finally:
                    spool.close()
        self._startFailure(result, made)

    def close(self) -> None:
        for out, err in self.spools.values():
            out.close()
            err.close()
        self.spools.clear()


class LineOutput(Output):
    """Each line of output as soon as it is complete (lines of different
    jobs mix, never parts of lines). With ``keepOrder``, only the oldest
    unfinished job's lines flow; the others' wait until it is their turn."""

    def __init__(self, sink: Sink, tagFor: TagFor | None = None, keepOrder: bool = False) -> None:
        super().__init__(sink, tagFor)
        self.keepOrder = keepOrder
        #: The partial last line of each (seq, fd).
        self.partial: dict[tuple[int, int], bytes] = {}
        self.taggers: dict[tuple[int, int], _Tagger] = {}
        #: With keepOrder: the job whose lines flow now, and the others' output.
        self.current = 1
        self.waiting: dict[int, tuple[_Spool, _Spool]] = {}
        self.tags: dict[int, bytes] = {}

    def setTag(self, made: JobInput) -> None:
        """Remember a job's tag (its lines may come before its result)."""
        if self.tagFor is not None:
            self.tags[made.number] = self.tagFor(made)

    def onOutput(self, seq: int, fd: int, data: bytes) -> None:
        if self.keepOrder and seq != self.current:
            spools = self.waiting.get(seq)
            if spools is None:
                spools = self.waiting[seq] = (_Spool(), _Spool())
            spools[fd == 2].add(data)
            return
        self._lines(seq, fd, data)

    def _lines(self, seq: int, fd: int, data: bytes) -> None:
        key = (seq, fd)
        pending = self.partial.pop(key, b"") + data
        end = pending.rfind(b"\n") + 1
        if end < len(pending):
            self.partial[key] = pending[end:]
        if end:
            self._emit(key, pending[:end])

    def _emit(self, key: tuple[int, int], data: bytes) -> None:
        tag = self.tags.get(key[0])
        if tag is not None:
            tagger = self.taggers.get(key)
            if tagger is None:
                tagger = self.taggers[key] = _Tagger(tag)
            data = tagger(data)
        self.sink.write(key[1], data)

    def onResult(self, result: JobResult, made: JobInput | None) -> None:
        seq = result.seq
        if self.keepOrder:
            self._catchUp(seq)
        for fd in (1, 2):
            rest = self.partial.pop((seq, fd), b"")
            if rest:
                self._emit((seq, fd), rest)
            self.taggers.pop((seq, fd), None)
        self._startFailure(result, made)
        self.tags.pop(seq, None)
        if self.keepOrder:
            self.current = seq + 1
            self._catchUp(self.current)

    def _catchUp(self, seq: int) -> None:
        """Job ``seq``'s turn: what it wrote so far goes out."""
        self.current = seq
        spools = self.waiting.pop(seq, None)
        if spools is None:
            return
        for fd, spool in ((1, spools[0]), (2, spools[1])):
            try:
                spool.drain(lambda data, fd=fd: self._lines(seq, fd, data))  # type: ignore[misc]
            finally:
                spool.close()

    def _write(self, fd: int, data: bytes, made: JobInput | None) -> None:
        tag = self.tags.get(made.number) if made is not None else None
        self.sink.write(fd, _Tagger(tag)(data) if tag is not None else data)

    def close(self) -> None:
        for out, err in self.waiting.values():
            out.close()
            err.close()
        self.waiting.clear()


class UngroupedOutput(Output):
    """``-u``: the jobs write to our stdout and stderr themselves; only a
    job that could not start has something to say here."""

    streams = False

    def onResult(self, result: JobResult, made: JobInput | None) -> None:
        self._startFailure(result, made)


_UNSAFE_NAME = re.compile(r"[\\\t\0/]")
_NAME_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\0": "\\0", "/": "\\_"}
#: The longest file name (most file systems' NAME_MAX).
_NAME_MAX = 255


def _dirName(value: str) -> str:
    """An input value as one directory name, escaped as GNU parallel does
    (``\\`` ``\\t`` ``\\0`` and ``/`` as ``\\\\`` ``\\t`` ``\\0`` ``\\_``);
    ``.`` and ``..`` (which would climb out) as ``\\.`` and ``\\.\\.``."""
    name = _UNSAFE_NAME.sub(lambda m: _NAME_ESCAPES[m.group()], value)
    if name in (".", ".."):
        name = name.replace(".", "\\.")
    encoded = os.fsencode(name)[:_NAME_MAX]
    return os.fsdecode(encoded)


def resultsLayout(base: str, args: tuple[str, ...]) -> str:
    """Where ``--results base`` puts a job with input values ``args``:
    ``base/1/<value 1>/2/<value 2>/...`` (GNU parallel's tree)."""
    parts = [base]
    for n, value in enumerate(args, 1):
        parts.append(str(n))
        name = _dirName(value)
        if name:
            parts.append(name)
    return os.path.join(*parts)


class ResultsOutput(Output):
    """``--results``: the runner has each job write its stdout and stderr
    to files of its own in a staging directory (``staging/<seq>/``, opened
    by the core: no byte passes through this process); when the job ends,
    they are moved to the place GNU parallel's layout gives them, with a
    ``seq`` file beside them. ``place(made)`` is that place: a directory
    (``stdout``, ``stderr``, ``seq`` in it), or with ``asFiles`` a file
    name (``NAME``, ``NAME.err``, ``NAME.seq``)."""

    streams = False

    def __init__(self, sink: Sink, staging: str, place: Callable[[JobInput], tuple[str, bool]]) -> None:
        super().__init__(sink)
        self.staging = staging
        self.place = place

    def onResult(self, result: JobResult, made: JobInput | None) -> None:
        src = os.path.join(self.staging, str(result.seq))
        if made is None:
            return
        target, asDirectory = self.place(made)
        if asDirectory:
            out, err, seq = (os.path.join(target, n) for n in ("stdout", "stderr", "seq"))
            parent = target
        else:
            out, err, seq = target, target + ".err", target + ".seq"
            parent = os.path.dirname(target)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
            for name, dest in (("stdout", out), ("stderr", err)):
                path = os.path.join(src, name)
                if os.path.exists(path):
                    os.replace(path, dest)
                else:
                    open(dest, "wb").close()
            if result.err and result.resourceUsage is None:
                with open(err, "ab") as f:
                    f.write(result.err)
            with open(seq, "w") as f:
                f.write(str(made.number))
            os.rmdir(src)
        except OSError as e:
            self.sink.write(
                2,
                f"ferroproc jobs: job {result.seq}'s output stays in {src}: cannot move it to {target}: "
                f"{e.strerror}\n".encode(errors="surrogateescape"),
            )

    def close(self) -> None:
        try:
            os.rmdir(self.staging)
        except FileNotFoundError:
            pass
        except OSError:
            self.sink.write(2, f"ferroproc jobs: output that could not be moved is left in {self.staging}\n".encode())
