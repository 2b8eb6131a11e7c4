"""Exceptions with Twisted's names, hierarchy and messages.

``ProcessDone`` and ``ProcessTerminated`` are what ``processExited`` and
``processEnded`` receive (wrapped in a :class:`ferroproc.failure.Failure`);
``ProcessExitedAlready`` is raised by ``signalProcess`` once the child is gone.
"""

from __future__ import annotations

import os

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ProcessDone",
    "ProcessExitedAlready",
    "ProcessTerminated",
    "ReactorNotRunning",
]


class ConnectionClosed(Exception):
    """The connection was closed, cleanly or not."""


class ConnectionLost(ConnectionClosed):
    """The connection was closed in a non-clean fashion."""

    def __str__(self) -> str:
        s = "Connection to the other side was lost in a non-clean fashion"
        if self.args:
            s = "{}: {}".format(s, " ".join(map(str, self.args)))
        return s + "."


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly."""

    def __str__(self) -> str:
        s = "Connection was closed cleanly"
        if self.args:
            s = "{}: {}".format(s, " ".join(map(str, self.args)))
        return s + "."


class ProcessDone(ConnectionDone):
    """A process ended with exit code 0 and no signal.

    Attributes: ``exitCode`` (always 0), ``signal`` (always None) and
    ``status`` (the raw wait status).
    """

    def __init__(self, status: int | None) -> None:
        Exception.__init__(self, "process finished with exit code 0")
        self.exitCode: int | None = 0
        self.signal: int | None = None
        self.status: int | None = status

    def __str__(self) -> str:
        return "A process has ended without apparent errors: process finished with exit code 0."


class ProcessTerminated(ConnectionLost):
    """A process ended with a non-zero exit code or was killed by a signal.

    Attributes: ``exitCode`` (None when killed by a signal), ``signal``
    (None when it exited) and ``status`` (the raw wait status, or None when
    someone else reaped the child and its status is unknown).
    """

    def __init__(
        self,
        exitCode: int | None = None,
        signal: int | None = None,
        status: int | None = None,
    ) -> None:
        self.exitCode = exitCode
        self.signal = signal
        self.status = status
        s = "process ended"
        if exitCode is not None:
            s = s + f" with exit code {exitCode}"
        if signal is not None:
            s = s + f" by signal {signal}"
        Exception.__init__(self, s)

    def __str__(self) -> str:
        return f"A process has ended with a probable error condition: {self.args[0]}."


class ProcessExitedAlready(Exception):
    """The process has already exited and the operation cannot be done."""


class AlreadyCalled(ValueError):
    """Tried to cancel or change a delayed call that has already run."""

    def __str__(self) -> str:
        return "Tried to cancel an already-called event."


class AlreadyCancelled(ValueError):
    """Tried to cancel or change a delayed call that was already cancelled."""

    def __str__(self) -> str:
        return "Tried to cancel an already-cancelled event."


class ReactorNotRunning(RuntimeError):
    """``stop()`` was called on a reactor that is not running."""


def _exitReason(
    status: int | None,
    done: type[BaseException],
    terminated: type[BaseException],
) -> BaseException:
    """The exception a raw wait status means: ``done(status)`` for exit 0,
    else ``terminated(exitCode, signal, status)``; an unknown status (the
    child was reaped by someone else) is ``terminated(None, None, None)``.
    Hosts pass their own classes (Twisted's, under ``ferroproc.twisted``)."""
    if status is None:
        return terminated(None, None, None)
    if os.WIFEXITED(status):
        code: int | None = os.WEXITSTATUS(status)
        sig: int | None = None
    else:
        code, sig = None, os.WTERMSIG(status)
    if code == 0:
        return done(status)
    return terminated(code, sig, status)
