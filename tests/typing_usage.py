"""Every public signature of ferroproc, used as user code would use it.

Checked by ``mypy --strict`` (``scripts/check.sh``), never collected by pytest
and never run on import: each part is a function. Two kinds of lines:

* plain calls and ``assert_type(...)``: they must type-check, and the types
  inferred must be the ones written;
* calls ending in ``# type: ignore[code]``: they must be *rejected* with that
  error code. mypy's ``warn_unused_ignores`` (part of ``--strict``) fails the
  check if one of them starts being accepted, so a signature that loosens to
  ``Any`` is caught.

``python tests/typing_usage.py`` runs the seed's wc and verbose examples.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Literal, NoReturn, assert_type

import ferroproc
from ferroproc import Reactor, defer, error, failure, log, procutils, protocol, reactor, task, utils
from ferroproc._core import DelayedCall, Engine, Process
from ferroproc._spawnargs import SpawnArgs, prepareSpawn
from ferroproc.defer import Deferred
from ferroproc.failure import Failure
from ferroproc.interfaces import (
    IConsumer,
    IDelayedCall,
    IProcessProtocol,
    IProcessTransport,
    IProducer,
    IPullProducer,
    IPushProducer,
    IReactorProcess,
    IReactorTime,
)

# -- the seed's examples, annotated ------------------------------------------


class WCProcessProtocol(protocol.ProcessProtocol):
    """The seed's "Writing a ProcessProtocol" example."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    def connectionMade(self) -> None:
        self.transport.write(self.text)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        fieldLength = len(data) // 3
        lines = int(data[:fieldLength])
        words = int(data[fieldLength : fieldLength * 2])
        chars = int(data[fieldLength * 2 :])
        self.transport.loseConnection()
        self.receiveCounts(lines, words, chars)

    def receiveCounts(self, lines: int, words: int, chars: int) -> None:
        print("Received counts from wc.")
        print("Lines:", lines)
        print("Words:", words)
        print("Characters:", chars)

    def processEnded(self, reason: Failure) -> None:
        reactor.stop()


VERSE = (
    b"Aleph-null bottles of beer on the wall,\n"
    b"Aleph-null bottles of beer,\n"
    b"Take one down and pass it around,\n"
    b"Aleph-null bottles of beer on the wall.\n"
)


class MyPP(protocol.ProcessProtocol):
    """The seed's "Verbose Example": every callback says when it runs."""

    def __init__(self, verses: int) -> None:
        self.verses = verses
        self.data = b""

    def connectionMade(self) -> None:
        print("connectionMade!")
        for _ in range(self.verses):
            self.transport.write(VERSE)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        print(f"outReceived! with {len(data)} bytes!")
        self.data += data

    def errReceived(self, data: bytes) -> None:
        print(f"errReceived! with {len(data)} bytes!")

    def inConnectionLost(self) -> None:
        print("inConnectionLost! stdin is closed! (we probably did it)")

    def outConnectionLost(self) -> None:
        print("outConnectionLost! The child closed their stdout!")
        lines, _words, _chars = self.data.split()
        print(f"I saw {int(lines)} lines")

    def errConnectionLost(self) -> None:
        print("errConnectionLost! The child closed their stderr.")

    def processExited(self, reason: Failure) -> None:
        # Failure.value is Any (it may be any object), so Twisted-style
        # attribute access needs no cast.
        print(f"processExited, status {reason.value.exitCode}")

    def processEnded(self, reason: Failure) -> None:
        print(f"processEnded, status {reason.value.exitCode}")
        print("quitting")
        reactor.stop()


class GPGProtocol(protocol.ProcessProtocol):
    """The seed's GPG example: extra pipes on fds 3 and 4 through childFDs."""

    passphrase = b"secret\n"

    def __init__(self, crypttext: bytes) -> None:
        self.crypttext = crypttext
        self.plaintext = b""
        self.status = b""
        self.deferred: Deferred[GPGProtocol] = Deferred()

    def connectionMade(self) -> None:
        self.transport.writeToChild(3, self.passphrase)
        self.transport.closeChildFD(3)
        self.transport.writeToChild(0, self.crypttext)
        self.transport.closeChildFD(0)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self.plaintext += data
        if childFD == 4:
            self.status += data

    def processEnded(self, reason: Failure) -> None:
        rc = reason.value.exitCode
        if rc == 0:
            self.deferred.callback(self)
        else:
            self.deferred.errback(error.ProcessTerminated(rc))


def decrypt(crypttext: bytes) -> Deferred[GPGProtocol]:
    gp = GPGProtocol(crypttext)
    cmd = ["gpg", "--decrypt", "--passphrase-fd", "3", "--status-fd", "4", "--batch"]
    reactor.spawnProcess(gp, cmd[0], cmd, env=None, childFDs={0: "w", 1: "r", 2: 2, 3: "w", 4: "r"})
    return gp.deferred


def gpg_plaintext(crypttext: bytes) -> Deferred[bytes]:
    return decrypt(crypttext).addCallback(lambda gp: gp.plaintext)


# -- protocols -------------------------------------------------------------


class Quiet:
    """A protocol that does not subclass ProcessProtocol: structural typing."""

    def makeConnection(self, transport: IProcessTransport) -> None:
        transport.closeStdin()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        pass

    def childConnectionLost(self, childFD: int) -> None:
        pass

    def processExited(self, reason: Failure) -> None:
        pass

    def processEnded(self, reason: object) -> None:  # a wider parameter is fine
        pass


class NotAProtocol:
    def makeConnection(self, transport: IProcessTransport) -> None:
        pass


class PTYProtocol(protocol.ProcessProtocol):
    """Narrows ``transport`` to the concrete class to reach the PTY extensions."""

    transport: Process

    def connectionMade(self) -> None:
        self.transport.setWindowSize(24, 80)
        assert_type(self.transport.getWindowSize(), tuple[int, int])


def protocols() -> None:
    base = protocol.BaseProtocol()
    assert_type(base.connected, int)
    assert_type(base.transport, IProcessTransport)
    base.connectionMade()

    pp = protocol.ProcessProtocol()
    pp.childDataReceived(1, b"out")
    pp.outReceived(b"x")
    pp.errReceived(b"x")
    pp.childConnectionLost(0)
    pp.inConnectionLost()
    pp.outConnectionLost()
    pp.errConnectionLost()
    reason = Failure(error.ProcessDone(0))
    pp.processExited(reason)
    pp.processEnded(reason)
    pp.childDataReceived(1, "text")  # type: ignore[arg-type]

    as_iface: IProcessProtocol = pp
    as_iface = Quiet()
    as_iface = WCProcessProtocol(b"")
    as_iface = NotAProtocol()  # type: ignore[assignment]
    del as_iface


# -- the reactor -------------------------------------------------------------


def tick(n: int, label: str = "") -> None:
    pass


def spawning(r: Reactor) -> Process:
    p = r.spawnProcess(WCProcessProtocol(b"x\n"), "wc", ["wc"])
    assert_type(p, Process)
    r.spawnProcess(MyPP(1), b"/usr/bin/wc", [b"wc", "-l"], env=None, path="/tmp")
    r.spawnProcess(Quiet(), "env", ["env"], {"A": "1"}, os.getcwd(), uid=None, gid=None)
    r.spawnProcess(Quiet(), "sh", ["sh"], {b"A": b"1"}, usePTY=True, windowSize=(24, 80))
    master, slave = os.openpty()
    r.spawnProcess(Quiet(), "sh", ["sh"], usePTY=(master, slave, os.ttyname(slave)))
    r.spawnProcess(None, "true", ["true"], childFDs={0: 0, 1: 1, 2: 2})
    r.spawnProcess(Quiet(), "ls", ["ls"], childFDs={0: "w", 1: "r", 2: "r", 3: "w"})
    r.spawnProcess(Quiet(), os.devnull, [os.devnull], path=os.path.expanduser("~"))
    r.spawnProcess(NotAProtocol(), "true", ["true"])  # type: ignore[arg-type]
    r.spawnProcess(Quiet(), "true", ["true"], childFDs={0: 1.5})  # type: ignore[dict-item]
    r.spawnProcess(Quiet(), 42, ["true"])  # type: ignore[arg-type]
    job = r.spawnProcess(
        Quiet(),
        "make",
        ["make"],
        processGroup=True,
        killGroupOnExit=True,
        timeout=60,
        idleTimeout=10.5,
        killGrace=2,
        rlimits={"nofile": 1024, "core": (0, 0)},
        umask=0o22,
        nice=5,
        cpuAffinity=[0, 1],
        parentDeathSignal="TERM",
        noNewPrivileges=True,
        cgroup="/sys/fs/cgroup/jobs",
    )
    assert_type(job.pgid, int | None)
    job.signalGroup("KILL")
    usage = job.resourceUsage
    if usage is not None:
        assert_type(usage.maxRSS, int)
        assert_type(usage.userTime, float)
    r.spawnProcess(Quiet(), "true", ["true"], newSession=True, killGroupOnLost=True)
    r.spawnProcess(Quiet(), "true", ["true"], timeout="1")  # type: ignore[arg-type]
    r.spawnProcess(Quiet(), "true", ["true"], procesGroup=True)  # type: ignore[call-arg]
    return p


def timing(r: Reactor) -> None:
    assert_type(r.seconds(), float)
    call = r.callLater(1.5, tick, 3)
    r.callLater(0, tick, 3, label="x")
    r.callLater(0, tick, n=3)
    r.callLater(0, r.stop)
    r.callLater(0, tick, "3")  # type: ignore[arg-type]
    r.callLater(0, tick)  # type: ignore[call-arg]
    r.callLater(0, tick, 1, colour="red")  # type: ignore[call-arg]
    assert_type(call, DelayedCall)
    assert_type(call.getTime(), float)
    assert_type(call.active(), bool)
    assert_type(call.func, Callable[..., object] | None)
    call.delay(1.0)
    call.reset(2.0)
    call.cancel()
    r.callFromThread(tick, 1)
    r.callFromThread(tick)  # type: ignore[call-arg]
    r.callWhenRunning(tick, 1, label="start")
    trigger = r.addSystemEventTrigger("before", "shutdown", tick, 2)
    r.removeSystemEventTrigger(trigger)
    r.addSystemEventTrigger("after", "startup", tick, "2")  # type: ignore[arg-type]


def running(r: Reactor) -> None:
    assert_type(r.running, bool)
    r.iterate()
    r.iterate(0.1)
    r.run()
    r.run(installSignalHandlers=False)
    r.stop()
    assert_type(repr(r), str)


def reactor_interfaces() -> None:
    as_process: IReactorProcess = reactor
    as_time: IReactorTime = reactor
    dc: IDelayedCall = reactor.callLater(1, tick, 1)
    assert_type(as_process.spawnProcess(Quiet(), "true", ["true"]), IProcessTransport)
    assert_type(as_time.callLater(0, tick, 1), IDelayedCall)
    assert_type(ferroproc.reactor, Reactor)
    assert_type(ferroproc.__version__, str)
    del dc


# -- the transport ---------------------------------------------------------


class Pusher:
    def __init__(self, consumer: IConsumer) -> None:
        self.consumer = consumer

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        self.consumer.write(b"more")

    def stopProducing(self) -> None:
        self.consumer.unregisterProducer()


class Puller:
    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def transport_methods(t: Process) -> None:
    assert_type(t.pid, int | None)
    assert_type(t.status, int | None)
    assert_type(t.proto, IProcessProtocol | None)
    assert_type(t.pipes, dict[int, int])
    t.write(b"data")
    t.writeSequence([b"a", b"b"])
    t.writeSequence(iter((b"a",)))
    t.writeToChild(3, b"data")
    t.closeChildFD(3)
    t.closeStdin()
    t.closeStdout()
    t.closeStderr()
    t.signalProcess("TERM")
    t.signalProcess(signal.SIGKILL)
    t.signalProcess(9)
    t.pauseProducing()
    t.resumeProducing()
    t.stopProducing()
    t.registerProducer(Pusher(t), True)
    t.registerProducer(Puller(), False)
    t.unregisterProducer()
    t.loseConnection()
    t.write("text")  # type: ignore[arg-type]
    t.write(bytearray(b"x"))  # type: ignore[arg-type]
    t.writeToChild("3", b"x")  # type: ignore[arg-type]
    t.signalProcess(None)  # type: ignore[arg-type]
    t.registerProducer(object(), True)  # type: ignore[arg-type]
    t.pid = 3  # type: ignore[misc]


def pty_methods(t: Process) -> None:
    assert_type(t.fileno(), int)
    t.setWindowSize(rows=50, cols=132)
    assert_type(t.getWindowSize(), tuple[int, int])
    assert_type(t.getEcho(), bool)
    t.setEcho(False)
    assert_type(t.isRawMode(), bool)
    t.setRawMode(True)


def no_addresses(t: Process) -> NoReturn:
    t.getHost()


def no_peer(t: Process) -> NoReturn:
    t.getPeer()


def transport_interfaces(t: Process) -> None:
    as_transport: IProcessTransport = t
    as_consumer: IConsumer = t
    as_producer: IPushProducer = t
    as_base: IProducer = Puller()
    as_pull: IPullProducer = Puller()
    as_transport.writeToChild(0, b"x")
    as_transport.closeChildFD(0)
    assert_type(as_transport.pid, int | None)
    del as_consumer, as_producer, as_base, as_pull


# -- the engine (private, but its stub is checked too) -----------------------


def engine() -> None:
    def reason(
        status: int | None, timedOut: tuple[str, float, bool] | None, usage: error.ResourceUsage | None
    ) -> Failure:
        return Failure(error.ProcessDone(status))

    def log(where: str, exc: BaseException) -> None:
        pass

    e = Engine(reason, log)
    args = prepareSpawn(Quiet(), "/bin/true", ["true"], {}, None, None, None, False, None, {}, method="clone")
    assert_type(args, SpawnArgs)
    p = e.spawn(Quiet(), args)
    assert_type(p, Process)
    e.spawn(None, args._replace(fds=[(1, "fd", 1)]))
    e.spawn(None, b"/bin/true")  # type: ignore[arg-type]
    prepareSpawn(None, "sh", ["sh"], {}, None, None, None, False, None, {}, method="fork")  # type: ignore[arg-type]
    assert_type(e.nextTimer(), float | None)
    e.bindThread()
    e.bindThread(False)
    e.runOnce()
    e.runOnce(0.5, timers=False)
    e.run()
    e.stop()
    assert_type(e.running, bool)
    assert_type(e.processCount, int)
    assert_type(e.fileno(), int)
    assert_type(e.wakeupFd(), int)
    assert_type(e.hasPending(), bool)
    assert_type(e.seconds(), float)
    assert_type(e.callLater(1.0, tick, (1,), {"label": "x"}), DelayedCall)
    e.callFromThread(tick, (1,))
    e.callLater(1.0, tick, [1])  # type: ignore[arg-type]


# -- errors ----------------------------------------------------------------


def errors() -> None:
    done = error.ProcessDone(0)
    assert_type(done.exitCode, int | None)
    assert_type(done.signal, int | None)
    assert_type(done.status, int | None)
    term = error.ProcessTerminated(exitCode=1, signal=None, status=256)
    assert_type(term.exitCode, int | None)
    error.ProcessTerminated(signal=9)
    exc: error.ConnectionClosed = done
    exc = term
    lost: error.ConnectionLost = term
    clean: error.ConnectionDone = done
    gone: Exception = error.ProcessExitedAlready()
    called: ValueError = error.AlreadyCalled()
    cancelled: ValueError = error.AlreadyCancelled()
    stopped: RuntimeError = error.ReactorNotRunning()
    error.ProcessDone("0")  # type: ignore[arg-type]
    del exc, lost, clean, gone, called, cancelled, stopped


# -- Failure ---------------------------------------------------------------


def failures() -> None:
    try:
        1 / 0  # noqa: B018 - raising is the point
    except ZeroDivisionError:
        f = Failure()
    f = Failure(ValueError("x"))
    Failure(ValueError("x"), ValueError, None, captureVars=True)
    Failure(("out", "err", 9))  # any object, as getProcessOutputAndValue does
    assert_type(f.value, Any)
    assert_type(f.type, type[Any])
    assert_type(f.check(ValueError, "builtins.KeyError"), type[Any] | str | None)
    assert_type(f.trap(ValueError), type[Any] | str)
    assert_type(f.getErrorMessage(), str)
    assert_type(f.getTraceback(), str)
    assert_type(f.getTraceback(elideFrameworkCode=1, detail="brief"), str)
    assert_type(f.getBriefTraceback(), str)
    f.printTraceback()
    f.printTraceback(sys.stderr)
    f.printBriefTraceback(file=sys.stdout)
    f.cleanFailure()
    f.getTracebackObject()
    f.check(1)  # type: ignore[arg-type]
    raise_it(f)


def raise_it(f: failure.Failure) -> NoReturn:
    f.raiseException()


# -- Deferred --------------------------------------------------------------


def to_text(data: bytes, encoding: str = "utf-8") -> str:
    return data.decode(encoding)


def handled(f: Failure) -> str:
    f.trap(error.ProcessTerminated)
    return f.getErrorMessage()


async def awaiting(d: Deferred[bytes]) -> int:
    data = await d
    assert_type(data, bytes)
    return len(data)


def deferreds() -> None:
    d: Deferred[bytes] = Deferred()
    text = d.addCallback(to_text)
    assert_type(text, Deferred[str])
    d.addCallback(to_text, "latin-1")
    d.addCallback(to_text, encoding="ascii")
    d.addCallback(to_text, 1)  # type: ignore[call-overload]
    either = text.addErrback(handled)
    assert_type(either, Deferred[str])
    both = d.addBoth(lambda r: r)
    both.addCallbacks(print, print, callbackArgs=(1,), errbackKeywords={"sep": ","})
    d.callback(b"data")
    d.errback(ValueError("x"))
    d.errback(Failure(ValueError("x")))
    d.errback()
    d.callback("text")  # type: ignore[arg-type]
    d.pause()
    d.unpause()
    d.cancel()
    assert_type(d.called, bool)
    assert_type(d.paused, int)
    other: Deferred[bytes] = Deferred(canceller=lambda d: None)
    assert_type(d.chainDeferred(other), Deferred[None])

    assert_type(defer.succeed(3), Deferred[int])
    assert_type(defer.fail(ValueError()), Deferred[Any])
    assert_type(defer.maybeDeferred(to_text, b"x"), Deferred[str])
    assert_type(defer.maybeDeferred(awaiting, d), Deferred[int])
    assert_type(defer.maybeDeferred(lambda: d), Deferred[bytes])
    assert_type(defer.ensureDeferred(awaiting(d)), Deferred[int])
    assert_type(Deferred.fromCoroutine(awaiting(d)), Deferred[int])
    assert_type(defer.gatherResults([d, other]), Deferred[list[bytes]])
    dl = defer.DeferredList([d, other], fireOnOneCallback=False, fireOnOneErrback=True, consumeErrors=True)
    dl.addCallback(lambda pairs: pairs)
    errs: list[type[Exception]] = [
        defer.AlreadyCalledError,
        defer.CancelledError,
        defer.NotACoroutineError,
        defer.FirstError,
    ]
    del errs


def asyncio_bridge(d: Deferred[int]) -> Coroutine[Any, Any, int]:
    import asyncio

    loop = asyncio.new_event_loop()
    future = d.asFuture(loop)
    assert_type(future, asyncio.Future[int])
    assert_type(Deferred.fromFuture(future), Deferred[int])

    async def wait() -> int:
        return await d

    return wait()


# -- utils -----------------------------------------------------------------


def helpers(r: Reactor) -> None:
    out = utils.getProcessOutput("echo", ["hi"])
    assert_type(out, Deferred[bytes])
    utils.getProcessOutput(b"/bin/echo", [b"hi"], env=None, path="/", reactor=r, errortoo=True)
    utils.getProcessOutput("yes", maxBytes=1 << 20, timeout=5.0, killGrace=1.0)
    value = utils.getProcessValue("false", (), {"LANG": "C"}, None, r, timeout=1)
    assert_type(value, Deferred[int | None])
    both = utils.getProcessOutputAndValue("cat", stdinBytes=b"in", maxBytes=10)
    assert_type(both, Deferred[tuple[bytes, bytes, int]])
    utils.getProcessOutput("echo", "hi")  # a str is a Sequence of str: accepted, as in Twisted
    utils.getProcessOutput("yes", maxBytes="1M")  # type: ignore[arg-type]
    utils.getProcessValue("sleep", ["9"], timeout="5")  # type: ignore[arg-type]
    utils.getProcessOutputAndValue("cat", stdinBytes="in")  # type: ignore[arg-type]

    def on_limit(f: Failure) -> bytes:
        exc = f.value
        if isinstance(exc, utils.OutputLimitExceeded):
            assert_type(exc.limit, int)
            assert_type(exc.out, bytes)
            assert_type(exc.err, bytes)
            assert_type(exc.reason, Failure)
            return exc.out
        if isinstance(exc, utils.ProcessTimeout):
            assert_type(exc.timeout, float)
            assert_type(exc.killed, bool)
            return exc.out
        if isinstance(exc, utils.UnexpectedErrorOutput):
            assert_type(exc.processEnded, Deferred[Any])
            return b""
        return b""

    out.addErrback(on_limit)


# -- inlineCallbacks, addTimeout and task --------------------------------------


@defer.inlineCallbacks
def survey(r: Reactor, name: str) -> Generator[Deferred[Any], Any, tuple[bytes, int | None]]:
    out: bytes = yield utils.getProcessOutput("echo", [name], reactor=r)
    code: int | None = yield utils.getProcessValue("true", reactor=r)
    if not out:
        defer.returnValue((b"", code))
    return out, code


@defer.inlineCallbacks
def legacy_survey() -> Generator[Deferred[Any], Any, None]:
    yield utils.getProcessOutput("true")


def inline_and_task(r: Reactor) -> None:
    assert_type(survey(r, "x"), Deferred[tuple[bytes, int | None]])
    assert_type(legacy_survey(), Deferred[None])
    survey(r, 1)  # type: ignore[arg-type]
    defer.inlineCallbacks(to_text)  # type: ignore[arg-type]

    d = utils.getProcessOutput("sleep", ["9"])
    assert_type(d.addTimeout(1.5, r), Deferred[bytes])
    d.addTimeout(1, task.Clock(), onTimeoutCancel=lambda result, timeout: b"")
    d.addTimeout("1", r)  # type: ignore[arg-type]
    timeoutErrors: list[type[Exception]] = [defer.TimeoutError]
    del timeoutErrors

    assert_type(task.deferLater(r, 1.0), Deferred[None])
    assert_type(task.deferLater(r, 1.0, to_text, b"x"), Deferred[str])
    assert_type(task.deferLater(r, 1.0, lambda: d), Deferred[bytes])
    task.deferLater(r, 1.0, to_text, 3)  # type: ignore[call-overload]

    loop = task.LoopingCall(tick, 1, label="x")
    task.LoopingCall(tick, "one")  # type: ignore[arg-type]
    loop.clock = task.Clock()
    assert_type(loop.start(0.5, now=False), Deferred[task.LoopingCall])
    assert_type(loop.running, bool)
    assert_type(loop.interval, float | None)
    loop.stop()
    counted = task.LoopingCall.withCount(lambda n: print(n))
    counted.start(1)

    clock = task.Clock()
    as_time: IReactorTime = clock
    call: IDelayedCall = clock.callLater(1, tick, 2)
    clock.callLater(1, tick, "two")  # type: ignore[arg-type]
    clock.advance(1.0)
    clock.pump([0.5, 0.5])
    assert_type(clock.seconds(), float)
    assert_type(len(clock.getDelayedCalls()), int)
    del as_time, call


def react_main(r: Reactor, verbose: str) -> Deferred[None]:
    return utils.getProcessOutput("true", reactor=r).addCallback(lambda out: None)


async def react_coroutine(r: Reactor) -> int | None:
    return await utils.getProcessValue("true", reactor=r)


def reacting() -> NoReturn:
    if sys.argv[1:] == ["coroutine"]:
        task.react(react_coroutine)
    task.react(react_main, ["-v"], _reactor=reactor)


# -- twisted.python's log and procutils -----------------------------------------


def logging_and_which() -> None:
    log.msg("spawned", 3, "children")
    log.msg("failed", isError=True)
    log.err(Failure(ValueError("x")), "while spawning")
    log.err(RuntimeError("plain"))
    handler = log.startLogging(sys.stdout)
    del handler
    paths: list[str] = procutils.which("gzip")
    assert_type(procutils.which("gzip", os.R_OK), list[str])
    if paths:
        reactor.spawnProcess(protocol.ProcessProtocol(), paths[0], [paths[0], "-c"])
    procutils.which(b"gzip")  # type: ignore[arg-type]


# -- asyncio ------------------------------------------------------------------


async def asyncio_usage() -> None:
    import asyncio

    import ferroproc.asyncio as fa

    p = await fa.create_subprocess_exec("echo", "hi", stdout=asyncio.subprocess.PIPE, timeout=5.0)
    assert_type(p, fa.Process)
    asyncios: asyncio.subprocess.Process = p
    out, err = await asyncios.communicate()
    assert_type(out, bytes)
    assert_type(err, bytes)
    assert_type(p.stdout, asyncio.StreamReader | None)
    assert_type(p.timed_out, fa.TimedOut | None)
    if p.timed_out is not None:
        assert_type(p.timed_out.kind, Literal["wall", "idle"])
        assert_type(p.timed_out.timeout, float)
        assert_type(p.timed_out.killed, bool)
    assert_type(p.resource_usage, error.ResourceUsage | None)
    assert_type(p.pgid, int | None)
    p.signal_group(signal.SIGTERM)
    p.signal_group("KILL")
    p.signal_group(None)  # type: ignore[arg-type]
    p.pgid = 3  # type: ignore[misc]
    shell = await fa.create_subprocess_shell(
        "exit 3",
        start_new_session=True,
        kill_group_on_exit=True,
        kill_group_on_lost=True,
        idle_timeout=2.0,
        kill_grace=1,
        rlimits={"nofile": 64, "RLIMIT_CORE": (0, 0)},
        nice=5,
        cpu_affinity=[0],
        parent_death_signal="TERM",
        no_new_privileges=True,
        cgroup="/sys/fs/cgroup/jobs",
        cwd="/tmp",
        env={"LANG": "C"},
        user=65534,
        group="nogroup",
        extra_groups=[65534],
        umask=0o077,
        pass_fds=(3,),
        close_fds=True,
        restore_signals=False,
        pipesize=1 << 20,
    )
    assert_type(await shell.wait(), int)
    await fa.create_subprocess_shell(["ls"])  # type: ignore[arg-type]
    await fa.create_subprocess_exec("ls", kill_group_on_exti=True)  # type: ignore[call-arg]
    await fa.create_subprocess_exec("ls", killGroupOnExit=True)  # type: ignore[call-arg]
    await fa.create_subprocess_exec("ls", timeout="5")  # type: ignore[arg-type]
    await fa.create_subprocess_exec("ls", universal_newlines=True)  # type: ignore[arg-type]
    assert_type(await utils.getProcessOutput("true"), bytes)


def asyncio_loops() -> None:
    import asyncio

    import ferroproc.asyncio as fa

    loop = fa.new_event_loop()
    assert_type(loop, fa.EventLoop)
    loop.close()
    asyncio.set_event_loop_policy(fa.EventLoopPolicy())
    assert_type(fa.run(asyncio.sleep(0, "done")), str)


# -- runnable ------------------------------------------------------------------


def main() -> None:
    reactor.spawnProcess(WCProcessProtocol(b"accessing protocols through Twisted is fun!\n"), "wc", ["wc"])
    reactor.run()
    reactor.spawnProcess(MyPP(10), "wc", ["wc"], {})
    reactor.run()
    print("Main loop terminated.")


if __name__ == "__main__":
    main()


# -- getProcessResult and pipelines ---------------------------------------------


def process_results(r: Reactor) -> None:
    d = utils.getProcessResult(
        "make",
        ["all"],
        env=None,
        path="/",
        reactor=r,
        stdinBytes=b"",
        maxBytes=1 << 20,
        timeout=60,
        killGrace=1.5,
        processGroup=True,
        killGroupOnExit=True,
        umask=0o022,
        rlimits={"nofile": 64, "cpu": (10, 20)},
        nice=5,
    )
    assert_type(d, Deferred[utils.ProcessResult])
    options: ferroproc.ChildOptions = {"newSession": True, "cpuAffinity": [0], "noNewPrivileges": True}
    utils.getProcessResult("ls", **options)
    utils.getProcessResult("ls", windowSize=(24, 80))  # type: ignore[call-arg]
    utils.getProcessResult("ls", umask="022")  # type: ignore[arg-type]
    utils.getProcessResult("ls", stdinBytes="text")  # type: ignore[arg-type]

    def report(result: utils.ProcessResult) -> bool:
        assert_type(result.out, bytes)
        assert_type(result.err, bytes)
        assert_type(result.exitCode, int | None)
        assert_type(result.signal, int | None)
        assert_type(result.resourceUsage, error.ResourceUsage | None)
        assert_type(result.timedOut, bool)
        return result.ok

    assert_type(d.addCallback(report), Deferred[bool])


async def pipelines(r: Reactor, sink: int) -> int:
    from ferroproc.pipeline import Pipeline, PipelineResult, StageResult, getPipelineOutput, spawnPipeline

    d = getPipelineOutput(
        [["ls", "-1"], [b"sort", b"-r"], ["head", os.fspath("-3")]],
        b"",
        env=None,
        path="/",
        reactor=r,
        maxBytes=1 << 20,
        timeout=5.0,
        killGrace=1,
        processGroup=True,
    )
    assert_type(d, Deferred[PipelineResult])
    result = await d
    assert_type(result.out, bytes)
    assert_type(result.stages, tuple[StageResult, ...])
    assert_type(result.exitCode, int)
    assert_type(result.ok, bool)
    assert_type(result.timedOut, bool)
    for stage in result.stages:
        assert_type(stage.command, tuple[str, ...])
        assert_type(stage.err, bytes)
        assert_type(stage.status, int)
        assert_type(stage.exitCode, int | None)
        assert_type(stage.signal, int | None)
        assert_type(stage.resourceUsage, error.ResourceUsage | None)
        assert_type(stage.timedOut | stage.stoppedAfterFailure | stage.failed, bool)
    getPipelineOutput([["cat"], ["wc"]], stdin=0, stdout=sink, stderr=2)
    getPipelineOutput([["make"], ["tee", "build.log"]], stopAllOnFailure=True)
    getPipelineOutput([["ls"]], stopAllOnFailure="yes")  # type: ignore[arg-type]
    getPipelineOutput([["ls", 1]])  # type: ignore[list-item]
    getPipelineOutput([["ls"]], idleTimeout=1.0)  # type: ignore[call-arg]
    getPipelineOutput([["ls"]], stdout="out.txt")  # type: ignore[arg-type]

    pipeline = spawnPipeline([["ls"], ["wc", "-l"]], [protocol.ProcessProtocol(), None], reactor=r, stdinBytes=b"x")
    assert_type(pipeline, Pipeline)
    assert_type(pipeline.transports, tuple[IProcessTransport, ...])
    assert_type(pipeline.ended, Deferred[PipelineResult])
    assert_type(pipeline.stopAllOnFailure, bool)
    pipeline.stop()
    spawnPipeline([["ls"]], [object()])  # type: ignore[list-item]
    return result.exitCode


async def many_jobs(r: Reactor, paths: list[str]) -> int:
    from collections.abc import AsyncIterator, Iterator

    from ferroproc.jobs import HaltPolicy, Job, JobResult, JobSummary, ResultStream, Runner, runJobs

    job = Job(("gzip", "-9", paths[0]), env={"LC_ALL": "C"}, path="/tmp", stdinBytes=b"", timeout=600.0)
    assert_type(job.argv, tuple[str | bytes, ...])
    shell = Job.shell("sort data | uniq -c", timeout=5)
    assert_type(shell, Job)
    Job(("nice", "make"), options={"nice": 10, "rlimits": {"nofile": 1024}})

    def gen() -> Iterator[Job]:
        for p in paths:
            yield Job(("gzip", p))

    def on(result: JobResult) -> None:
        assert_type(result.seq, int)
        assert_type(result.job, Job)
        assert_type(result.exitCode, int | None)
        assert_type(result.signal, int | None)
        assert_type(result.out + result.err, bytes)
        assert_type(result.ok, bool)
        assert_type(result.status, int)
        assert_type(result.timedOut | result.truncated | result.cancelled, bool)
        assert_type(result.startTime + result.runtime, float)
        assert_type(result.attempts + result.sent + result.received, int)
        assert_type(result.resourceUsage, error.ResourceUsage | None)
        assert_type(result.outPath, str | None)

    runner = Runner(
        concurrency=8,
        timeout=60.0,
        idleTimeout=10,
        killGrace=2.0,
        retries=2,
        retryDelay=0.5,
        halt="now,fail=1",
        memfree="2G",
        maxBytes=None,
        capture=True,
        keepOrder=True,
        joblog="jobs.log",
        resume="failed",
        processGroup=True,
        parentDeathSignal="TERM",
        onOutput=lambda seq, fd, data: None,
        reactor=r,
    )
    Runner(halt=HaltPolicy("soon", "fail", None, 10.0), results="out", stdout=1, stderr=2, memfree=1 << 30)
    d = runner.run(gen(), on)
    assert_type(d, Deferred[JobSummary])
    summary = await d
    assert_type(summary.total + summary.succeeded + summary.failed + summary.skipped, int)
    assert_type(summary.halted | summary.cancelled, bool)
    assert_type(summary.elapsed, float)
    assert_type(summary.exitStatus, int)
    assert_type(runner.running + runner.started + runner.done + runner.failed, int)
    runner.cancel()
    stream = runner.stream([["echo", "a"], ("echo", b"b"), job])
    assert_type(stream, ResultStream)
    iterator: AsyncIterator[JobResult] = stream
    async with stream as results:
        async for result in results:
            assert_type(result, JobResult)
    await iterator.__anext__()
    await stream.aclose()
    assert_type(runJobs([["gzip", p] for p in paths], concurrency=2, onResult=on), Deferred[JobSummary])
    assert_type(HaltPolicy.parse("soon,fail=10%"), HaltPolicy | None)
    Runner(concurrency="8")  # type: ignore[arg-type]
    Runner(resume="yes")  # type: ignore[arg-type]
    Runner(8)  # type: ignore[call-arg]
    runner.run([1, 2])  # type: ignore[list-item]
    Job("gzip file")  # type: ignore[arg-type]
    return summary.exitStatus


async def jobs_on_dask(r: Reactor, paths: list[str]) -> int:
    from collections.abc import AsyncIterator

    from distributed import Client

    from ferroproc.jobs import Job, JobResult, JobSummary
    from ferroproc.jobs.dask import DaskRunner, runJobs

    client = Client("tcp://127.0.0.1:8786")

    def on(result: JobResult) -> None:
        assert_type(result.seq, int)

    runner = DaskRunner(
        client,
        concurrency=4,
        batchSize=500,
        timeout=60.0,
        idleTimeout=10,
        killGrace=2.0,
        retries=1,
        retryDelay=0.5,
        halt="soon,fail=10%",
        memfree="1G",
        maxBytes=1 << 16,
        capture=True,
        keepOrder=True,
        joblog="jobs.log",
        resume=True,
        processGroup=True,
        parentDeathSignal="KILL",
        reactor=r,
    )
    d = runner.run((Job(("gzip", p)) for p in paths), on)
    assert_type(d, Deferred[JobSummary])
    summary = await d
    assert_type(runner.running + runner.started + runner.done + runner.failed, int)
    runner.cancel()
    stream = runner.stream([["echo", "a"], Job.shell("echo b")])
    assert_type(stream, AsyncIterator[JobResult])
    async for result in stream:
        assert_type(result, JobResult)
    assert_type(runJobs([["gzip", p] for p in paths], client, onResult=on, concurrency=2), Deferred[JobSummary])
    DaskRunner(client, batchSize="big")  # type: ignore[arg-type]
    DaskRunner(client, results="out")  # type: ignore[call-arg]
    DaskRunner(concurrency=4)  # type: ignore[call-arg]
    return summary.exitStatus
