"""``ferroproc jobs``' progress display: one line on stderr, redrawn in
place on a terminal (jobs done and failed, running, rate, ETA, and with
``--bar`` a bar), or with ``--progress`` on something else, a plain line
at most once a second. Plain ANSI: no library needed.

The line is cleared before the jobs' output is written (so output never
lands in the middle of it) and drawn again at the next tick.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Counts", "Progress", "formatDuration", "progressLine"]

#: Seconds between redraws on a terminal, and between plain lines.
TICK = 0.2
PLAIN_EVERY = 1.0
_CLEAR = b"\r\x1b[K"


@dataclass(frozen=True)
class Counts:
    """What the display shows."""

    done: int
    failed: int
    running: int
    #: Jobs in all (those the job log showed done excluded); None while the
    #: input is still being read.
    total: int | None
    elapsed: float
    #: Jobs the job log showed done, skipped so far (``--resume``).
    skipped: int = 0


def formatDuration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``2:05:00``."""
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progressLine(c: Counts, width: int = 0, bar: bool = False) -> str:
    """The display's text for ``c``, at most ``width`` characters (0: any)."""
    rate = c.done / c.elapsed if c.elapsed > 0 else 0.0
    done = f"{c.done:,}/{c.total:,} done" if c.total is not None else f"{c.done:,} done"
    parts = [done, f"{c.failed:,} failed", f"{c.running:,} running"]
    if c.skipped:
        parts.append(f"{c.skipped:,} skipped")
    if c.elapsed >= 0.5 and c.done:
        parts.append(f"{rate:,.1f}/s" if rate < 100 else f"{rate:,.0f}/s")
    if c.total is not None and c.done and rate > 0:
        left = max(c.total - c.done, 0)
        parts.append(f"ETA {formatDuration(left / rate)}" if left else f"in {formatDuration(c.elapsed)}")
    text = ", ".join(parts)
    if bar and c.total:
        share = min(c.done / c.total, 1.0)
        # A width that does not change as the numbers grow.
        cells = max(10, min(40, (width or 80) // 4))
        filled = int(share * cells)
        text = f"{share * 100:3.0f}% [{'#' * filled}{'.' * (cells - filled)}] " + text
    if width and len(text) > width:
        text = text[: max(width - 1, 0)]
    return text


class Progress:
    """The display on ``fd``. ``counts()`` gives what to show; ``callLater``
    schedules the next tick (the reactor's)."""

    def __init__(
        self,
        fd: int,
        counts: Callable[[], Counts],
        callLater: Callable[[float, Callable[[], None]], Any],
        bar: bool = False,
    ) -> None:
        self.fd = fd
        self.counts = counts
        self.callLater = callLater
        self.bar = bar
        self.tty = os.isatty(fd)
        self.shown = False
        self.lastText = ""
        self.lastPlain = 0.0
        self.stopped = False
        self.call: Any = None

    def start(self) -> None:
        self._tick()

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.fd).columns
        except OSError:
            columns = 0
        # A terminal that does not know its size says 0.
        return max(columns - 1, 20) if columns > 0 else 79

    def _tick(self) -> None:
        if self.stopped:
            return
        self.draw()
        self.call = self.callLater(TICK, self._tick)

    def draw(self) -> None:
        """Show the current counts (on a terminal: in place)."""
        if self.stopped:
            return
        if self.tty:
            text = progressLine(self.counts(), self._width(), self.bar)
            if self.shown and text == self.lastText:
                return
            self._write(_CLEAR + text.encode())
            self.shown = True
            self.lastText = text
            return
        now = time.monotonic()
        if now - self.lastPlain >= PLAIN_EVERY:
            text = progressLine(self.counts(), 0, self.bar)
            if text != self.lastText:
                self._write(text.encode() + b"\n")
                self.lastText = text
            self.lastPlain = now

    def clear(self) -> None:
        """Take the line off the terminal (before other output)."""
        if self.tty and self.shown:
            self.shown = False
            self.lastText = ""
            self._write(_CLEAR)

    def finish(self, keep: bool) -> None:
        """The run is over: the final counts stay (``keep``) as a line of
        their own, or the line goes."""
        if self.stopped:
            return
        if keep:
            text = progressLine(self.counts(), self._width() if self.tty else 0, self.bar)
            self._write((_CLEAR if self.tty else b"") + text.encode() + b"\n")
        else:
            self.clear()
        self.stopped = True
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            # A display we cannot write is no reason to stop the jobs.
            self.stopped = True
