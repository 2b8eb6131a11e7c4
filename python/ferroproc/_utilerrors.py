"""The exceptions the utilities (:mod:`ferroproc.utils`) and pipelines
(:mod:`ferroproc.pipeline`) fail with; public in :mod:`ferroproc.utils`.

A leaf module: the protocols that raise them (``_capture.py``) and the
functions that document them (``utils.py``) both import it, and it imports
neither.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferroproc.defer import Deferred
    from ferroproc.failure import Failure

    _Executable = str | bytes | os.PathLike[str] | os.PathLike[bytes]
    _Command = tuple[_Executable, ...]

__all__ = ["OutputLimitExceeded", "ProcessTimeout", "UnexpectedErrorOutput"]


def _describe(command: _Command) -> str:
    """The command as a shell-quoted line, for error messages."""
    return shlex.join(os.fsdecode(part) for part in command)


class UnexpectedErrorOutput(IOError):
    """``getProcessOutput`` without ``errortoo`` saw data on stderr.

    Twisted's ``twisted.internet.utils._UnexpectedErrorOutput`` (that private
    name is kept as an alias in :mod:`ferroproc.utils` for ported code).

    The message is ``got stderr: <the first chunk, repr>``. ``processEnded``
    is a Deferred that fails with the process's end reason
    (``ProcessDone`` or ``ProcessTerminated``) once it has ended: even a
    clean exit is reported as a failure there, as in Twisted.
    """

    def __init__(self, text: bytes, processEnded: Deferred[Any]) -> None:
        IOError.__init__(self, f"got stderr: {text!r}")
        self.processEnded = processEnded


class OutputLimitExceeded(Exception):
    """The child wrote more than ``maxBytes`` bytes (a ferroproc extension).

    The child was killed with SIGKILL. Attributes:

    * ``command``: the argv tuple (executable first);
    * ``limit``: the ``maxBytes`` value;
    * ``out``, ``err``: what was captured from stdout and stderr, at most
      ``limit`` bytes together (``getProcessOutput`` with ``errortoo`` puts
      both streams in ``out``; ``getProcessValue`` captures nothing);
    * ``reason``: the Failure the process ended with.
    """

    def __init__(self, command: _Command, limit: int, out: bytes, err: bytes, reason: Failure) -> None:
        Exception.__init__(
            self,
            f"{_describe(command)}: wrote more than {limit} bytes of output (maxBytes={limit}); killed with SIGKILL",
        )
        self.command = command
        self.limit = limit
        self.out = out
        self.err = err
        self.reason = reason


class ProcessTimeout(TimeoutError):
    """The child ran longer than ``timeout`` seconds (a ferroproc extension).

    It was sent SIGTERM, then SIGKILL if it outlived the grace period.
    Attributes:

    * ``command``: the argv tuple (executable first);
    * ``timeout``: the ``timeout`` value in seconds;
    * ``killed``: True if SIGKILL had to be sent;
    * ``out``, ``err``: the output captured until it ended (as for
      :class:`OutputLimitExceeded`);
    * ``reason``: the Failure the process ended with.
    """

    def __init__(
        self,
        command: _Command,
        timeout: float,
        killed: bool,
        out: bytes,
        err: bytes,
        reason: Failure,
    ) -> None:
        how = "SIGKILL after SIGTERM" if killed else "SIGTERM"
        TimeoutError.__init__(
            self,
            f"{_describe(command)}: did not finish within {timeout} seconds (timeout={timeout}); stopped with {how}",
        )
        self.command = command
        self.timeout = timeout
        self.killed = killed
        self.out = out
        self.err = err
        self.reason = reason
