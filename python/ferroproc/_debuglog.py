"""The debug log: every child ferroproc starts, how each ended, and every
signal ferroproc sends with the reason, one line each at ``DEBUG`` on the
``ferroproc`` logger::

    spawned pid 4242 (group 4242): make -j8
    sent SIGTERM to group 4242 (timeout: its time limit of 600s ran out): make -j8
    pid 4242 killed by SIGTERM after 600.004s (timed out: time limit of 600s;
        user 1.200s, system 0.300s, max RSS 9.0 MiB): make -j8

(the last is one line).

Off unless that logger is enabled for ``DEBUG``, and free when off: the
engine reads its own flag, which it sets from ``isEnabledFor(DEBUG)`` at each
loop turn and spawn (see ``src/debuglog.rs``). The records come from the
engine for every host (:func:`emit`); the signals that ferroproc's own
Python code sends (the utilities' limits, pipelines, cancelling, the asyncio
transport) go through :func:`signal`, which gives the engine the reason.

Each record carries ``extra`` fields to filter on: ``ferroproc_event``
(``"spawn"``, ``"exit"`` or ``"signal"``), ``pid`` and ``argv`` (a list of
``str``, ``None`` when the child was started while the log was off); for a
spawn ``executable`` and ``pgid``; for an exit ``exit_code``, ``signal``
(a name such as ``"SIGKILL"``), ``timed_out`` (``"wall"``, ``"idle"`` or
``None``), ``killed`` (SIGKILL after the grace), ``duration`` (seconds) and
``resource_usage``; for a signal ``signal``, ``target`` (``"pid"`` or
``"group"``), ``reason`` (a short code: ``"timeout"``, ``"max-bytes"``,
``"cancel"`` ...) and ``error`` (an errno when sending failed).
"""

from __future__ import annotations

import os
import shlex
import signal as _signal
from typing import TYPE_CHECKING, Any

from ferroproc._core import Process, parseSignal
from ferroproc._logger import logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ferroproc.error import ResourceUsage

__all__ = ["emit", "enabled", "signal"]

#: ``logging.DEBUG`` (without importing logging).
DEBUG = 10

#: The longest command line shown (characters); longer ones are cut.
COMMAND_WIDTH = 300


def enabled() -> bool:
    """Whether the debug log is on: the ``ferroproc`` logger is enabled for ``DEBUG``."""
    return logger().isEnabledFor(DEBUG)


def signal(transport: Any, signalID: str | int, group: bool, reason: str, text: str) -> None:
    """Send ``signalID`` to the child of ``transport`` (``group``: to the
    group it leads, as ``signalGroup``), as ferroproc's own decision, and
    log it with ``reason`` (a short code) and ``text`` (why, in words).
    Raises what ``signalProcess``/``signalGroup`` raise."""
    if isinstance(transport, Process):
        # The engine sends it and logs it, with the argv it knows. (Through
        # the class: a program may hang its own attributes on a transport.)
        Process._signalFor(transport, signalID, group, (reason, text))
        return
    # Another reactor's transport (Twisted's own, not installed).
    if group:
        transport.signalGroup(signalID)
    else:
        transport.signalProcess(signalID)
    if enabled():
        what = "signalGroup" if group else "signalProcess"
        number = parseSignal(signalID, what)
        target = "group" if group else "pid"
        emit([("signal", getattr(transport, "pid", None), target, number, reason, text, None, None)])


def emit(records: Sequence[tuple[Any, ...]]) -> None:
    """Log records made by the engine (see ``src/debuglog.rs`` for their shapes)."""
    log = logger()
    if not log.isEnabledFor(DEBUG):
        return
    for record in records:
        kind = record[0]
        if kind == "spawn":
            message, extra = _spawn(*record[1:])
        elif kind == "exit":
            message, extra = _exit(*record[1:])
        else:
            message, extra = _signalled(*record[1:])
        log.debug("%s", message, extra=extra)


def _spawn(pid: int, argv: list[bytes], executable: bytes, pgid: int | None) -> tuple[str, dict[str, Any]]:
    notes = []
    words = _words(argv)
    exe = _text(executable)
    if words and os.path.basename(exe) != os.path.basename(words[0]):
        notes.append(exe)
    if pgid is not None:
        notes.append(f"group {pgid}")
    shown = f" ({', '.join(notes)})" if notes else ""
    extra = {"ferroproc_event": "spawn", "pid": pid, "argv": words, "executable": exe, "pgid": pgid}
    return f"spawned pid {pid}{shown}{_after(words)}", extra


def _exit(
    pid: int,
    status: int | None,
    timedOut: tuple[str, float, bool] | None,
    usage: ResourceUsage | None,
    ran: float | None,
    argv: list[bytes] | None,
) -> tuple[str, dict[str, Any]]:
    code = sig = None
    if status is None:
        how = "ended, its status unknown (reaped elsewhere)"
    elif os.WIFSIGNALED(status):
        sig = _signalName(os.WTERMSIG(status))
        how = f"killed by {sig}" + (" (core dumped)" if os.WCOREDUMP(status) else "")
    else:
        code = os.WEXITSTATUS(status)
        how = f"exited with code {code}"
    if ran is not None:
        how += f" after {ran:.3f}s"
    details = []
    if timedOut is not None:
        kind, limit, killed = timedOut
        what = "time limit" if kind == "wall" else "idle limit"
        details.append(f"timed out: {what} of {limit:g}s" + (", SIGKILL after the grace" if killed else ""))
    if usage is not None:
        details.append(
            f"user {usage.userTime:.3f}s, system {usage.systemTime:.3f}s, max RSS {usage.maxRSS / 2**20:.1f} MiB"
        )
    shown = f" ({'; '.join(details)})" if details else ""
    words = _words(argv)
    extra = {
        "ferroproc_event": "exit",
        "pid": pid,
        "argv": words,
        "exit_code": code,
        "signal": sig,
        "timed_out": None if timedOut is None else timedOut[0],
        "killed": timedOut is not None and timedOut[2],
        "duration": ran,
        "resource_usage": usage,
    }
    return f"pid {pid} {how}{shown}{_after(words)}", extra


def _signalled(
    pid: int | None,
    target: str,
    number: int,
    reason: str,
    text: str,
    error: int | None,
    argv: list[bytes] | None,
) -> tuple[str, dict[str, Any]]:
    name = _signalName(number)
    whom = f"{target} {pid}"
    if error is None:
        what = f"sent {name} to {whom}"
    else:
        what = f"sending {name} to {whom} failed ({os.strerror(error)})"
    words = _words(argv)
    extra = {
        "ferroproc_event": "signal",
        "pid": pid,
        "argv": words,
        "signal": name,
        "target": target,
        "reason": reason,
        "error": error,
    }
    return f"{what} ({reason}: {text}){_after(words)}", extra


_NAMES = {s.value: s.name for s in _signal.Signals}


def _signalName(number: int) -> str:
    return _NAMES.get(number) or f"signal {number}"


def _text(arg: bytes) -> str:
    return arg.decode("utf-8", "backslashreplace")


def _words(argv: list[bytes] | None) -> list[str] | None:
    return None if argv is None else [_text(a) for a in argv]


def _after(words: list[str] | None) -> str:
    """``: <the command>`` as a shell would take it, cut at :data:`COMMAND_WIDTH`."""
    if words is None:
        return ""
    line = shlex.join(words)
    if len(line) > COMMAND_WIDTH:
        line = f"{line[:COMMAND_WIDTH]}... ({len(words)} arguments)"
    return f": {line}"
