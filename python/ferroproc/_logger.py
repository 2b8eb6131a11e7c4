"""The one place ferroproc reports errors that no caller can receive: the
``ferroproc`` logger of the standard ``logging`` module.

Errors raised by protocol callbacks, triggers and delayed calls, failures no
errback handled, and the engine's own troubles (a child that could not be
reaped) all go through :func:`logError` or :func:`logText`. Under
:mod:`ferroproc.twisted` the engine reports to Twisted's log instead, as
Twisted itself would.

``logging`` is imported on first use (it costs more than the rest of
``import ferroproc``). A report that cannot reach it, as when a Deferred is
collected while the interpreter shuts down, is written to stderr instead:
it is never lost.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["logError", "logText", "logger"]

_logger: logging.Logger | None = None


def logger() -> logging.Logger:
    """The ``ferroproc`` logger."""
    global _logger
    if _logger is None:
        import logging

        _logger = logging.getLogger("ferroproc")
    return _logger


def logError(where: str, exc: BaseException) -> None:
    """Log ``exc`` (raised by ``where``) with its traceback."""
    logger().error("Unhandled error in %s", where, exc_info=(type(exc), exc, exc.__traceback__))


def logText(text: str) -> None:
    """Log ``text`` at ERROR level; if logging cannot be reached (the
    interpreter is shutting down), write it to stderr."""
    try:
        logger().error("%s", text)
        return
    except Exception:  # noqa: BLE001 - logging unreachable at exit: fall back to stderr below
        pass
    stream = sys.__stderr__
    if stream is not None:
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass
