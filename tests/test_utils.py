"""ferroproc.utils on real child processes (SPEC §1.5 and the extensions)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import alive, wait_dead

from ferroproc import reactor, utils
from ferroproc.defer import Deferred, ensureDeferred
from ferroproc.error import ProcessDone, ProcessTerminated, ResourceUsage
from ferroproc.failure import Failure

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def outcome(d: Deferred[Any], timeout: float = 10.0) -> Any:
    """Run the reactor until ``d`` fires; return its result or its Failure.

    A guard timer stops the reactor after ``timeout`` seconds, so a hang
    fails the test instead of blocking it.
    """
    box: list[Any] = []

    def done(result: object) -> None:
        box.append(result)
        if reactor.running:
            reactor.stop()

    d.addBoth(done)
    if not box:
        guard = reactor.callLater(timeout, reactor.stop)
        reactor.run()
        if guard.active():
            guard.cancel()
    if not box:
        raise TimeoutError(f"the Deferred did not fire within {timeout} seconds")
    return box[0]


def run_until(d: Deferred[T], timeout: float = 10.0) -> T:
    """Run the reactor until ``d`` fires; return its result or raise its error."""
    result = outcome(d, timeout)
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]


def failure_of(d: Deferred[Any], timeout: float = 10.0) -> Failure:
    """Run the reactor until ``d`` fires and return the Failure it must have."""
    result = outcome(d, timeout)
    assert isinstance(result, Failure), f"expected a failure, got {result!r}"
    return result


# The conftest's autouse ``no_leaks`` fixture fails a test that leaves a child
# (running or zombie) or an fd behind: "the child is gone" is checked there.


# -- getProcessOutput --------------------------------------------------------


def test_output() -> None:
    d = utils.getProcessOutput("/bin/sh", ["-c", "echo hello world"])
    assert isinstance(d, Deferred)
    assert run_until(d) == b"hello world\n"


def test_output_empty() -> None:
    assert run_until(utils.getProcessOutput("/bin/true")) == b""


def test_output_ignores_exit_code() -> None:
    assert run_until(utils.getProcessOutput("/bin/sh", ["-c", "echo out; exit 3"])) == b"out\n"


def test_output_with_error_ignored() -> None:
    # Nothing is written after stderr: the helper closes the pipes at once,
    # so a later write could kill the child with SIGPIPE.
    d = utils.getProcessOutput("/bin/sh", ["-c", "echo some error >&2"])
    failure = failure_of(d)
    assert failure.check(IOError)
    error = failure.value
    # The public name, and Twisted's private one for ported code.
    assert type(error) is utils.UnexpectedErrorOutput is utils._UnexpectedErrorOutput
    assert str(error) == "got stderr: b'some error\\n'"
    # processEnded fails with the end reason, even for a clean exit.
    ended = failure_of(error.processEnded)
    assert ended.check(ProcessDone)


def test_output_with_error_collected() -> None:
    d = utils.getProcessOutput("/bin/sh", ["-c", "printf foo; printf foo >&2"], errortoo=True)
    assert run_until(d) == b"foofoo"


def test_output_path(tmp_path: Path) -> None:
    assert run_until(utils.getProcessOutput("/bin/pwd", path=str(tmp_path))) == (str(tmp_path).encode() + b"\n")


def test_output_default_path_is_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_until(utils.getProcessOutput("/bin/pwd")) == str(tmp_path).encode() + b"\n"


def test_default_environment_is_empty() -> None:
    assert run_until(utils.getProcessOutput("/usr/bin/env")) == b""


def test_environment_given() -> None:
    d = utils.getProcessOutput("/usr/bin/env", env={"FERRO": "proc"})
    assert run_until(d) == b"FERRO=proc\n"


def test_explicit_reactor() -> None:
    d = utils.getProcessOutput("/bin/echo", ["x"], reactor=reactor)
    assert run_until(d) == b"x\n"


def test_large_output_intact() -> None:
    d = utils.getProcessOutput("/usr/bin/head", ["-c", "256M", "/dev/zero"])
    out = run_until(d, timeout=60)
    assert len(out) == 256 * 1024 * 1024
    assert out.count(0) == len(out)


def test_spawn_errors_are_synchronous() -> None:
    with pytest.raises(FileNotFoundError):
        utils.getProcessOutput("/nonexistent/program")
    with pytest.raises(FileNotFoundError):
        utils.getProcessValue("/nonexistent/program")
    with pytest.raises(FileNotFoundError):
        utils.getProcessOutputAndValue("/nonexistent/program")


# -- getProcessValue ---------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 42])
def test_value(code: int) -> None:
    assert run_until(utils.getProcessValue("/bin/sh", ["-c", f"exit {code}"])) == code


def test_value_path(tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("")
    d = utils.getProcessValue("/bin/sh", ["-c", "test -e marker"], path=str(tmp_path))
    assert run_until(d) == 0


def test_value_after_signal_is_none() -> None:
    assert run_until(utils.getProcessValue("/bin/sh", ["-c", "kill -9 $$"])) is None


# -- getProcessOutputAndValue -------------------------------------------------


def test_output_and_value() -> None:
    d = utils.getProcessOutputAndValue("/bin/sh", ["-c", "echo hello world!; echo goodbye world! >&2; exit 1"])
    assert run_until(d) == (b"hello world!\n", b"goodbye world!\n", 1)


def test_output_and_value_path(tmp_path: Path) -> None:
    d = utils.getProcessOutputAndValue("/bin/pwd", path=str(tmp_path))
    assert run_until(d) == (str(tmp_path).encode() + b"\n", b"", 0)


def test_output_and_value_signal() -> None:
    d = utils.getProcessOutputAndValue("/bin/sh", ["-c", "echo stdout; echo stderr >&2; kill -9 $$"])
    failure = failure_of(d)
    assert failure.value == (b"stdout\n", b"stderr\n", signal.SIGKILL)
    assert failure.check(tuple) is tuple


def test_output_and_value_stdin() -> None:
    data = b"hello\x00world\n" * 10_000
    d = utils.getProcessOutputAndValue("/bin/cat", stdinBytes=data)
    assert run_until(d) == (data, b"", 0)


# -- maxBytes (ferroproc extension) ----------------------------------------------


def test_max_bytes_kills_and_keeps_partial_output() -> None:
    limit = 1024 * 1024
    d = utils.getProcessOutput("/usr/bin/head", ["-c", "10M", "/dev/zero"], maxBytes=limit)
    failure = failure_of(d)
    assert failure.check(utils.OutputLimitExceeded)
    error = failure.value
    assert error.limit == limit
    assert error.command == ("/usr/bin/head", "-c", "10M", "/dev/zero")
    assert len(error.out) == limit
    assert error.out.count(0) == limit
    assert error.err == b""
    assert error.reason.check(ProcessTerminated)
    assert error.reason.value.signal == signal.SIGKILL
    assert "/usr/bin/head -c 10M /dev/zero" in str(error)
    assert f"maxBytes={limit}" in str(error)


def test_max_bytes_counts_both_streams() -> None:
    d = utils.getProcessOutputAndValue(
        "/bin/sh",
        ["-c", "head -c 600 /dev/zero; head -c 600 /dev/zero >&2; exec sleep 30"],
        maxBytes=1000,
    )
    error = failure_of(d).value
    assert isinstance(error, utils.OutputLimitExceeded)
    assert len(error.out) + len(error.err) == 1000


def test_max_bytes_on_value_counts_discarded_output() -> None:
    d = utils.getProcessValue("/usr/bin/head", ["-c", "1M", "/dev/zero"], maxBytes=1000)
    error = failure_of(d).value
    assert isinstance(error, utils.OutputLimitExceeded)
    assert error.out == b"" and error.err == b""


def test_max_bytes_not_reached() -> None:
    d = utils.getProcessOutputAndValue("/bin/echo", ["small"], maxBytes=100)
    assert run_until(d) == (b"small\n", b"", 0)
    d2 = utils.getProcessOutput("/usr/bin/head", ["-c", "100", "/dev/zero"], maxBytes=100)
    assert run_until(d2) == b"\0" * 100


def test_bad_limits_raise_value_error() -> None:
    with pytest.raises(ValueError, match="maxBytes"):
        utils.getProcessOutput("/bin/true", maxBytes=-1)
    with pytest.raises(ValueError, match="timeout"):
        utils.getProcessValue("/bin/true", timeout=0)
    with pytest.raises(ValueError, match="killGrace"):
        utils.getProcessOutputAndValue("/bin/true", killGrace=-1.0)


def _children() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()}


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


@pytest.mark.parametrize("bad", [math.inf, math.nan, -math.inf])
def test_non_finite_limits_are_refused_before_any_child_starts(bad: float) -> None:
    before = _children()
    with pytest.raises(ValueError, match="timeout"):
        utils.getProcessOutput("/bin/sleep", ["30"], timeout=bad)
    with pytest.raises(ValueError, match="killGrace"):
        utils.getProcessValue("/bin/sleep", ["30"], timeout=1, killGrace=bad)
    assert _children() == before, "no child may start"


def test_huge_timeouts_are_simply_never_reached() -> None:
    assert run_until(utils.getProcessValue("/bin/true", timeout=1e20, killGrace=1e20)) == 0


@pytest.mark.parametrize("bad", ["text", bytearray(b"x"), 7])
def test_stdin_bytes_must_be_bytes_and_is_checked_before_the_spawn(bad: Any) -> None:
    before = _children()
    with pytest.raises(TypeError, match="stdinBytes must be bytes"):
        utils.getProcessOutputAndValue("/bin/cat", stdinBytes=bad)
    assert _children() == before, "no child may start"


# -- timeout (ferroproc extension) -----------------------------------------------


def test_timeout_terminates_child() -> None:
    start = time.monotonic()
    d = utils.getProcessOutput("/bin/sleep", ["30"], timeout=0.5)
    failure = failure_of(d)
    elapsed = time.monotonic() - start
    assert failure.check(utils.ProcessTimeout)
    assert failure.check(TimeoutError)
    error = failure.value
    assert error.timeout == 0.5
    assert error.killed is False
    assert error.reason.value.signal == signal.SIGTERM
    assert "/bin/sleep 30" in str(error) and "timeout=0.5" in str(error)
    assert elapsed < 5
    # The child is gone: conftest's no_leaks checks that no child remains.


def test_timeout_kills_child_that_ignores_sigterm() -> None:
    d = utils.getProcessOutputAndValue(
        "/bin/sh",
        ["-c", "trap '' TERM; echo started; exec sleep 30"],
        timeout=0.3,
        killGrace=0.3,
    )
    error = failure_of(d).value
    assert isinstance(error, utils.ProcessTimeout)
    assert error.killed is True
    assert error.reason.value.signal == signal.SIGKILL
    assert error.out == b"started\n"


def test_timeout_on_value() -> None:
    error = failure_of(utils.getProcessValue("/bin/sleep", ["30"], timeout=0.2)).value
    assert isinstance(error, utils.ProcessTimeout)


def test_timeout_not_reached() -> None:
    start = time.monotonic()
    assert run_until(utils.getProcessValue("/bin/true", timeout=30)) == 0
    assert run_until(utils.getProcessOutput("/bin/echo", ["x"], timeout=30)) == b"x\n"
    assert time.monotonic() - start < 10


# -- the examples --------------------------------------------------------------


def _run_example(name: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    package = Path(utils.__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_example_trueandfalse() -> None:
    result = _run_example("trueandfalse.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/bin/true exits with rc=0\n/bin/false exits with rc=1\n"


def test_example_quotes_local() -> None:
    result = _run_example("quotes_local.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "no quote printed"
    if not os.path.exists("/usr/games/fortune"):
        assert " -- " in result.stdout


def test_an_unhandled_stderr_failure_is_reported_once(tmp_path: Path) -> None:
    """Twisted reports the stderr failure itself; the end reason carried on
    its ``processEnded`` Deferred is not a second unhandled error."""
    code = (
        "from ferroproc import reactor, utils\n"
        "d = utils.getProcessOutput('/bin/sh', ['-c', 'echo err >&2; echo out'])\n"
        "reactor.callLater(0.5, reactor.stop)\n"
        "reactor.run()\n"
        "del d\n"
        "import gc; gc.collect()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stderr.count("Unhandled error in Deferred") == 1, out.stderr
    assert "got stderr: b'err\\n'" in out.stderr and "ProcessDone" not in out.stderr


# -- getProcessResult (ferroproc extension) --------------------------------------
# Run on both spawn paths, as the engine tests are.


@pytest.mark.usefixtures("spawn_method")
def test_result_of_a_clean_exit() -> None:
    result = run_until(utils.getProcessResult("/bin/sh", ["-c", "echo out; echo err >&2"]))
    assert isinstance(result, utils.ProcessResult)
    assert (result.out, result.err, result.exitCode, result.signal, result.timedOut) == (
        b"out\n",
        b"err\n",
        0,
        None,
        False,
    )
    assert result.ok
    assert isinstance(result.resourceUsage, ResourceUsage)
    assert result.resourceUsage.maxRSS > 0


@pytest.mark.usefixtures("spawn_method")
def test_result_of_a_failure_fires_instead_of_failing() -> None:
    result = run_until(utils.getProcessResult("/bin/sh", ["-c", "echo no >&2; exit 3"]))
    assert (result.err, result.exitCode, result.signal, result.ok) == (b"no\n", 3, None, False)


@pytest.mark.usefixtures("spawn_method")
def test_result_of_a_signal() -> None:
    result = run_until(utils.getProcessResult("/bin/sh", ["-c", "echo before; kill -9 $$"]))
    assert (result.out, result.exitCode, result.signal, result.ok) == (b"before\n", None, signal.SIGKILL, False)
    assert isinstance(result.resourceUsage, ResourceUsage)


@pytest.mark.usefixtures("spawn_method")
def test_result_with_stdin_bytes() -> None:
    data = b"x\0y\n" * 50_000
    result = run_until(utils.getProcessResult("/bin/cat", stdinBytes=data))
    assert result.out == data and result.ok


@pytest.mark.usefixtures("spawn_method")
def test_result_of_a_timeout() -> None:
    result = run_until(utils.getProcessResult("/bin/sleep", ["30"], timeout=0.3))
    assert result.timedOut and not result.ok
    assert (result.exitCode, result.signal) == (None, signal.SIGTERM)


@pytest.mark.usefixtures("spawn_method")
def test_result_of_a_timeout_that_needed_sigkill() -> None:
    d = utils.getProcessResult(
        "/bin/sh", ["-c", "trap '' TERM; echo started; exec sleep 30"], timeout=0.3, killGrace=0.2
    )
    result = run_until(d)
    assert result.timedOut and result.signal == signal.SIGKILL
    assert result.out == b"started\n"


@pytest.mark.usefixtures("spawn_method")
def test_result_over_max_bytes_fails() -> None:
    d = utils.getProcessResult("/usr/bin/head", ["-c", "1M", "/dev/zero"], maxBytes=1000)
    error = failure_of(d).value
    assert isinstance(error, utils.OutputLimitExceeded)
    assert len(error.out) == 1000


@pytest.mark.usefixtures("spawn_method")
def test_result_passes_child_options_on() -> None:
    d = utils.getProcessResult("/bin/sh", ["-c", "umask; ulimit -n"], umask=0o027, rlimits={"nofile": 64})
    result = run_until(d)
    assert result.out.split() == [b"0027", b"64"], result.err
    code = "import os; print(os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())"
    grouped = run_until(utils.getProcessResult(sys.executable, ["-c", code], processGroup=True))
    assert grouped.out == b"True False\n"
    assert run_until(utils.getProcessResult(sys.executable, ["-c", code], newSession=True)).out == b"True True\n"


@pytest.mark.usefixtures("spawn_method")
def test_result_timeout_stops_the_whole_group() -> None:
    # The shell waits for a grandchild that holds its stdout: with a group of
    # its own, the time limit's SIGTERM reaches the grandchild too.
    d = utils.getProcessResult("/bin/sh", ["-c", "sleep 30 & echo $!; wait"], timeout=0.5, processGroup=True)
    result = run_until(d)
    assert result.timedOut
    grandchild = int(result.out)
    try:
        assert wait_dead(grandchild), "the grandchild outlived the time limit"
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_result_refuses_other_keywords_before_any_child_starts() -> None:
    before = _children()
    with pytest.raises(TypeError, match="unexpected keyword argument 'windowSize'"):
        utils.getProcessResult("/bin/sleep", ["30"], windowSize=(24, 80))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'idleTimeout'"):
        utils.getProcessResult("/bin/sleep", ["30"], idleTimeout=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="umask"):
        utils.getProcessResult("/bin/sleep", ["30"], umask=0o1000)
    with pytest.raises(TypeError, match="stdinBytes must be bytes"):
        utils.getProcessResult("/bin/cat", stdinBytes="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        utils.getProcessResult("/bin/sleep", ["30"], timeout=-1)
    with pytest.raises(FileNotFoundError):
        utils.getProcessResult("/nonexistent/program")
    assert _children() == before, "no child may start"


def test_result_awaited_from_a_coroutine() -> None:
    async def work() -> tuple[int | None, bytes]:
        first = await utils.getProcessResult("/bin/sh", ["-c", "exit 4"])
        second = await utils.getProcessResult("/bin/echo", [str(first.exitCode)])
        return first.exitCode, second.out

    assert run_until(ensureDeferred(work())) == (4, b"4\n")
