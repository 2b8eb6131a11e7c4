"""`ferroproc._core`: the Rust engine behind ferroproc's reactor.

Private: user code goes through :mod:`ferroproc` (``reactor.spawnProcess``),
which validates and normalises arguments before they reach :class:`Engine`.
The classes here are what that public API returns, though: ``spawnProcess``
returns a :class:`Process` and ``callLater`` a :class:`DelayedCall`.
"""

from collections.abc import Callable, Iterable
from typing import Any, NoReturn, final

from typing_extensions import Self

from ferroproc._spawnargs import SpawnArgs
from ferroproc.error import ResourceUsage
from ferroproc.interfaces import IProcessProtocol, IPullProducer, IPushProducer
from ferroproc.jobs import Job, JobResult

__all__ = ["DelayedCall", "Engine", "JobQueue", "Process", "__version__", "_debugRecords", "parseSignal"]

#: The version of the compiled extension (the Cargo package version).
__version__: str

def parseSignal(signal: object, what: str) -> int:
    """The number of ``signal``: a name with or without ``SIG`` in any case
    (``"TERM"``, ``"sigkill"``, ``"RTMIN+1"``, ``"RTMAX-2"``) or a number from
    0 to ``SIGRTMAX``. The one parser of signals: ``signalProcess``,
    ``signalGroup`` and every spawn option that takes a signal use it.

    Raises:
        TypeError: neither a str nor an int (``what`` names the parameter).
        ValueError: an unknown name or a number out of range.
    """

def _debugRecords() -> int:
    """How many debug records the engine has made since the process started
    (for tests: none is made while the debug log is off)."""

@final
class Engine:
    """The engine behind a reactor: one poll holding every pipe, PTY master
    and pidfd, a queue of protocol callbacks, timers, and calls from other
    threads.

    Each loop turn polls with the GIL released, does the I/O for the ready fds
    (reads go straight into ``bytes``), delivers the queued callbacks in order,
    then runs due timers.

    Arguments:
        reason: ``reason(status, timedOut, usage)`` makes the object passed to
            ``processExited``/``processEnded`` from the raw wait status (None
            when unknown), ``(kind, limit, killed)`` when a time limit ended
            the child (else None), and its ``ResourceUsage`` (or None).
        log_error: ``log_error(where, exc)`` reports an exception raised by a
            callback.
        exited_already: the exception class ``signalProcess`` raises once
            the child is gone (default ``ferroproc.error.ProcessExitedAlready``).
        immediate_writes: asyncio's rule: a write made outside a loop turn
            (from a coroutine) to an idle pipe is made at once. Otherwise
            (Twisted's) it waits for the end of the next turn, so what one
            callback of the host writes leaves in one ``writev``.

    They come from the host, so Twisted code can get Twisted's own classes.

    Raises:
        OSError: the poll, its waker or the signal pipe cannot be created.
    """

    def __new__(
        cls,
        reason: Callable[[int | None, tuple[str, float, bool] | None, ResourceUsage | None], object],
        log_error: Callable[[str, BaseException], object],
        exited_already: type[BaseException] | None = None,
        immediate_writes: bool = False,
    ) -> Self: ...
    def spawn(self, protocol: IProcessProtocol | None, args: SpawnArgs) -> Process:
        """Start a child and connect ``protocol`` to it (``makeConnection`` is
        called before this returns).

        ``args`` comes from :func:`ferroproc._spawnargs.prepareSpawn`, which
        has checked and normalised every argument. Every remaining check runs
        before the child exists; once it does, it is killed and reaped if
        anything fails before the engine has taken it over.

        Raises:
            ValueError: a NUL byte in an argument, a ``uid`` without a passwd
                entry and no ``gid``, a ``usePTY`` tuple whose fds are not a
                terminal's master and its slave.
            OSError: the subclass for the errno of a failed start
                (``FileNotFoundError`` for a missing executable,
                ``PermissionError``...), naming the executable, directory or
                ids; no child is left behind.
            RuntimeError: called from another thread than the one driving the
                engine, or in a process forked from the engine's.
        """

    def run(self) -> None:
        """Run until :meth:`stop`.

        Raises:
            RuntimeError: the engine is already running.
            BaseException: what a callback raised if it was not an
                ``Exception`` (KeyboardInterrupt, SystemExit), and what a
                signal handler raised.
        """

    def runOnce(self, timeout: float = 0.0, timers: bool = True) -> None:
        """One loop turn, waiting at most ``timeout`` seconds (0: do only what
        is ready); ``timers=False`` leaves due timers to the host. Used by
        hosts such as a Twisted reactor that drive the engine.

        Raises:
            ValueError: ``timeout`` is infinite or NaN.
        """

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current turn. Safe from any thread."""

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is active."""

    @property
    def processCount(self) -> int:
        """How many children were started and have not ended yet
        (``processEnded`` not yet delivered), and those being started on
        another thread (the jobs runner's spawners)."""

    def fileno(self) -> int:
        """The poll fd: readable whenever the engine has work (for hosts)."""

    def wakeupFd(self) -> int:
        """The fd to pass to ``signal.set_wakeup_fd`` while the engine runs, so
        a signal wakes the loop and its Python handler runs promptly."""

    def hasPending(self) -> bool:
        """Whether callbacks or I/O are waiting (a host should call ``runOnce(0)``)."""

    def processes(self) -> list[Process]:
        """The transports of the children that have not ended, less those a
        host took off its reactor (``Process._removeFromReactor``)."""

    def nextTimer(self) -> float | None:
        """When the earliest timer is due (``seconds()`` time), or None."""

    def bindThread(self, bound: bool = True) -> None:
        """Make the calling thread the one that runs protocol code for this
        engine (a host driving it from that thread), or with ``bound=False``
        none. ``spawn`` from another thread is then refused."""

    def abandon(self) -> None:
        """For a host whose loop has closed for good while transports of
        this engine live on (asyncio's, kept by the program): nothing will
        turn the engine again. Every pipe is closed; children that have
        exited are reaped now, the others as they exit (on a thread), and
        until then a transport can still signal its child. Protocols get no
        more calls, and ``processCount`` is 0."""

    def forgetAfterFork(self) -> None:
        """In a child made by ``os.fork()``: the engine's children and fds
        belong to the parent. It refuses to run or spawn from now on, its
        transports act as if their child had gone, and nothing of the
        parent's is touched."""

    def seconds(self) -> float:
        """The current time in seconds (as ``time.time()``)."""

    def callLater(
        self,
        delay: float,
        f: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
    ) -> DelayedCall:
        """Call ``f(*args, **kwargs)`` ``delay`` seconds from now.

        A huge finite delay is a call that never comes due.

        Raises:
            ValueError: ``delay`` is negative, infinite or NaN.
            TypeError: ``f`` is not callable.
        """

    def callFromThread(
        self,
        f: Callable[..., object],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Run ``f(*args, **kwargs)`` on the loop thread soon. Safe from any thread."""

@final
class DelayedCall:
    """A call scheduled with ``callLater`` (Twisted's ``IDelayedCall``).

    Not created directly: ``reactor.callLater`` returns one.
    """

    def getTime(self) -> float:
        """When the call will run, in ``seconds()`` time."""

    def cancel(self) -> None:
        """Unschedule the call.

        Raises:
            ferroproc.error.AlreadyCalled: it has already run.
            ferroproc.error.AlreadyCancelled: it was already cancelled.
        """

    def delay(self, secondsLater: float) -> None:
        """Run ``secondsLater`` seconds later than currently scheduled.

        Raises AlreadyCalled / AlreadyCancelled as :meth:`cancel` does, and
        ValueError for an infinite or NaN ``secondsLater``.
        """

    def reset(self, secondsFromNow: float) -> None:
        """Run ``secondsFromNow`` seconds from now instead.

        Raises AlreadyCalled / AlreadyCancelled as :meth:`cancel` does, and
        ValueError for an infinite or NaN ``secondsFromNow``.
        """

    def active(self) -> bool:
        """True until the call has run or been cancelled."""

    @property
    def func(self) -> Callable[..., object] | None:
        """The scheduled callable (None once run or cancelled)."""

@final
class Process:
    """The transport a protocol gets: ferroproc's ``IProcessTransport``.

    Returned by ``reactor.spawnProcess`` and passed to the protocol's
    ``makeConnection``; not created directly. Instances take arbitrary
    attributes (as Twisted's transports do).

    ``pid`` is the child's pid until it is reaped, then None; ``status`` is -1
    while it runs, then the raw wait status. On a PTY transport (``usePTY``)
    the terminal carries fds 0, 1 and 2: ``write`` goes to the terminal, its
    output arrives as fd 1, and the per-fd methods (``writeToChild``,
    ``closeChildFD``) raise ``NotImplementedError``.
    """

    @property
    def pid(self) -> int | None:
        """The child's pid, or None once it has been reaped."""

    @property
    def status(self) -> int | None:
        """-1 while the child runs; then its raw wait status (None if someone
        else reaped it and the status is unknown)."""

    @property
    def proto(self) -> IProcessProtocol | None:
        """The protocol, until ``processEnded`` has been delivered."""

    @property
    def pipes(self) -> dict[int, int]:
        """Open pipes: child fd → the parent's fd number (empty on a PTY)."""

    def write(self, data: bytes) -> None:
        """Write ``data`` to the child's stdin (or terminal). Everything
        written during one loop turn leaves together at its end, in one
        ``writev``. Dropped silently once stdin is closed, as in Twisted.

        Raises:
            TypeError: ``data`` is not ``bytes``.
        """

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        """Write each bytes object of ``seq`` in order."""

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write ``data`` to the pipe mapped as ``'w'`` on child fd ``childFD``.

        Raises:
            KeyError: that fd has no open pipe.
            NotImplementedError: on a PTY transport.
            TypeError: ``childFD`` is not an int or ``data`` is not bytes.
        """

    def closeChildFD(self, childFD: int) -> None:
        """Close the pipe on child fd ``childFD``: an input pipe after its
        queued data is written (the child sees EOF), an output pipe at once
        (output not yet delivered is dropped). Closing an fd that is not open
        does nothing.

        Raises:
            NotImplementedError: on a PTY transport.
        """

    def closeStdin(self) -> None:
        """Close the child's stdin once queued data is written (no-op on a PTY)."""

    def closeStdout(self) -> None:
        """Stop reading the child's stdout and close it (no-op on a PTY)."""

    def closeStderr(self) -> None:
        """Stop reading the child's stderr and close it (no-op on a PTY)."""

    def loseConnection(self) -> None:
        """Close every pipe (stdin after flushing, then stderr, stdout and any
        others). On a PTY: flush, then close the master; the child usually
        gets SIGHUP. The child is not signalled otherwise."""

    def signalProcess(self, signalID: str | int) -> None:
        """Send a signal: a name with or without "SIG" ("TERM", "SIGKILL",
        "USR1"...) or a number.

        Raises:
            ValueError: an unknown signal name.
            ferroproc.error.ProcessExitedAlready: the child has been reaped.
        """

    def signalGroup(self, signalID: str | int) -> None:
        """ferroproc extension: send a signal (as :meth:`signalProcess`
        takes it) to the process group the child leads: every process still
        in it, descendants that left its pipes behind too (not one that left
        the group with ``setsid``/``setpgid``: a ``cgroup`` holds a whole
        tree). Needs a group the child leads (``processGroup=True`` or
        ``newSession=True``). Works until the child has been reaped: a
        leader is reaped when its last pipe has closed (just before
        ``processEnded``), not at its exit; after that the group's id may
        be reused, so it is never signalled.

        Raises:
            ValueError: an unknown signal; the child has no group of its
                own, or joined one it does not lead (signal that group
                yourself with ``os.killpg`` if it is yours).
            ferroproc.error.ProcessExitedAlready: the child has been reaped,
                or nothing is left in the group.
        """

    def _signalFor(self, sig: str | int, group: bool, why: tuple[str, str]) -> None:
        """:meth:`signalGroup` (``group``) or :meth:`signalProcess`, sent by
        ferroproc's own code (the utilities, pipelines, the asyncio
        transport) for ``why``: ``(code, text)``, a short reason to filter
        on and the reason in words, as the debug log gives them. Raises what
        those methods raise."""


    @property
    def pgid(self) -> int | None:
        """ferroproc extension: the child's process group id, when it leads
        a group or joined another one (None: it is in ours).

        A program may set it, as Twisted programs set attributes of their
        own on Twisted's transports (``self.transport.pgid =
        self.transport.pid``): the value is stored and read back (``del``
        forgets it), and changes nothing ferroproc does: ``signalGroup`` and
        the time limits signal the child's real group.
        """

    @pgid.setter
    def pgid(self, value: int | None) -> None: ...
    @pgid.deleter
    def pgid(self) -> None: ...
    @property
    def resourceUsage(self) -> ResourceUsage | None:
        """ferroproc extension: what the child used (CPU times, peak RSS:
        see ``ResourceUsage.maxRSS`` for what Linux counts in it) as the
        kernel reports it at reap; None until then (or when someone else
        reaped it). A program may set it, as :attr:`pgid`."""

    @resourceUsage.setter
    def resourceUsage(self, value: ResourceUsage | None) -> None: ...
    @resourceUsage.deleter
    def resourceUsage(self) -> None: ...

    def pauseProducing(self) -> None:
        """Stop reading the child's output (the pipe fills, and the child blocks)."""

    def resumeProducing(self) -> None:
        """Resume reading the child's output."""

    def stopProducing(self) -> None:
        """The same as :meth:`loseConnection`."""

    def registerProducer(self, producer: IPushProducer | IPullProducer, streaming: bool) -> None:
        """Register a producer feeding stdin.

        A streaming producer is paused when more than 64 KiB are queued and
        resumed when the queue drains; a pull producer is asked for more each
        time it drains. Without a stdin pipe the producer is stopped at once.

        Raises:
            RuntimeError: a producer is already registered.
        """

    def unregisterProducer(self) -> None:
        """Forget the registered producer (if any)."""

    def _selectables(self) -> list[tuple[int, int, str, bool]]:
        """For a host that shows processes as reactor entries: each open pipe
        as ``(childFD, parentFD, kind, queued)``, kind ``'r'``, ``'w'`` or
        ``'pty'``, ``queued`` whether input waits to be written."""

    def _setFDReading(self, childFD: int, reading: bool) -> None:
        """For the asyncio host: pause or resume reading child fd ``childFD``
        alone (a pipe transport's ``pause_reading``/``resume_reading``)."""

    def _isReading(self, childFD: int) -> bool:
        """For the asyncio host: whether child fd ``childFD`` is an open pipe
        being read."""

    def _setWriteLimits(self, high: int, low: int) -> None:
        """For the asyncio host: a registered streaming producer is paused
        above ``high`` queued input bytes and resumed at or below ``low``."""

    def _queued(self, childFD: int) -> int:
        """For the asyncio host: how many bytes are queued for child fd ``childFD``."""

    def _abortChildFD(self, childFD: int) -> None:
        """For the asyncio host: close the input pipe of child fd ``childFD``
        now, dropping what is queued (``abort``)."""

    def _inputBroken(self) -> bool:
        """For the asyncio host: whether stdin was lost with data still
        queued (the child closed its end: a broken pipe)."""

    def _removeFromReactor(self) -> None:
        """Take the process off its host's reactor (Twisted's ``removeAll()``):
        its protocol gets no more calls and the parent's ends of its pipes
        close at once; it can still be signalled, and is reaped when it exits."""

    def getHost(self) -> NoReturn:
        """Not available for processes (as in Twisted): raises NotImplementedError."""

    def getPeer(self) -> NoReturn:
        """Not available for processes (as in Twisted): raises NotImplementedError."""

    def fileno(self) -> int:
        """PTY transports: the master fd.

        Raises:
            NotImplementedError: not a PTY transport.
            ValueError: the terminal is closed.
        """

    def setWindowSize(self, rows: int, cols: int) -> None:
        """ferroproc extension (PTY): resize the terminal; the child gets SIGWINCH.

        Raises NotImplementedError / ValueError as :meth:`fileno` does.
        """

    def getWindowSize(self) -> tuple[int, int]:
        """ferroproc extension (PTY): the terminal's size as ``(rows, cols)``."""

    def getEcho(self) -> bool:
        """ferroproc extension (PTY): whether the terminal echoes input."""

    def setEcho(self, enabled: bool) -> None:
        """ferroproc extension (PTY): turn the terminal's echo on or off."""

    def isRawMode(self) -> bool:
        """ferroproc extension (PTY): whether the terminal is in raw mode."""

    def setRawMode(self, enabled: bool) -> None:
        """ferroproc extension (PTY): raw mode on (``cfmakeraw``), or off (the
        attributes the terminal had at spawn)."""


@final
class JobQueue:
    """The jobs runner's core over an engine (private: :mod:`ferroproc.jobs`
    uses it). Python pushes prepared jobs; the queue starts them up to
    ``concurrency`` at once and, the moment one ends, records its result and
    starts the next one in the same loop turn, with no Python in between.
    At the end of a turn that finished jobs, ``notify()`` is called once
    (the engine's end-of-turn calls), and Python ``take()``s the batch.

    Arguments (after ``engine``, ``notify`` and ``template``, the
    ``SpawnArgs`` every job starts from, all keyword-only): ``environ``, the
    environment of jobs without their own; ``concurrency``; ``ahead``, how
    many prepared jobs to keep queued; ``killGrace``; the runner's
    ``timeout`` and ``idleTimeout``; ``retries`` and ``retryDelay``;
    ``memfree`` (bytes, or None); ``halt`` as ``(when, on, count,
    percent)``; ``maxBytes``, ``capture``, ``results`` (a directory),
    ``stdout``/``stderr`` (fds); ``streamOutput`` (collect output pieces for
    ``onOutput``); the classes results are made of; ``utf8``: whether ``str``
    is encoded as UTF-8 with ``surrogateescape`` (the filesystem encoding);
    ``spawners``: how many threads start jobs when more than one runs at a
    time (0: the loop's thread does). A spawn waits for the child's exec;
    on the spawners, those waits overlap and the loop goes on meanwhile;
    the loop's thread still takes every child in, with no Python between a
    job's end and the next one's hand-over.

    Raises:
        ValueError: a bad limit or halt policy.
        OSError: ``/dev/null`` cannot be opened.
    """

    def __new__(
        cls,
        engine: Engine,
        notify: Callable[[], object],
        template: SpawnArgs,
        *,
        environ: list[bytes],
        concurrency: int,
        ahead: int,
        killGrace: float,
        timeout: float | None,
        idleTimeout: float | None,
        retries: int,
        retryDelay: float,
        memfree: int | None,
        halt: tuple[str, str, int | None, float | None] | None,
        maxBytes: int | None,
        capture: bool,
        results: bytes | None,
        stdout: int | None,
        stderr: int | None,
        streamOutput: bool,
        jobClass: type[Job],
        resultClass: type[JobResult],
        usageClass: type[ResourceUsage],
        utf8: bool,
        spawners: int,
    ) -> Self: ...
    def push(self, seq: int, item: object) -> bool:
        """Queue ``item`` as job ``seq`` when it is a usual job (a ``Job``, or
        a list or tuple of arguments, of plain types and no options), and
        start what can start; False leaves it to Python's checks.

        Raises:
            RuntimeError: from another thread than the engine's driver.
        """

    def pushPrepared(
        self,
        seq: int,
        job: Job,
        argv: list[bytes] | None,
        envp: list[bytes] | None,
        cwd: bytes | None,
        stdin: bytes | None,
        timeout: float | None,
        idleTimeout: float | None,
        args: SpawnArgs | None,
    ) -> None:
        """Queue job ``seq`` as Python prepared it: ``argv`` (with ``envp``,
        None for ``environ``, and ``cwd``) over the template, or ``args``, the
        job's own spawn arguments; then start what can start."""

    def kick(self) -> None:
        """Start what can start now (retries whose delay is over, jobs the
        memory gate held back)."""

    def take(self) -> tuple[list[JobResult], list[tuple[int, int, bytes]], float | None, int | None]:
        """The results and ``(seq, fd, data)`` output pieces since the last
        call, when to :meth:`kick` next, and the job whose end reached the
        halt policy (once)."""

    def setTotal(self, total: int) -> None:
        """The number of jobs to run, once known (for a halt percentage)."""

    def cancel(self, grace: float | None = None) -> None:
        """Start no more jobs; stop the running ones (their group: SIGTERM,
        SIGKILL ``grace`` seconds later, by default ``killGrace``; 0: SIGKILL
        at once). Again with a shorter grace, it brings the SIGKILL forward.

        Raises:
            ValueError: ``grace`` is not a finite number >= 0.
        """

    def drain(self) -> None:
        """Start no more jobs; let the running ones end (none is retried)."""

    def close(self) -> None:
        """Release the queue's fds and callback.

        Raises:
            RuntimeError: jobs are still running.
        """

    @property
    def wanted(self) -> int:
        """How many more prepared jobs the queue wants."""

    @property
    def running(self) -> int:
        """Jobs running now."""

    @property
    def started(self) -> int:
        """Attempts started so far."""

    @property
    def idle(self) -> bool:
        """Nothing runs or waits to start."""

    @property
    def news(self) -> bool:
        """Results, output or a wake-up time have come since the last :meth:`take`."""

    @property
    def halted(self) -> bool:
        """A halt policy stopped the run."""
