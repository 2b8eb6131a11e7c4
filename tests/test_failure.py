"""ferroproc.failure.Failure: construction, matching, raising, tracebacks."""

from __future__ import annotations

import io
import sys

import pytest

from ferroproc.failure import Failure, NoCurrentExceptionError


class MyError(ValueError):
    pass


def _raiser(message: str = "boom") -> None:
    raise ValueError(message)


def _caught(exc_type: type[BaseException] = ValueError) -> Failure:
    try:
        _raiser()
    except exc_type:
        return Failure()
    raise AssertionError("not reached")


def test_no_arguments_captures_current_exception() -> None:
    f = _caught()
    assert isinstance(f.value, ValueError)
    assert f.type is ValueError
    assert f.tb is not None
    assert f.getErrorMessage() == "boom"


def test_no_arguments_outside_except_raises() -> None:
    with pytest.raises(NoCurrentExceptionError):
        Failure()


def test_from_exception_instance_without_traceback() -> None:
    exc = MyError("bad")
    f = Failure(exc)
    assert f.value is exc
    assert f.type is MyError
    assert f.tb is None


def test_from_exception_uses_its_traceback() -> None:
    try:
        _raiser()
    except ValueError as e:
        exc = e
    f = Failure(exc)
    assert f.tb is exc.__traceback__


def test_explicit_type_and_traceback() -> None:
    f = Failure(MyError("x"), ValueError)
    assert f.type is ValueError


def test_from_failure_copies() -> None:
    original = _caught()
    copy = Failure(original)
    assert copy.value is original.value
    assert copy.type is original.type


def test_arbitrary_value_like_twisted() -> None:
    f = Failure((b"out", b"err", 9))
    assert f.value == (b"out", b"err", 9)
    assert f.type is tuple
    assert f.check(tuple) is tuple


def test_check_matches_subclasses_and_returns_the_match() -> None:
    f = Failure(MyError("x"))
    assert f.check(KeyError) is None
    assert f.check(KeyError, ValueError) is ValueError
    assert f.check(Exception, MyError) is Exception
    assert f.check(MyError) is MyError


def test_check_accepts_qualified_names() -> None:
    f = Failure(ValueError("x"))
    assert f.check("builtins.ValueError") == "builtins.ValueError"
    assert f.check("builtins.Exception") == "builtins.Exception"
    assert f.check("builtins.KeyError") is None


def test_trap_returns_match() -> None:
    f = Failure(MyError("x"))
    assert f.trap(KeyError, ValueError) is ValueError


def test_trap_reraises_original_exception() -> None:
    f = _caught()
    with pytest.raises(ValueError, match="boom") as info:
        f.trap(KeyError)
    assert info.value is f.value


def test_trap_of_non_exception_value_raises_the_failure() -> None:
    f = Failure((1, 2))
    with pytest.raises(Failure) as info:
        f.trap(KeyError)
    assert info.value is f
    # A Failure built where it is caught is a copy of it.
    try:
        f.raiseException()
    except Failure:
        again = Failure()
    assert again.value == (1, 2)


def test_raise_exception_keeps_traceback() -> None:
    f = _caught()
    with pytest.raises(ValueError) as info:
        f.raiseException()
    names = []
    tb = info.value.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "_raiser" in names


def test_get_traceback_text() -> None:
    f = _caught()
    text = f.getTraceback()
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in _raiser\n" in text
    assert "raise ValueError(message)" in text
    assert text.endswith("builtins.ValueError: boom\n")


def test_get_traceback_without_frames() -> None:
    text = Failure(KeyError("k")).getTraceback()
    assert text == "Traceback (most recent call last):\nFailure: builtins.KeyError: 'k'\n"


def test_brief_traceback() -> None:
    f = _caught()
    text = f.getBriefTraceback()
    assert text.startswith("Traceback: <class 'ValueError'>: boom\n")
    assert ":_raiser\n" in text


def test_bad_detail() -> None:
    with pytest.raises(ValueError, match="detail"):
        Failure(KeyError()).getTraceback(detail="chatty")


def test_print_traceback_to_file_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    f = _caught()
    buffer = io.StringIO()
    f.printTraceback(buffer)
    assert buffer.getvalue() == f.getTraceback()
    f.printTraceback()
    assert capsys.readouterr().err == f.getTraceback()


def test_clean_failure_drops_traceback_but_keeps_frames() -> None:
    f = _caught()
    before = f.getTraceback()
    frames = f.frames
    f.cleanFailure()
    assert f.tb is None
    assert f.value.__traceback__ is None
    assert f.getTraceback() == before
    assert f.frames == frames
    assert frames[-1][0] == "_raiser"
    assert frames[-1][3:] == ((), ())


def test_repr_and_str() -> None:
    f = Failure(ValueError("boom"))
    assert repr(f) == "<ferroproc.failure.Failure builtins.ValueError: boom>"
    assert str(f).startswith("[Failure instance: Traceback (failure with no frames):")


def test_unprintable_value() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    f = Failure(Unprintable())
    assert f.getErrorMessage() == "<unprintable Unprintable object>"
    assert "Unprintable" in f.getTraceback()


def test_keyboard_interrupt_is_captured() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        f = Failure()
    assert f.check(KeyboardInterrupt) is KeyboardInterrupt
    assert f.check(Exception) is None


def test_module_import_is_light() -> None:
    code = (
        "import sys; import ferroproc.failure; "
        "bad = {'traceback', 'inspect', 'asyncio'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(p for p in sys.path if p)},
    ).stdout
    assert out.strip() == "[]"


def test_twisted_failure_is_unwrapped() -> None:
    twisted_failure = pytest.importorskip("twisted.python.failure")
    exc = KeyError("k")
    f = Failure(twisted_failure.Failure(exc))
    assert f.value is exc
    assert f.type is KeyError
    assert f.check(KeyError) is KeyError
