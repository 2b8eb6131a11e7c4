"""The stream protocol of ferroproc's own ``asyncio`` ``Process``: asyncio's
``SubprocessStreamProtocol``, whose ``StreamReader``s and ``StreamWriter``
are only made when the program first asks for them (``proc.stdout``).

Until then a pipe's output is kept as the chunks that came (with asyncio's
flow control: reading pauses above twice the limit, as a ``StreamReader``
pauses it), and a ``StreamReader`` made later gets them all, then the end
(or error) if it came, exactly as if it had been there from the start. So
``communicate()``, the usual way to run a child to its end, can take the
output without three tasks, two readers and a writer per child: it waits
for one future (:meth:`StreamProtocol.collect`).
"""

from __future__ import annotations

import asyncio
from asyncio import streams
from asyncio.subprocess import SubprocessStreamProtocol
from typing import TYPE_CHECKING, Any

from ferroproc._asynciotransport import SubprocessTransport

__all__ = ["StreamProtocol"]


class StreamProtocol(SubprocessStreamProtocol):
    """asyncio's ``SubprocessStreamProtocol`` with streams made on demand
    (:meth:`reader`, :meth:`writer`)."""

    # Set by asyncio's classes (typeshed leaves their private state out).
    _limit: int
    _loop: asyncio.AbstractEventLoop
    _pipe_fds: list[int]

    if TYPE_CHECKING:

        def _maybe_close_transport(self) -> None: ...

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        #: The child's transport (asyncio's ``_transport`` is dropped once
        #: the child has gone), whose pipe transports are made when asked for.
        self._child: SubprocessTransport | None = None
        #: Whether the child's stdin is a pipe.
        self._stdinPipe = False
        #: Output of an output pipe whose reader has not been made, by fd.
        self._chunks: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}
        #: Output pipes paused here (above twice the limit, no reader yet).
        self._held: set[int] = set()
        #: How each such pipe ended (None: at EOF), once it has.
        self._ends: dict[int, Exception | None] = {}
        #: ``communicate()`` takes everything: no pause for size.
        self._collecting = False
        self._collected: asyncio.Future[None] | None = None

    # -- asyncio's protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, SubprocessTransport), "ferroproc's transport only"
        self._transport = self._child = transport
        # Which fds are pipes, without making their transports (asyncio's
        # protocol asks get_pipe_transport for each).
        kinds = transport._pipeKinds
        self._stdinPipe = 0 in kinds
        for fd in (1, 2):
            if fd in kinds:
                self._pipe_fds.append(fd)
                self._chunks[fd] = []
                self._sizes[fd] = 0

    def _pipe(self, fd: int) -> Any:
        assert self._child is not None
        return self._child.get_pipe_transport(fd)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunks = self._chunks.get(fd)
        if chunks is None:
            super().pipe_data_received(fd, data)
            return
        chunks.append(data)  # type: ignore[arg-type]  # a pipe gives bytes
        size = self._sizes[fd] = self._sizes[fd] + len(data)
        if size > 2 * self._limit and not self._collecting:
            # What the StreamReader would do; it pauses again (a no-op) and
            # resumes when its buffer has been read down.
            self._pipe(fd).pause_reading()
            self._held.add(fd)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd not in self._chunks:
            super().pipe_connection_lost(fd, exc)
            return
        self._ends[fd] = exc
        if fd in self._pipe_fds:
            self._pipe_fds.remove(fd)
        collected = self._collected
        if collected is not None and not collected.done() and len(self._ends) == len(self._chunks):
            collected.set_result(None)
        self._maybe_close_transport()

    # -- the streams, made on demand -----------------------------------------------------

    def reader(self, fd: int) -> streams.StreamReader | None:
        """The ``StreamReader`` of output pipe ``fd`` (1 or 2), made now if
        it has not been, with everything the pipe has given so far; None
        when that fd is no pipe."""
        chunks = self._chunks.pop(fd, None)
        if chunks is None:
            return self.stdout if fd == 1 else self.stderr
        reader = streams.StreamReader(limit=self._limit, loop=self._loop)
        reader.set_transport(self._pipe(fd))
        del self._sizes[fd]
        # Paused here, it stays paused until the reader has been read down
        # (feed_data below pauses it again, and marks the reader paused).
        self._held.discard(fd)
        if chunks:
            reader.feed_data(b"".join(chunks))
        if fd in self._ends:
            exc = self._ends.pop(fd)
            if exc is None:
                reader.feed_eof()
            else:
                reader.set_exception(exc)
        if fd == 1:
            self.stdout = reader
        else:
            self.stderr = reader
        return reader

    def writer(self) -> streams.StreamWriter | None:
        """The child's stdin as a ``StreamWriter``, made now if it has not
        been; None when stdin is no pipe."""
        if self.stdin is None and self._stdinPipe:
            self.stdin = streams.StreamWriter(self._pipe(0), protocol=self, reader=None, loop=self._loop)
        return self.stdin

    def hasStdin(self) -> bool:
        """Whether the child's stdin is a pipe."""
        return self._stdinPipe

    def endInput(self, data: bytes | bytearray | memoryview | None) -> None:
        """Write ``data`` to the child's stdin, then close it once written
        (the child sees EOF): ``communicate()``'s input. A child that has
        closed its stdin makes the rest vanish, as ``communicate()`` ignores
        a broken pipe."""
        pipe = self._pipe(0)
        if data:
            pipe.write(data)
        pipe.close()

    def lazy(self) -> bool:
        """Whether no ``StreamReader`` has been made yet: the output is
        still all here, for :meth:`collect`."""
        return self.stdout is None and self.stderr is None

    def collecting(self) -> bool:
        """Whether a :meth:`collect` is waiting for the output's end (a
        ``communicate()`` in progress)."""
        return self._collected is not None and not self._collected.done()

    async def collect(self) -> tuple[bytes | None, bytes | None]:
        """Everything the output pipes give, once both have ended (while
        :meth:`lazy`); None for an fd that is no pipe. A pipe that ended
        with an error raises it, as ``StreamReader.read()`` does."""
        if not self._collecting:
            self._collecting = True
            for fd in self._held:
                if fd not in self._ends:
                    self._pipe(fd).resume_reading()
        if len(self._ends) < len(self._chunks):
            if self._collected is None or self._collected.done():
                self._collected = self._loop.create_future()
            await self._collected
        out: list[bytes | None] = [None, None]
        for fd, chunks in self._chunks.items():
            exc = self._ends[fd]
            if exc is not None:
                raise exc
            out[fd - 1] = b"".join(chunks)
            chunks.clear()
        return out[0], out[1]
