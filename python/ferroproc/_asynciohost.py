"""An engine driven by a running asyncio loop (asyncio's own, uvloop, any).

The engine's poll fd is added to the loop as a reader: whenever the engine
has work (a pipe is ready, a child exited, a transport call queued work, a
thread called ``callFromThread``) the fd is readable and the loop runs one
non-blocking engine turn. The engine's next timer (a ``callLater``, a
spawn's time limit) is mirrored by one ``loop.call_at``. No thread, no
SIGCHLD handler, no child watcher: exits come from pidfds in the same poll.
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from ferroproc._core import Engine

__all__ = ["AsyncioDriver", "runningLoop"]


class AsyncioDriver:
    """Drives ``engine`` from ``loop``, which must be running in the calling
    thread (that thread then runs the engine's protocol code). The loop is
    held weakly: a driver kept beside it (in a cache keyed by loop) does not
    keep it alive."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self._loop = weakref.ref(loop)
        self._timer: asyncio.TimerHandle | None = None
        self._timerAt: float | None = None
        #: Its loop closed with children left: the engine was abandoned
        #: (``retireIfOrphaned``) and no loop drives it again.
        self.retired = False
        loop.add_reader(engine.fileno(), self.turn)
        engine.bindThread()

    def turn(self) -> None:
        """One non-blocking engine turn, then the next timer re-armed."""
        try:
            self.engine.runOnce(0.0, True)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # noqa: BLE001 - as asyncio does for a callback: report, keep running
            loop = self._loop()
            if loop is not None:
                loop.call_exception_handler(
                    {"message": "ferroproc: error while running the process engine", "exception": e}
                )
        finally:
            self.schedule()

    def schedule(self) -> None:
        """Have the loop run a turn when the engine's next timer is due."""
        at = self.engine.nextTimer()
        if at == self._timerAt:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timerAt = None, at
        loop = self._loop()
        if at is not None and loop is not None:
            delay = max(0.0, at - self.engine.seconds())
            self._timer = loop.call_at(loop.time() + delay, self._onTimer)

    def _onTimer(self) -> None:
        self._timer = self._timerAt = None
        self.turn()

    def moveTo(self, loop: asyncio.AbstractEventLoop) -> None:
        """Be driven by ``loop`` (running in this thread) from now on."""
        self.close()
        self._loop = weakref.ref(loop)
        loop.add_reader(self.engine.fileno(), self.turn)
        self.engine.bindThread()
        self.schedule()

    def free(self) -> bool:
        """Whether another loop may take the engine over: its loop has gone
        (or closed), or it has no child and no timer left."""
        if self.loopClosed():
            return True
        return self.engine.processCount == 0 and self.engine.nextTimer() is None

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop that drives the engine (None once it has gone)."""
        return self._loop()

    def loopClosed(self) -> bool:
        """Whether its loop has gone or closed: it will never turn the engine
        again."""
        loop = self._loop()
        return loop is None or loop.is_closed()

    def driving(self) -> bool:
        """Whether its loop is still there and running (a driver of a loop
        that stopped only holds the engine's thread binding)."""
        loop = self._loop()
        return loop is not None and not loop.is_closed() and loop.is_running()

    def attachedTo(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether this driver runs in ``loop`` (and it is still open)."""
        return self._loop() is loop and not loop.is_closed()

    def close(self) -> None:
        """Stop driving: the fd leaves the loop (if it is still open)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timerAt = None
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.engine.fileno())
        self.engine.bindThread(False)


def runningLoop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running in this thread, if any (cheap: asyncio is not
    imported; if nobody has imported it, no loop can run)."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    return aio.events._get_running_loop()  # type: ignore[no-any-return]
