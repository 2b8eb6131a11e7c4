"""``twisted.python.log``'s everyday calls, on the standard ``logging`` module.

Twisted programs that drive processes often log with ``log.msg``/``log.err``
and start with ``log.startLogging(sys.stdout)``; after the import change they
keep working. Everything goes to the logger ``ferroproc`` (where the engine
also reports errors raised by protocol callbacks), so applications can
configure it like any other logger.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

__all__ = ["err", "msg", "startLogging"]

_logger = logging.getLogger("ferroproc")


def msg(*message: Any, **kw: Any) -> None:
    """Log the arguments, joined by spaces, at INFO level (Twisted's
    ``log.msg``). ``isError=True`` logs at ERROR level; other keywords are
    accepted and ignored, as Twisted's observers mostly do."""
    text = " ".join(str(m) for m in message)
    _logger.log(logging.ERROR if kw.get("isError") else logging.INFO, "%s", text)


def err(_stuff: Any = None, _why: str | None = None, **kw: Any) -> None:
    """Log an error with its traceback (Twisted's ``log.err``).

    ``_stuff`` may be a ``Failure``, an exception, or None inside an
    ``except`` block (the current exception); ``_why`` says what failed.
    """
    from ferroproc.failure import Failure

    why = _why or "Unhandled Error"
    if _stuff is None:
        exc = sys.exc_info()[1]
        if exc is None:
            _logger.error("%s", why)
            return
        _stuff = exc
    if isinstance(_stuff, Failure):
        _logger.error("%s\n%s", why, _stuff.getTraceback().rstrip())
    elif isinstance(_stuff, BaseException):
        _logger.error("%s", why, exc_info=(type(_stuff), _stuff, _stuff.__traceback__))
    else:
        _logger.error("%s: %r", why, _stuff)


def startLogging(file: IO[str] | None = None, setStdout: bool = True) -> logging.Handler:
    """Send the ``ferroproc`` logger's records (INFO and up) to ``file``
    (default: ``sys.stdout``) with a timestamp, as Twisted's ``startLogging``
    does; returns the handler. ``setStdout`` is accepted for compatibility;
    ``print`` output is not redirected."""
    handler = logging.StreamHandler(file if file is not None else sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] %(message)s", "%Y-%m-%d %H:%M:%S%z"))
    _logger.addHandler(handler)
    if _logger.level == logging.NOTSET or _logger.level > logging.INFO:
        _logger.setLevel(logging.INFO)
    return handler
