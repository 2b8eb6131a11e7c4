"""Exceptions with Twisted's names, hierarchy and messages.

``ProcessDone`` and ``ProcessTerminated`` are what ``processExited`` and
``processEnded`` receive (wrapped in a :class:`ferroproc.failure.Failure`);
``ProcessExitedAlready`` is raised by ``signalProcess`` once the child is gone.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ProcessDone",
    "ProcessExitedAlready",
    "ProcessTerminated",
    "ProcessTimedOut",
    "ReactorNotRunning",
    "ResourceUsage",
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

    #: What the child used (a ferroproc extension; None when unknown).
    resourceUsage: ResourceUsage | None = None

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

    #: What the child used (a ferroproc extension; None when unknown).
    resourceUsage: ResourceUsage | None = None

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


class ProcessTimedOut(ProcessTerminated):
    """A ferroproc extension: the process was stopped because a time limit of
    ``spawnProcess`` (``timeout`` or ``idleTimeout``) ran out.

    It was sent SIGTERM (its process group, when it has one), then SIGKILL if
    it outlived ``killGrace``. Besides ``exitCode``, ``signal`` and
    ``status`` (of the actual end): ``kind`` (``"wall"`` for ``timeout``,
    ``"idle"`` for ``idleTimeout``), ``timeout`` (the limit, in seconds) and
    ``killed`` (SIGKILL had to follow).
    """

    def __init__(
        self,
        exitCode: int | None = None,
        signal: int | None = None,
        status: int | None = None,
        *,
        kind: str = "wall",
        timeout: float = 0.0,
        killed: bool = False,
    ) -> None:
        ProcessTerminated.__init__(self, exitCode, signal, status)
        self.kind = kind
        self.timeout = timeout
        self.killed = killed
        what = "no output for" if kind == "idle" else "ran longer than"
        how = "SIGKILL after SIGTERM" if killed else "SIGTERM"
        self.args = (f"{self.args[0]}: {what} {timeout} seconds, stopped with {how}",)


class ResourceUsage(NamedTuple):
    """What a child used, as the kernel reports it when it is reaped (a
    ferroproc extension: ``transport.resourceUsage``, and the
    ``resourceUsage`` attribute of the reason a protocol gets)."""

    #: CPU time in user mode, in seconds.
    userTime: float
    #: CPU time in the kernel, in seconds.
    systemTime: float
    #: Peak resident set size, in bytes: the kernel's ``ru_maxrss``. Linux
    #: counts in it the address space the child left at ``exec``, which is
    #: its parent's (however it was started: ``fork`` too), so a figure up to
    #: the parent's resident size says nothing of the child itself.
    maxRSS: int


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
    timedOut: tuple[str, float, bool] | None = None,
    usage: ResourceUsage | None = None,
    timedOutClass: type[ProcessTimedOut] | None = None,
) -> BaseException:
    """The exception a raw wait status means: ``done(status)`` for exit 0,
    else ``terminated(exitCode, signal, status)``; an unknown status (the
    child was reaped by someone else) is ``terminated(None, None, None)``.
    A child a time limit ended (``timedOut`` is ``(kind, limit, killed)``)
    gets ``timedOutClass`` (default :class:`ProcessTimedOut`). The result
    carries ``resourceUsage``. Hosts pass their own classes (Twisted's,
    under ``ferroproc.twisted``)."""
    if status is None:
        code: int | None = None
        sig: int | None = None
    elif os.WIFEXITED(status):
        code, sig = os.WEXITSTATUS(status), None
    else:
        code, sig = None, os.WTERMSIG(status)
    reason: BaseException
    if timedOut is not None:
        kind, limit, killed = timedOut
        cls = timedOutClass or ProcessTimedOut
        reason = cls(code, sig, status, kind=kind, timeout=limit, killed=killed)
    elif status is not None and code == 0:
        reason = done(status)
    else:
        reason = terminated(code, sig, status)
    # Twisted's classes have no such attribute: set it by name.
    setattr(reason, "resourceUsage", usage)  # noqa: B010
    return reason
