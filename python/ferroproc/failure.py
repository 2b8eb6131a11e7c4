"""``Failure``: an exception packaged so it can travel through a Deferred.

This is the ferroproc counterpart of ``twisted.python.failure``. A
:class:`Failure` holds the exception (``value``), its class (``type``) and,
while it is still needed, the traceback (``tb``). Once a Deferred has finished
running callbacks with a Failure as its result it calls
:meth:`Failure.cleanFailure`, which keeps a light list of frames (function,
file, line) and drops the traceback object, so parked failures do not keep
whole stack frames alive.

Example::

    try:
        1 / 0
    except ZeroDivisionError:
        f = Failure()
    f.check(ArithmeticError)      # -> ArithmeticError
    f.getErrorMessage()           # -> 'division by zero'

Like Twisted, ``Failure`` accepts any object as its value, not only
exceptions: ``getProcessOutputAndValue`` errbacks with the tuple
``(out, err, signalNumber)``.
"""

from __future__ import annotations

import builtins
import sys

# Checked by type checkers only; importing ``typing`` at runtime would cost
# more than this whole module.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import IO, Any, NoReturn

__all__ = ["Failure", "NoCurrentExceptionError"]

if TYPE_CHECKING:
    # A frame as recorded after the traceback object is dropped:
    # (function name, file name, line number).
    _FrameInfo = tuple[str, str, int]


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no arguments outside an ``except`` block.

    With no arguments :class:`Failure` wraps the exception being handled;
    when there is none, there is nothing to wrap.
    """


def _qualifiedName(cls: builtins.type[Any]) -> str:
    """Return ``module.QualName`` for a class (``builtins.ValueError``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _sourceLine(filename: str, lineno: int) -> str:
    """The source line, when ``linecache`` can be had: while the interpreter
    shuts down nothing can be imported any more, and a traceback without
    source lines still beats no report at all."""
    module: Any = sys.modules.get("linecache")
    if module is None:
        try:
            import linecache as module
        except ImportError:
            return ""
    return str(module.getline(filename, lineno)).strip()


def _safeStr(obj: object) -> str:
    """``str(obj)``, or a placeholder when ``__str__`` itself raises."""
    try:
        return str(obj)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        try:
            return f"<unprintable {type(obj).__name__} object>"
        except Exception:  # noqa: BLE001
            return "<unprintable object>"


class Failure(BaseException):
    """An error that happened, packaged to be passed around and inspected later.

    ``Failure(exc_value=None, exc_type=None, exc_tb=None)``:

    * with no arguments inside an ``except`` block it wraps the exception being
      handled, with its traceback; outside one it raises
      :class:`NoCurrentExceptionError`;
    * with an exception it wraps that exception (its ``__traceback__`` is
      used unless ``exc_tb`` is given);
    * with another Failure (ours, or Twisted's) it becomes a copy of it;
    * with any other object (Twisted allows this, and
      ``getProcessOutputAndValue`` relies on it) ``value`` is that object and
      ``type`` its class.

    Attributes:
        value: the exception instance (or arbitrary object) this failure is
            about.
        type: the class of ``value`` (or the ``exc_type`` given).
        tb: the traceback object, or None once :meth:`cleanFailure` has run or
            when the exception was never raised.

    ``captureVars`` is accepted for compatibility with Twisted and ignored:
    ferroproc never captures local variables.

    ``Failure`` derives from ``BaseException`` as in Twisted; that is what
    lets :meth:`raiseException` raise a failure whose value is not an
    exception.
    """

    # ``value`` is usually an exception; Twisted also allows any object (see
    # getProcessOutputAndValue), and code written for Twisted reads attributes
    # such as ``reason.value.exitCode`` directly, hence ``Any``.
    value: Any
    type: builtins.type[Any]
    tb: TracebackType | None
    _frames: list[_FrameInfo] | None

    def __init__(
        self,
        exc_value: object = None,
        exc_type: builtins.type[Any] | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        self._frames = None
        if exc_value is None:
            current_type, current_value, current_tb = sys.exc_info()
            if current_type is None:
                raise NoCurrentExceptionError(
                    "Failure() needs an exception: call it inside an 'except' block or pass the exception"
                )
            if isinstance(current_value, Failure):
                # raiseException() raised a failure whose value is not an
                # exception; it is caught again here, so keep what it knew.
                self._copyFrom(current_value)
                return
            self.value = current_value
            self.type = current_type
            self.tb = current_tb
            return
        if isinstance(exc_value, Failure):
            self._copyFrom(exc_value)
            return
        if type(exc_value).__module__ == "twisted.python.failure":
            # A Twisted Failure (Twisted's reactor hosting the engine hands
            # these to protocols): wrap what it wraps, not the Failure.
            twisted: Any = exc_value
            exc_value = twisted.value
            exc_type = twisted.type
            exc_tb = twisted.tb
        self.value = exc_value
        self.type = type(exc_value) if exc_type is None else exc_type
        if exc_tb is None and isinstance(exc_value, BaseException):
            exc_tb = exc_value.__traceback__
        self.tb = exc_tb

    def _copyFrom(self, other: Failure) -> None:
        self.value = other.value
        self.type = other.type
        self.tb = other.tb
        self._frames = None if other._frames is None else list(other._frames)

    # -- matching -----------------------------------------------------------

    def check(self, *errorTypes: builtins.type[Any] | str) -> builtins.type[Any] | str | None:
        """Return the first of ``errorTypes`` this failure's type matches.

        Each entry is a class (matched with ``issubclass``) or a fully
        qualified class name such as ``"builtins.ValueError"`` (matched
        against the names of the type and its bases). Returns None when
        nothing matches.
        """
        failureType = self.type
        for errorType in errorTypes:
            if isinstance(errorType, str):
                if any(_qualifiedName(c) == errorType for c in failureType.__mro__):
                    return errorType
            elif isinstance(errorType, type) and issubclass(failureType, errorType):
                return errorType
        return None

    def trap(self, *errorTypes: builtins.type[Any] | str) -> builtins.type[Any] | str:
        """Return the matching type, or re-raise this failure's exception.

        Meant for errbacks: ``failure.trap(OSError)`` handles an ``OSError``
        and lets anything else continue down the errback chain, because the
        original exception is raised again (as Twisted does on Python 3).
        """
        errorType = self.check(*errorTypes)
        if errorType is None:
            self.raiseException()
        return errorType

    # -- raising ------------------------------------------------------------

    def _exceptionToRaise(self) -> BaseException:
        """The exception ``raiseException`` raises, with its traceback."""
        value = self.value
        if isinstance(value, BaseException):
            if self.tb is not None:
                return value.with_traceback(self.tb)
            return value
        # Not an exception (e.g. a tuple): the failure itself is raised, and a
        # Failure() built where it is caught is a copy of this one.
        return self

    def raiseException(self) -> NoReturn:
        """Raise the original exception, with its traceback when still known.

        When the value is not an exception, the Failure itself is raised.
        """
        raise self._exceptionToRaise()

    # -- messages and tracebacks -------------------------------------------

    def getErrorMessage(self) -> str:
        """Return ``str(value)`` (the message of the wrapped exception)."""
        if isinstance(self.value, Failure):
            return self.value.getErrorMessage()
        return _safeStr(self.value)

    @property
    def frames(self) -> list[tuple[str, str, int, tuple[()], tuple[()]]]:
        """The traceback's frames, oldest first, in Twisted's five-item form.

        Each frame is ``(function, filename, lineno, (), ())``; the two empty
        tuples stand for the local and global variables, which are never
        captured.
        """
        return [(name, filename, lineno, (), ()) for name, filename, lineno in self._frameInfo()]

    def _frameInfo(self) -> list[_FrameInfo]:
        if self._frames is not None:
            return self._frames
        frames: list[_FrameInfo] = []
        tb = self.tb
        while tb is not None:
            code = tb.tb_frame.f_code
            frames.append((code.co_name, code.co_filename, tb.tb_lineno))
            tb = tb.tb_next
        return frames

    def cleanFailure(self) -> None:
        """Drop the traceback object, keeping only (function, file, line) per frame.

        Deferreds call this on a failure they hold, so that a failure waiting
        for an errback does not keep every frame of the stack alive. The
        wrapped exception's ``__traceback__`` is cleared too, as in Twisted.
        """
        if self.tb is None:
            return
        self._frames = self._frameInfo()
        self.tb = None
        if isinstance(self.value, BaseException):
            self.value.__traceback__ = None

    def getTracebackObject(self) -> TracebackType | None:
        """Return the traceback object, or None once it has been dropped."""
        return self.tb

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """Return the traceback as text, ending with the exception line.

        The text looks like Python's: ``Traceback (most recent call last):``,
        one ``File ..., line ..., in ...`` entry per frame (with its source
        line when available), then ``builtins.ValueError: boom``.
        ``detail="brief"`` gives the one-line-per-frame form of
        :meth:`getBriefTraceback`. ``elideFrameworkCode`` is accepted for
        compatibility and has no effect.
        """
        lines: list[str] = []
        self._formatInto(lines.append, detail)
        return "".join(lines)

    def getBriefTraceback(self) -> str:
        """Return a compact traceback: one ``file:line:function`` per frame."""
        return self.getTraceback(detail="brief")

    def printTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0, detail: str = "default") -> None:
        """Write :meth:`getTraceback` to ``file`` (``sys.stderr`` by default)."""
        if file is None:
            file = sys.stderr
        file.write(self.getTraceback(elideFrameworkCode, detail))

    def printBriefTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0) -> None:
        """Write :meth:`getBriefTraceback` to ``file`` (``sys.stderr`` by default)."""
        self.printTraceback(file, elideFrameworkCode, detail="brief")

    def _formatInto(self, write: Callable[[str], object], detail: str) -> None:
        if detail not in ("default", "brief", "verbose"):
            raise ValueError(f"Failure.getTraceback: detail must be 'default', 'brief' or 'verbose', not {detail!r}")
        frames = self._frameInfo()
        if detail == "brief":
            heading = "Traceback" if frames else "Traceback (failure with no frames)"
            write(f"{heading}: {_safeStr(self.type)}: {self.getErrorMessage()}\n")
            for name, filename, lineno in frames:
                write(f"{filename}:{lineno}:{name}\n")
        else:
            write("Traceback (most recent call last):\n")
            for name, filename, lineno in frames:
                write(f'  File "{filename}", line {lineno}, in {name}\n')
                source = _sourceLine(filename, lineno)
                if source:
                    write(f"    {source}\n")
            if not frames:
                write("Failure: ")
            write(f"{_qualifiedName(self.type)}: {self.getErrorMessage()}\n")
        if isinstance(self.value, Failure):
            write(" (chained Failure)\n")
            self.value._formatInto(write, detail)

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{_qualifiedName(cls)} {_qualifiedName(self.type)}: {self.getErrorMessage()}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getBriefTraceback()}]"
