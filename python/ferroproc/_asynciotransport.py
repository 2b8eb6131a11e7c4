"""asyncio's subprocess transport (and its pipe transports) over a child of
ferroproc's engine.

One :class:`SubprocessTransport` per child is the asyncio transport its
protocol sees; the engine calls a small :class:`_EngineProtocol` that passes
each event on to it. asyncio's
documented order holds: ``connection_made`` first (events that came before
it are replayed after it, in order), per pipe ``pipe_data_received`` then
one ``pipe_connection_lost``, ``process_exited`` once, ``connection_lost``
once and last (after the exit and every pipe's loss). ``Process.wait()``
wakes as it does on the running Python's own loop: at the exit on 3.10,
after ``connection_lost`` from 3.11 on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ferroproc import _debuglog
from ferroproc._asynciohost import AsyncioDriver, runningLoop
from ferroproc._core import Engine, Process
from ferroproc._popenargs import preparePopen
from ferroproc.error import ProcessExitedAlready

if TYPE_CHECKING:
    from ferroproc.error import ResourceUsage

__all__ = [
    "SubprocessTransport",
    "TimedOut",
    "closeEngineOf",
    "driverFor",
    "loopCaller",
    "makeTransport",
    "retireIfOrphaned",
    "startTransport",
]

#: 3.10 wakes ``wait()`` at the exit; 3.11+ once the transport is lost.
_WAKE_AT_EXIT = sys.version_info < (3, 11)
#: asyncio's write-buffer defaults (``transports._FlowControlMixin``).
_HIGH_WATER = 64 * 1024


# The functional form: its field types are objects, not strings (this module
# defers its annotations), so the API reference can show them.
TimedOut = NamedTuple("TimedOut", [("kind", Literal["wall", "idle"]), ("timeout", float), ("killed", bool)])  # noqa: UP014
TimedOut.__doc__ = """Why a time limit ended a child (``Process.timed_out``): ``kind``
(``"wall"`` for ``timeout``, ``"idle"`` for ``idle_timeout``), ``timeout``
(the limit, in seconds) and ``killed`` (SIGKILL had to follow SIGTERM: the
child outlived ``kill_grace``). The attributes of
:class:`ferroproc.error.ProcessTimedOut`, which Twisted-style code gets."""


_ExitInfo = tuple[int | None, "TimedOut | None", "ResourceUsage | None"]


def _exitInfo(status: int | None, timedOut: tuple[str, float, bool] | None, usage: ResourceUsage | None) -> _ExitInfo:
    """The engine's ``reason`` for asyncio children: what the transport keeps."""
    return (status, None if timedOut is None else TimedOut(*timedOut), usage)  # type: ignore[arg-type]


def _report(where: str, exc: BaseException) -> None:
    """An exception from an asyncio protocol's callback, to the running
    loop's exception handler (as a callback's exception is)."""
    loop = runningLoop()
    if loop is None:
        from ferroproc._logger import logError

        logError(where, exc)
        return
    loop.call_exception_handler({"message": f"Exception in {where}", "exception": exc})


class _Home:
    """Where one thread keeps its engine: held by that thread alone (through
    :class:`_ThreadDriver`), reached weakly from others, so that a loop
    closed from another thread still lets the engine go."""

    __slots__ = ("__weakref__", "driver")

    def __init__(self) -> None:
        self.driver: AsyncioDriver | None = None


class _ThreadDriver(threading.local):
    """The engine of the asyncio loops of one thread: it moves to whichever
    loop runs there when it is free, so ``asyncio.run()`` after
    ``asyncio.run()`` reuses it (one poll, one eventfd and one pipe per
    thread, like uvloop's, rather than per loop)."""

    def __init__(self) -> None:
        self.home = _Home()

    @property
    def driver(self) -> AsyncioDriver | None:
        return self.home.driver

    @driver.setter
    def driver(self, driver: AsyncioDriver | None) -> None:
        self.home.driver = driver


_thread = _ThreadDriver()
#: Engines of loops that run while the thread's engine is busy in another
#: loop still open (a weak key: such an engine goes with its loop).
_others: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioDriver] = weakref.WeakKeyDictionary()
#: The thread engine each loop was last given, and the thread's home of
#: each such engine, whatever the thread: a loop closed from another thread
#: still retires its engine (weakly: the entries keep nothing alive).
_threadEngines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[AsyncioDriver]] = (
    weakref.WeakKeyDictionary()
)
_homes: weakref.WeakKeyDictionary[AsyncioDriver, weakref.ref[_Home]] = weakref.WeakKeyDictionary()


def _newEngine(loop: asyncio.AbstractEventLoop) -> AsyncioDriver:
    # ProcessExitedAlready given, not imported when raised (which may be at
    # interpreter exit, from a transport's __del__).
    return AsyncioDriver(Engine(_exitInfo, _report, ProcessExitedAlready, immediate_writes=True), loop)


def driverFor(loop: asyncio.AbstractEventLoop) -> AsyncioDriver:
    """The driver of the engine that ``loop`` (running in this thread) drives."""
    driver = _thread.driver
    if driver is None or driver.retired:
        driver = _thread.driver = _newEngine(loop)
        _attach(loop, driver)
        return driver
    if driver.attachedTo(loop):
        return driver
    other = _others.get(loop)
    if other is not None and other.attachedTo(loop):
        return other
    if driver.free():
        driver.moveTo(loop)
        _attach(loop, driver)
        return driver
    # Kept by the loop's entry alone: the engine goes with the loop.
    other = _others[loop] = _newEngine(loop)
    return other


def retireIfOrphaned(driver: AsyncioDriver) -> None:
    """Once the loop that drove ``driver`` has closed (or gone) while its
    engine still has children, retire the engine: nothing will turn it
    again, so it closes their pipes, reaps those that have exited at once
    and the others as they exit (``Engine.abandon``), even while the
    program keeps their ``Process`` objects, as asyncio's own children are
    reaped; until then, closing a transport still kills its child. The
    thread's next loop gets a fresh engine. Nothing happens while the loop
    is open, or when no child is left (the engine is then kept for the next
    loop). Safe from any thread (a loop may be closed from another)."""
    if driver.retired or not driver.loopClosed() or driver.engine.processCount == 0:
        return
    driver.retired = True
    driver.close()
    driver.engine.abandon()
    ref = _homes.get(driver)
    home = ref() if ref is not None else None
    if home is not None and home.driver is driver:
        home.driver = None
    loop = driver.loop()  # None: gone, and its _others entry with it
    if loop is not None and _others.get(loop) is driver:
        del _others[loop]


def closeEngineOf(loop: asyncio.AbstractEventLoop) -> None:
    """After ``loop`` has closed (in any thread): :func:`retireIfOrphaned`
    for the engine it drove."""
    ref = _threadEngines.get(loop)
    for driver in (_thread.driver, _others.get(loop), ref() if ref is not None else None):
        if driver is not None and driver.loop() is loop:
            retireIfOrphaned(driver)


def _attach(loop: asyncio.AbstractEventLoop, driver: AsyncioDriver) -> None:
    """The thread's engine now runs in ``loop``: :func:`retireIfOrphaned` it
    when ``loop`` is collected (a loop that is closed but still referenced
    is caught when it closes, see ``EventLoop.close``, or when a transport
    of it is closed)."""
    _threadEngines[loop] = weakref.ref(driver)
    _homes[driver] = weakref.ref(_thread.home)
    weakref.finalize(loop, _loopGone, weakref.ref(driver))


def _loopGone(driverRef: weakref.ref[AsyncioDriver]) -> None:
    driver = driverRef()
    if driver is not None:
        retireIfOrphaned(driver)


def _afterForkInChild() -> None:
    """A forked child's loops are not ours to drive: forget the engines."""
    drivers = [*_others.values(), *([_thread.driver] if _thread.driver is not None else [])]
    for driver in drivers:
        driver.engine.forgetAfterFork()
    _others.clear()
    _thread.driver = None


os.register_at_fork(after_in_child=_afterForkInChild)


class _EngineProtocol:
    """The engine's protocol for one child: its events, passed on to the
    :class:`SubprocessTransport` while that lives. The engine keeps this
    object until the child has ended, but not the transport: a transport
    dropped without ``close()`` is collected as asyncio's is (its
    ``__del__`` closes it), even when no loop runs any more."""

    __slots__ = ("_transport",)

    def __init__(self, transport: SubprocessTransport) -> None:
        self._transport = weakref.ref(transport)

    def makeConnection(self, process: Process) -> None:
        t = self._transport()
        if t is not None:
            t._connected(process)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        t = self._transport()
        if t is not None:
            t._data(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        t = self._transport()
        if t is not None:
            t._pipeLost(childFD)

    def processExited(self, reason: _ExitInfo) -> None:
        t = self._transport()
        if t is not None:
            t._exited(reason)

    def processEnded(self, reason: object) -> None:
        t = self._transport()
        if t is not None:
            t._call(t._finish)


class SubprocessTransport(asyncio.SubprocessTransport):
    """The transport of one child (``loop.subprocess_exec``'s first result)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.SubprocessProtocol) -> None:
        super().__init__()
        #: ``get_extra_info``'s keys: ``subprocess`` (no Popen here),
        #: ``ferroproc`` (the engine's transport), ``timed_out``.
        self._info: dict[str, Any] = {"subprocess": None}
        #: What ``Process.timed_out`` and ``resource_usage`` give, once the
        #: child has exited.
        self._timedOut: TimedOut | None = None
        self._usage: ResourceUsage | None = None
        self._loop = loop
        self._protocol: asyncio.SubprocessProtocol | None = protocol
        self._process: Process | None = None
        self._pid: int | None = None
        self._returncode: int | None = None
        #: The pipe transports, made when first asked for (``communicate()``
        #: on ferroproc's Process never asks).
        self._pipes: dict[int, _ReadPipe | _WritePipe] = {}
        #: Child fds that are pipes to us: ``{childFD: 'r' | 'w'}``.
        self._pipeKinds: dict[int, str] = {}
        #: Those the engine has reported lost.
        self._lostFds: set[int] = set()
        #: Protocol calls made before ``connection_made``, to replay after it.
        self._pending: list[tuple[Callable[..., object], tuple[Any, ...]]] | None = []
        self._waiters: list[asyncio.Future[int]] | None = []
        self._closed = False
        #: The driver of the engine that runs the child: a retired engine
        #: (see retireIfOrphaned) lives on while its transports do, so that
        #: closing one still kills its child.
        self._driver: AsyncioDriver | None = None

    # -- asyncio's SubprocessTransport ------------------------------------------

    def get_pid(self) -> int:
        assert self._pid is not None, "not started"
        return self._pid

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._info.get(name, default)

    def get_returncode(self) -> int | None:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> _ReadPipe | _WritePipe | None:
        pipe = self._pipes.get(fd)
        if pipe is None:
            kind = self._pipeKinds.get(fd)
            process = self._info.get("ferroproc")
            if kind is None or process is None:
                return None
            pipe = self._pipes[fd] = _WritePipe(self, process, fd) if kind == "w" else _ReadPipe(self, process, fd)
            if self._closed or fd in self._lostFds:
                pipe._lost()
        return pipe

    def send_signal(self, signal: int) -> None:
        process = self._process
        if process is None or self._returncode is not None:
            raise ProcessLookupError()
        try:
            _debuglog.signal(process, signal, False, "program", "send_signal called by the program")
        except ProcessExitedAlready:
            raise ProcessLookupError() from None
        except (TypeError, ValueError) as e:
            # The engine's words are Twisted's (signalProcess): the program
            # called send_signal (terminate and kill cannot fail so).
            raise type(e)(str(e).replace("signalProcess", "send_signal", 1)) from None

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Close every pipe and kill the child if it still runs (as asyncio's
        transport does); ``connection_lost`` follows once it has gone. With
        ``kill_group_on_lost`` the child's group is killed too, as
        ``loseConnection`` kills it under the reactor."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        if process is not None:
            # Closes every pipe (stdin once its queue is written), killing
            # the group first with kill_group_on_lost.
            process.loseConnection()
        for pipe in self._pipes.values():
            pipe.close()
        if process is not None and self._returncode is None:
            try:
                text = "its asyncio transport was closed while it ran"
                _debuglog.signal(process, signal.SIGKILL, False, "transport-closed", text)
            except ProcessExitedAlready:
                pass
        if self._driver is not None and self._loop.is_closed():
            retireIfOrphaned(self._driver)

    def is_closing(self) -> bool:
        return self._closed

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed and self._process is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        code = "" if self._returncode is None else f" returncode={self._returncode}"
        return f"<ferroproc SubprocessTransport pid={self._pid}{state}{code}>"

    async def _wait(self) -> int:
        """What ``Process.wait()`` awaits: the return code."""
        if self._returncode is not None or self._waiters is None:
            assert self._returncode is not None
            return self._returncode
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiters.append(waiter)
        return await waiter

    # -- start -------------------------------------------------------------------

    def _connect(self, waiter: asyncio.Future[None]) -> None:
        """``connection_made``, then what came before it, then the creator
        is woken (a loop callback, as asyncio makes it)."""
        protocol = self._protocol
        if protocol is not None:
            try:
                protocol.connection_made(self)
            except Exception as e:  # noqa: BLE001 - as a loop callback's exception
                _report(f"{type(protocol).__name__}.connection_made", e)
        pending, self._pending = self._pending or [], None
        for f, args in pending:
            self._run(f, args)
        if not waiter.done():
            waiter.set_result(None)

    def _run(self, f: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            f(*args)
        except Exception as e:  # noqa: BLE001 - as a loop callback's exception
            _report(getattr(f, "__qualname__", repr(f)), e)

    def _call(self, f: Callable[..., object], *args: Any) -> None:
        if self._pending is not None:
            self._pending.append((f, args))
        else:
            f(*args)

    # -- the engine's events (through _EngineProtocol) ------------------------------

    def _connected(self, process: Process) -> None:
        self._process = process
        self._pid = process.pid
        self._info["ferroproc"] = process

    # _call inlined in the three below: they run for every chunk and child.

    def _data(self, childFD: int, data: bytes) -> None:
        if self._protocol is not None:
            if self._pending is not None:
                self._pending.append((self._protocol.pipe_data_received, (childFD, data)))
            else:
                self._protocol.pipe_data_received(childFD, data)

    def _pipeLost(self, childFD: int) -> None:
        self._lostFds.add(childFD)
        pipe = self._pipes.get(childFD)
        exc: BaseException | None = None
        if pipe is not None:
            pipe._lost()
            if (
                isinstance(pipe, _WritePipe)
                and pipe._flowing
                and self._process is not None
                and Process._inputBroken(self._process)
            ):
                exc = BrokenPipeError(32, "Broken pipe")
        if self._protocol is not None:
            if self._pending is not None:
                self._pending.append((self._protocol.pipe_connection_lost, (childFD, exc)))
            else:
                self._protocol.pipe_connection_lost(childFD, exc)  # type: ignore[arg-type]

    def _exited(self, reason: _ExitInfo) -> None:
        status, timedOut, self._usage = reason
        self._returncode = 255 if status is None else os.waitstatus_to_exitcode(status)
        self._info["timed_out"] = self._timedOut = timedOut
        if self._protocol is not None:
            self._call(self._protocol.process_exited)
        if _WAKE_AT_EXIT:
            self._call(self._wake)

    def _finish(self) -> None:
        protocol, self._protocol = self._protocol, None
        try:
            if protocol is not None:
                protocol.connection_lost(None)
        finally:
            self._wake()
            self._process = None

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(self._returncode)  # type: ignore[arg-type]


# The engine's transport is reached by users (``get_extra_info("ferroproc")``),
# who may hang attributes of their own on it under any name, as on Twisted's
# transports: its private methods are called through the class.


class _ReadPipe(asyncio.ReadTransport):
    """The read end of an output pipe (``get_pipe_transport(1)``, ``(2)``)."""

    def __init__(self, owner: SubprocessTransport, process: Process, fd: int) -> None:
        super().__init__()
        self._pid = owner._pid
        self._process = process
        self._fd = fd
        self._closing = False

    def pause_reading(self) -> None:
        if not self._closing:
            Process._setFDReading(self._process, self._fd, False)

    def resume_reading(self) -> None:
        if not self._closing:
            Process._setFDReading(self._process, self._fd, True)

    def is_reading(self) -> bool:
        return not self._closing and Process._isReading(self._process, self._fd)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._process.closeChildFD(self._fd)

    def is_closing(self) -> bool:
        return self._closing

    def _lost(self) -> None:
        self._closing = True

    def __repr__(self) -> str:
        return f"<ferroproc read pipe fd={self._fd} of pid {self._pid}>"


class _WritePipe(asyncio.Transport):
    """The write end of the child's stdin (``get_pipe_transport(0)``), with
    asyncio's flow control: the subprocess protocol's ``pause_writing`` once
    more than the high-water mark is buffered, ``resume_writing`` at or below
    the low one (the engine's producer machinery). A ``Transport``, as
    asyncio's own write pipe is: its ``pause_reading`` and ``resume_reading``
    raise ``NotImplementedError``."""

    def __init__(self, owner: SubprocessTransport, process: Process, fd: int) -> None:
        super().__init__()
        self._owner = weakref.ref(owner)
        self._pid = owner._pid
        self._process = process
        self._fd = fd
        self._closing = False
        self._lostAlready = False
        self._paused = False
        self._dropped = 0
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        #: Flow control is set up at the first write (a child is often
        #: given no input at all): until then nothing is queued, so nothing
        #: can pause or resume, nor break.
        self._flowing = False

    def _flow(self) -> None:
        self._flowing = True
        Process._setWriteLimits(self._process, self._high, self._low)
        self._process.registerProducer(self, True)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if not data:
            return
        if self._closing or self._lostAlready:
            self._dropped += 1
            if self._dropped == 5:
                from ferroproc._logger import logger

                logger().warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            return
        if not self._flowing:
            self._flow()
        self._process.write(data if type(data) is bytes else bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if not self._closing:
            self._closing = True
            self._process.closeChildFD(self._fd)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.write_eof()

    def abort(self) -> None:
        self._closing = True
        Process._abortChildFD(self._process, self._fd)

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return Process._queued(self._process, self._fd)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        if not self._flowing:
            return  # set at the first write
        Process._setWriteLimits(self._process, high, low)
        if not self._paused and self.get_write_buffer_size() > high:
            # A later write pauses the engine's producer; the protocol hears
            # of it now, as asyncio's transport tells it at once.
            self.pauseProducing()

    def _lost(self) -> None:
        self._closing = self._lostAlready = True

    # The engine's producer interface: its flow control, turned into the
    # subprocess protocol's (asyncio's WriteSubprocessPipeProto does the same).

    def pauseProducing(self) -> None:
        self._tell(True)

    def resumeProducing(self) -> None:
        self._tell(False)

    def _tell(self, pause: bool) -> None:
        """``pause_writing``/``resume_writing`` to the subprocess protocol,
        alternating (as asyncio's ``FlowControlMixin`` asserts)."""
        if self._paused == pause:
            return
        self._paused = pause
        owner = self._owner()
        protocol = owner._protocol if owner is not None else None
        if protocol is None:
            return
        try:
            if pause:
                protocol.pause_writing()
            else:
                protocol.resume_writing()
        except Exception as e:  # noqa: BLE001 - as asyncio reports it
            _report("protocol.pause_writing()" if pause else "protocol.resume_writing()", e)

    def stopProducing(self) -> None:
        """The input has gone: its loss is reported by ``childConnectionLost``."""

    def __repr__(self) -> str:
        return f"<ferroproc write pipe fd={self._fd} of pid {self._pid}>"


def loopCaller(shell: bool) -> str:
    """The function an asyncio program called to reach ``loop.subprocess_exec``
    (or ``_shell``) of ferroproc's loop, for messages: asyncio's
    ``create_subprocess_*`` when it is on the stack (it awaits the loop's
    method, which awaits ``_make_subprocess_transport``), else the loop's
    method itself (anyio, a program's own protocol)."""
    import asyncio.subprocess as aio

    wanted = (aio.create_subprocess_shell if shell else aio.create_subprocess_exec).__code__
    frame = sys._getframe(1)
    for _ in range(6):
        if frame.f_code is wanted:
            return wanted.co_name
        if frame.f_back is None:
            break
        frame = frame.f_back
    return "subprocess_shell" if shell else "subprocess_exec"


def _spawn(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    kwargs: dict[str, Any],
    function: str,
) -> SubprocessTransport | None:
    """Start a child for ``protocol`` on ``loop`` (running in this thread);
    the engine has called ``_connected`` when this returns, the protocol
    nothing yet. ``None`` when only asyncio's own path can start it
    (``preexec_fn``)."""
    transport = SubprocessTransport(loop, protocol)
    bridge = _EngineProtocol(transport)
    spawn = preparePopen(bridge, (args,) if shell else args, shell, stdin, stdout, stderr, kwargs, function)
    if spawn is None:
        return None
    transport._pipeKinds = spawn.pipes
    try:
        # Making the thread's engine can fail too (EMFILE): what the spawn
        # opened is closed whatever happens.
        driver = transport._driver = driverFor(loop)
        driver.engine.spawn(bridge, spawn.args)  # type: ignore[arg-type]  # it has the methods
    finally:
        for fd in spawn.opened:
            os.close(fd)
    if spawn.args.timeout is not None or spawn.args.idle_timeout is not None:
        driver.schedule()  # the engine's next timer may be this child's limit
    return transport


def startTransport(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    kwargs: dict[str, Any],
    function: str,
) -> SubprocessTransport | None:
    """:func:`makeTransport` for ferroproc's own ``Process``, whose protocol
    is ferroproc's: ``connection_made`` is called here, at once (no event
    can reach the child's transport before the loop turns the engine), so
    ``create_subprocess_exec`` returns without a round through the loop."""
    transport = _spawn(loop, protocol, args, shell, stdin, stdout, stderr, kwargs, function)
    if transport is None:
        return None
    transport._pending = None
    try:
        protocol.connection_made(transport)
    except BaseException:
        transport.close()
        raise
    return transport


async def makeTransport(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    kwargs: dict[str, Any],
    function: str,
) -> SubprocessTransport | None:
    """Start a child for ``protocol`` on ``loop`` (running in this thread),
    as asyncio's ``_make_subprocess_transport`` does: returns once
    ``connection_made`` has run (in a loop callback, as asyncio calls it).
    ``function`` is what the program called, for messages. ``None`` when
    only asyncio's own path can start it (``preexec_fn``)."""
    transport = _spawn(loop, protocol, args, shell, stdin, stdout, stderr, kwargs, function)
    if transport is None:
        return None
    waiter: asyncio.Future[None] = loop.create_future()
    loop.call_soon(transport._connect, waiter)
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return transport
