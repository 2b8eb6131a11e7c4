"""ferroproc.pipeline: ``a | b | c`` with real children, on both spawn paths.

The conftest's ``no_leaks`` fixture fails any test that leaves a child or an
fd behind, so "every stage was reaped and every pipe closed" is checked
after each test, failures and spawn errors included.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Recorder
from helpers import PY, open_fds, our_children, run_reactor

import ferroproc
from ferroproc import reactor
from ferroproc.defer import CancelledError, Deferred, ensureDeferred
from ferroproc.error import ProcessTerminated, ResourceUsage
from ferroproc.failure import Failure
from ferroproc.pipeline import Pipeline, PipelineResult, StageResult, getPipelineOutput, spawnPipeline
from ferroproc.utils import OutputLimitExceeded

pytestmark = pytest.mark.usefixtures("spawn_method")

MiB = 1024 * 1024
# A stage that ignores SIGTERM (exec: no shell left behind to orphan it),
# and says so on stdout once it does.
IGNORES_TERM = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"]
# A stage that fails once the one before it is ready.
FAILS_WHEN_READY = ["sh", "-c", "read line; exit 1"]


def run(d: Deferred[PipelineResult], timeout: float = 30.0) -> PipelineResult:
    result = run_reactor(d, timeout)
    assert isinstance(result, PipelineResult)
    return result


def outcome(d: Deferred[Any], timeout: float = 30.0) -> Any:
    """The Deferred's result, or its Failure (not raised)."""
    box: list[Any] = []
    d.addBoth(box.append)
    run_reactor(lambda: bool(box), timeout)
    return box[0]


def statuses(result: PipelineResult) -> list[tuple[int | None, int | None]]:
    return [(s.exitCode, s.signal) for s in result.stages]


# -- running -------------------------------------------------------------------


def test_three_stages() -> None:
    d = getPipelineOutput([["printf", "b\\na\\nc\\n"], ["sort"], ["tr", "a-z", "A-Z"]])
    result = run(d)
    assert result.out == b"A\nB\nC\n"
    assert statuses(result) == [(0, None)] * 3
    assert result.ok and result.exitCode == 0 and not result.timedOut
    assert [s.command for s in result.stages] == [("printf", "b\\na\\nc\\n"), ("sort",), ("tr", "a-z", "A-Z")]
    assert all(s.err == b"" and not s.failed and not s.stoppedAfterFailure for s in result.stages)
    assert all(isinstance(s.resourceUsage, ResourceUsage) for s in result.stages)


def test_stdin_bytes_feed_the_first_stage_and_words_are_counted() -> None:
    text = b"the quick brown fox\njumps over the lazy dog\n"
    result = run(getPipelineOutput([["tr", "a-z", "A-Z"], ["tr", " ", "\\n"], ["wc", "-l"]], text))
    assert int(result.out) == 9 and result.ok


def test_a_single_stage() -> None:
    result = run(getPipelineOutput([["cat"]], b"alone"))
    assert result.out == b"alone" and statuses(result) == [(0, None)]


def test_without_input_the_first_stage_reads_end_of_file() -> None:
    result = run(getPipelineOutput([["cat"], ["wc", "-c"]]))
    assert int(result.out) == 0 and result.ok


def test_awaited_from_a_coroutine() -> None:
    async def count(words: bytes) -> tuple[int, int]:
        result = await getPipelineOutput([["tr", " ", "\\n"], ["sort", "-u"], ["wc", "-l"]], words)
        failing = await getPipelineOutput([["true"], ["false"]])
        return int(result.out), failing.exitCode

    assert run_reactor(ensureDeferred(count(b"a b a c b"))) == (3, 1)


def test_64_mib_flow_child_to_child_without_python_in_the_path() -> None:
    data = b"0123456789abcdef" * (4 * MiB)  # 64 MiB
    before = open_fds()
    pipeline = spawnPipeline([["cat"], ["cat"], ["wc", "-c"]], stdinBytes=data)
    # The parent holds only the pipes it reads or writes: stage 0's stdin,
    # every stderr, the last stdout. The pipes between stages are the
    # children's alone (else they would not see end-of-file).
    pipes = [dict(t.pipes) for t in pipeline.transports]  # type: ignore[attr-defined]
    assert [sorted(p) for p in pipes] == [[0, 2], [2], [1, 2]]
    new_pipes = {fd for fd in open_fds() - before if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")}
    assert new_pipes == {fd for p in pipes for fd in p.values()}
    result = run(pipeline.ended, timeout=120)
    assert int(result.out) == len(data)
    assert result.ok


def test_output_to_an_fd_and_input_from_an_fd(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"".join(b"%d\n" % n for n in range(10_000, 0, -1)))
    with open(source, "rb") as inp, open(tmp_path / "out", "wb") as out:
        d = getPipelineOutput([["sort", "-n"], ["tail", "-3"]], stdin=inp.fileno(), stdout=out.fileno())
        result = run(d)
    assert result.out == b"" and result.ok
    assert (tmp_path / "out").read_bytes() == b"9998\n9999\n10000\n"


def test_each_stage_keeps_its_stderr() -> None:
    stages = [
        ["sh", "-c", "echo one >&2; echo data"],
        ["sh", "-c", "cat; echo two >&2"],
        ["sh", "-c", "cat; echo three >&2; exit 0"],
    ]
    result = run(getPipelineOutput(stages))
    assert [s.err for s in result.stages] == [b"one\n", b"two\n", b"three\n"]
    assert result.out == b"data\n"


def test_stderr_to_one_fd(tmp_path: Path) -> None:
    stages = [["sh", "-c", "echo one >&2; echo data"], ["sh", "-c", "cat; echo two >&2"]]
    with open(tmp_path / "err", "wb") as err:
        result = run(getPipelineOutput(stages, stderr=err.fileno()))
    assert result.out == b"data\n" and [s.err for s in result.stages] == [b"", b""]
    assert sorted((tmp_path / "err").read_bytes().split()) == [b"one", b"two"]


def test_env_path_and_child_options_apply_to_every_stage(tmp_path: Path) -> None:
    stages = [["sh", "-c", 'echo "$WHO $(pwd) $(umask)"'], ["sh", "-c", 'cat; echo "$WHO $(pwd) $(umask)"']]
    result = run(getPipelineOutput(stages, env={"WHO": "me"}, path=str(tmp_path), umask=0o027))
    line = f"me {tmp_path} 0027\n".encode()
    assert result.out == line * 2


# -- statuses and pipefail -------------------------------------------------------


def test_sigpipe_upstream_of_a_reader_that_stopped_is_not_a_failure() -> None:
    result = run(getPipelineOutput([["yes"], ["head", "-2"]]))
    assert result.out == b"y\ny\n"
    assert statuses(result) == [(None, signal.SIGPIPE), (0, None)]
    assert result.stages[0].status == 128 + signal.SIGPIPE
    assert not result.stages[0].failed
    assert result.ok and result.exitCode == 0


def test_the_last_stage_killed_by_sigpipe_is_a_failure() -> None:
    r, w = os.pipe()
    os.close(r)  # nobody will read what the last stage writes
    try:
        result = run(getPipelineOutput([["echo", "x"], ["cat"]], stdout=w))
    finally:
        os.close(w)
    assert statuses(result)[1] == (None, signal.SIGPIPE)
    assert result.stages[1].failed and result.exitCode == 128 + signal.SIGPIPE and not result.ok


def test_pipefail_reports_the_failing_stage() -> None:
    # The last stage fails after reading one line; the first, still writing,
    # gets SIGPIPE or is stopped: neither is a failure of its own.
    result = run(getPipelineOutput([["yes"], ["sh", "-c", "head -1; exit 5"]]))
    assert result.out == b"y\n"
    assert [s.failed for s in result.stages] == [False, True]
    assert result.exitCode == 5 and not result.ok


def test_a_failing_first_stage_fails_the_pipeline_although_the_last_succeeds() -> None:
    """The issue's case: as in a shell, `cat` prints what the failed stage
    wrote (it used to be stopped, and its output lost)."""
    result = run(getPipelineOutput([["sh", "-c", "echo x; exit 3"], ["cat"]]))
    assert result.out == b"x\n"
    assert statuses(result) == [(3, None), (0, None)]
    assert not result.stages[1].stoppedAfterFailure and not result.stages[1].failed
    assert result.stages[0].failed and result.exitCode == 3 and not result.ok


def test_a_later_failure_gives_the_status_as_pipefail_does() -> None:
    # Both fail; the later stage reads to its end first, then fails too:
    # bash's pipefail reports the last (rightmost) failure.
    result = run(getPipelineOutput([["sh", "-c", "echo x; exit 3"], ["sh", "-c", "cat; exit 4"]]))
    assert result.out == b"x\n" and statuses(result) == [(3, None), (4, None)]
    assert [s.failed for s in result.stages] == [True, True] and result.exitCode == 4


def test_exit_code_is_the_status_of_the_last_failed_stage() -> None:
    """The pipefail rule itself (two failures in one run are a race: the
    second is usually stopped by the first)."""

    def stage(exitCode: int | None, sig: int | None, stopped: bool = False, failed: bool = True) -> StageResult:
        return StageResult(("x",), b"", exitCode, sig, None, False, stopped, failed)

    both = PipelineResult(b"", (stage(2, None), stage(None, signal.SIGKILL), stage(0, None, failed=False)))
    assert both.exitCode == 128 + signal.SIGKILL and not both.ok
    only_first = PipelineResult(b"", (stage(2, None), stage(None, signal.SIGTERM, stopped=True, failed=False)))
    assert only_first.exitCode == 2
    assert PipelineResult(b"", (stage(0, None, failed=False),)).ok
    assert stage(None, None).status == 255


# -- a failure stops the stages before it; those after it read to their end ----------


class Gate:
    """A FIFO that a stage's shell reads a line from (``wait``) before it
    goes on; :meth:`open` lets it through. The tests below open it only once
    an earlier stage has ended, so the stage is still running when the
    pipeline learns of that failure, whatever the machine's speed."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "gate"
        os.mkfifo(self.path)
        # Held open (read-write, so this never blocks) until the test ends:
        # the line stays in the FIFO however late the stage opens it.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self.wait = f"read go < {self.path}"

    def open(self) -> None:
        os.write(self.fd, b"go\n")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    g = Gate(tmp_path)
    yield g
    os.close(g.fd)


def after_stage_ended(pipeline: Pipeline, index: int, gate: Gate) -> PipelineResult:
    """Run ``pipeline`` until stage ``index`` has exited, open ``gate``,
    then run it to its end."""
    run_reactor(lambda: pipeline.transports[index].pid is None)
    gate.open()
    return run(pipeline.ended)


def test_make_tee_keeps_the_whole_log_when_the_build_fails(tmp_path: Path, gate: Gate) -> None:
    """``make 2>&1 | tee build.log``: the log ends where the build did,
    although the build failed before `tee` had read any of it."""
    log = tmp_path / "build.log"
    build = ["sh", "-c", "exec 2>&1; echo a; echo b >&2; exit 2"]
    pipeline = spawnPipeline([build, ["sh", "-c", f"{gate.wait}; exec tee {log}"]])
    result = after_stage_ended(pipeline, 0, gate)
    assert log.read_bytes() == b"a\nb\n" and result.out == b"a\nb\n"
    assert statuses(result) == [(2, None), (0, None)]
    assert not result.stages[1].stoppedAfterFailure
    assert result.exitCode == 2 and not result.ok


def test_make_tee_as_written(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    result = run(getPipelineOutput([["sh", "-c", "echo a; echo b >&2; exit 2"], ["tee", str(log)]]))
    assert log.read_bytes() == b"a\n" == result.out
    assert result.stages[0].err == b"b\n" and result.exitCode == 2


def test_the_stage_after_a_failed_one_reads_to_its_end(gate: Gate) -> None:
    pipeline = spawnPipeline([["sh", "-c", "echo x; exit 3"], ["sh", "-c", f"{gate.wait}; exec cat"]])
    result = after_stage_ended(pipeline, 0, gate)
    assert result.out == b"x\n" and statuses(result) == [(3, None), (0, None)]
    assert result.exitCode == 3


def test_a_failing_middle_stage_stops_the_stages_before_it_only() -> None:
    stages = [["sleep", "30"], ["sh", "-c", "echo boom >&2; echo out; exit 7"], ["cat"]]
    result = run(getPipelineOutput(stages, killGrace=10))
    assert statuses(result) == [(None, signal.SIGTERM), (7, None), (0, None)]
    assert [s.stoppedAfterFailure for s in result.stages] == [True, False, False]
    assert [s.failed for s in result.stages] == [False, True, False]
    assert result.stages[1].err == b"boom\n" and result.out == b"out\n"
    assert result.exitCode == 7 and not result.ok and not result.timedOut


def test_each_failure_stops_the_stages_before_it() -> None:
    # Stage 0 fails; stage 1 reads to its end, then waits; stage 2 then
    # fails, which stops stage 1 (what it would write cannot be read).
    stages = [["sh", "-c", "echo x; exit 3"], ["sh", "-c", "cat; exec sleep 30"], ["sh", "-c", "read l; exit 5"]]
    result = run(getPipelineOutput(stages, killGrace=10))
    assert result.stages[1].stoppedAfterFailure and result.stages[1].signal == signal.SIGTERM
    assert result.stages[2].failed and result.exitCode == 5


def test_the_time_limit_still_bounds_the_stages_after_a_failure() -> None:
    result = run(getPipelineOutput([["sh", "-c", "exit 3"], ["sleep", "30"]], timeout=0.5, killGrace=10))
    assert statuses(result) == [(3, None), (None, signal.SIGTERM)]
    assert result.stages[1].timedOut and not result.stages[1].stoppedAfterFailure
    assert result.timedOut and result.exitCode == 128 + signal.SIGTERM


def test_a_stage_over_max_bytes_stops_the_stages_before_it() -> None:
    # The middle stage floods its stderr: killed at the cap, it has failed.
    stages = [["sleep", "30"], ["sh", "-c", "yes >&2"], ["cat"]]
    failure = outcome(getPipelineOutput(stages, maxBytes=10_000, killGrace=10))
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, OutputLimitExceeded) and failure.value.command == ("sh", "-c", "yes >&2")


def test_stop_all_on_failure_ends_the_others() -> None:
    stages = [["sleep", "30"], ["sh", "-c", "echo boom >&2; exit 7"], ["sleep", "30"]]
    result = run(getPipelineOutput(stages, killGrace=10, stopAllOnFailure=True))
    assert statuses(result) == [(None, signal.SIGTERM), (7, None), (None, signal.SIGTERM)]
    assert [s.stoppedAfterFailure for s in result.stages] == [True, False, True]
    assert [s.failed for s in result.stages] == [False, True, False]
    assert result.stages[1].err == b"boom\n"
    assert result.exitCode == 7 and not result.ok and not result.timedOut


def test_stop_all_on_failure_on_a_spawned_pipeline(gate: Gate) -> None:
    pipeline = spawnPipeline(
        [["sh", "-c", "echo x; exit 3"], ["sh", "-c", f"{gate.wait}; exec cat"]], stopAllOnFailure=True
    )
    assert pipeline.stopAllOnFailure and not spawnPipeline([["true"]]).stopAllOnFailure
    result = after_stage_ended(pipeline, 0, gate)
    assert result.out == b"" and result.stages[1].stoppedAfterFailure
    assert result.stages[1].signal == signal.SIGTERM and result.exitCode == 3


def test_a_stage_that_ignores_sigterm_gets_sigkill_after_the_grace() -> None:
    result = run(getPipelineOutput([IGNORES_TERM, FAILS_WHEN_READY], killGrace=0.2))
    assert statuses(result) == [(None, signal.SIGKILL), (1, None)]
    assert result.stages[0].stoppedAfterFailure and result.exitCode == 1


def test_a_stage_killed_by_a_signal_stops_the_stages_before_it() -> None:
    result = run(getPipelineOutput([["sleep", "30"], ["sh", "-c", "kill -KILL $$"]]))
    assert statuses(result) == [(None, signal.SIGTERM), (None, signal.SIGKILL)]
    assert result.exitCode == 128 + signal.SIGKILL


def test_a_stage_that_succeeds_ends_nothing() -> None:
    # `sh` exits 0 at once; the first stage is not stopped, it finishes.
    result = run(getPipelineOutput([["sh", "-c", "sleep 0.2; echo late >&2"], ["true"]]))
    assert result.stages[0].err == b"late\n" and statuses(result) == [(0, None), (0, None)]


def test_timeout_ends_every_stage_and_marks_them() -> None:
    stages = [["sleep", "30"], ["cat"], ["sleep", "30"]]
    result = run(getPipelineOutput(stages, timeout=0.5, killGrace=10))
    assert all(s.timedOut for s in result.stages)
    assert result.timedOut and not result.ok
    assert statuses(result)[2] == (None, signal.SIGTERM)
    assert result.exitCode == 128 + signal.SIGTERM
    assert not any(s.stoppedAfterFailure for s in result.stages)


def test_timeout_then_sigkill() -> None:
    result = run(getPipelineOutput([["cat"], IGNORES_TERM], timeout=1.0, killGrace=0.2))
    assert result.out == b"ready\n"
    assert result.stages[1].signal == signal.SIGKILL and result.stages[1].timedOut
    assert result.exitCode == 128 + signal.SIGKILL


def test_max_bytes_kills_the_stage_and_fails_the_deferred() -> None:
    failure = outcome(getPipelineOutput([["yes"], ["cat"]], maxBytes=100_000))
    assert isinstance(failure, Failure)
    error = failure.value
    assert isinstance(error, OutputLimitExceeded)
    assert error.command == ("cat",) and len(error.out) == 100_000


def test_cancelling_stops_the_pipeline() -> None:
    d = getPipelineOutput([["sleep", "30"], ["sleep", "30"]])
    reactor.callLater(0.1, d.cancel)
    assert isinstance(outcome(d).value, CancelledError)
    # no_leaks: both stages were stopped and reaped.


def test_stop_counts_as_an_outside_kill() -> None:
    pipeline = spawnPipeline([["sleep", "30"], ["cat"]])
    reactor.callLater(0.1, pipeline.stop)
    result = run(pipeline.ended)
    assert result.stages[0].signal == signal.SIGTERM
    assert not result.stages[0].stoppedAfterFailure and result.stages[0].failed
    assert not result.ok and result.exitCode != 0


# -- protocols ---------------------------------------------------------------------


def test_protocols_receive_their_stage_events() -> None:
    first = Recorder(stdin=b"c\na\nb\n")  # writes the first stage's stdin, then closes it
    last = Recorder()
    pipeline = spawnPipeline([["sort"], ["sh", "-c", "cat; echo note >&2"]], [first, last])
    assert isinstance(pipeline, Pipeline)
    assert first.transport is pipeline.transports[0] and last.transport is pipeline.transports[1]
    result = run(pipeline.ended)
    assert last.output(1) == b"a\nb\nc\n" and last.output(2) == b"note\n"
    assert result.out == b"" and result.stages[1].err == b"", "what a protocol receives is not captured"
    assert first.events[0] == "made" and "exited" in first.events and first.events[-1] == "ended"
    assert last.ended.called and result.ok


def test_a_stage_without_a_protocol_is_still_captured() -> None:
    last = Recorder()
    result = run(spawnPipeline([["sh", "-c", "echo e >&2; echo o"], ["cat"]], [None, last]).ended)
    assert result.stages[0].err == b"e\n" and last.output() == b"o\n"


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stages", "kw", "error", "match"),
    [
        ([], {}, ValueError, "stages is empty"),
        ("ls | wc", {}, TypeError, "stages must be a list of argv lists, not str"),
        ([["ls"], "wc -l"], {}, TypeError, r"stages\[1\] must be a list of arguments"),
        ([["ls"], []], {}, ValueError, r"stages\[1\] is empty"),
        ([["ls"], ["head", 3]], {}, TypeError, r"stages\[1\]\[1\] must be str, bytes or path-like, not int"),
        ([["ls"], ["grep", "a\0b"]], {}, ValueError, r"stages\[1\]\[1\] contains a NUL byte"),
        ([["ls"], [""]], {}, ValueError, r"stages\[1\]\[0\] is empty"),
        ([["ls"]], {"stdinBytes": "text"}, TypeError, "stdinBytes must be bytes"),
        ([["ls"]], {"stdinBytes": b"x", "stdin": 0}, ValueError, "stdinBytes or stdin, not both"),
        ([["ls"]], {"stdout": "1"}, TypeError, "stdout must be an fd number"),
        ([["ls"]], {"timeout": 0}, ValueError, "timeout"),
        ([["ls"]], {"maxBytes": -1}, ValueError, "maxBytes"),
        ([["ls"]], {"stopAllOnFailure": 1}, TypeError, "stopAllOnFailure must be True or False, not 1"),
        ([["ls"]], {"idleTimeout": 1}, TypeError, "unexpected keyword argument 'idleTimeout'"),
        ([["ls"], ["cat"]], {"umask": 0o1000}, ValueError, "umask"),
        ([["ls"], ["cat"]], {"env": {"A": 1}}, TypeError, "env"),
        ([["ls"], ["cat"]], {"path": "/nonexistent/dir"}, FileNotFoundError, 'directory "/nonexistent/dir"'),
    ],
)
def test_bad_arguments_are_refused_before_any_child_exists(
    stages: Any, kw: dict[str, Any], error: type[Exception], match: str
) -> None:
    kids, fds = our_children(), open_fds()
    with pytest.raises(error, match=match):
        getPipelineOutput(stages, **kw)
    assert our_children() == kids and open_fds() == fds


def test_a_closed_fd_is_refused() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match=f"stdin fd {r} is not open"):
        getPipelineOutput([["cat"]], stdin=r)


def test_protocols_are_checked() -> None:
    with pytest.raises(ValueError, match="1 protocols for 2 stages"):
        spawnPipeline([["ls"], ["cat"]], [Recorder()])
    with pytest.raises(TypeError, match=r"protocols\[1\] must be a protocol instance, not the class Recorder"):
        spawnPipeline([["ls"], ["cat"]], [None, Recorder])  # type: ignore[list-item]


@pytest.mark.parametrize("missing", [1, 2])
def test_a_stage_that_cannot_start_takes_the_started_ones_down(missing: int) -> None:
    stages = [["sleep", "30"], ["cat"], ["cat"]]
    stages[missing] = ["/nonexistent/program"]
    watchers = [Recorder() for _ in stages]
    fds = open_fds()
    with pytest.raises(FileNotFoundError, match="/nonexistent/program"):
        spawnPipeline(stages, watchers)
    started = watchers[:missing]
    run_reactor(lambda: all(w.ended.called for w in started))
    for watcher in started:
        assert watcher.ended_reason is not None
        reason = watcher.ended_reason.value
        assert isinstance(reason, ProcessTerminated) and reason.signal == signal.SIGKILL
    assert open_fds() == fds
    assert not watchers[missing].events, "the stage that failed to start got no events"


def test_stage_errors_name_the_function() -> None:
    with pytest.raises(ValueError, match=r"^spawnPipeline: stages is empty"):
        spawnPipeline([])
    with pytest.raises(TypeError, match=r"^getPipelineOutput: stages"):
        getPipelineOutput([[PY, None]])  # type: ignore[list-item]


# -- the example ---------------------------------------------------------------------


def test_example_pipeline() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "pipeline.py"
    env = dict(os.environ)
    package = Path(ferroproc.__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), env.get("PYTHONPATH")]))
    done = subprocess.run([PY, str(example)], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    counts = [line.split() for line in lines[1:6]]
    assert len(counts) == 5 and all(n.isdigit() for n, _ in counts)
    assert [int(n) for n, _ in counts] == sorted((int(n) for n, _ in counts), reverse=True)
    assert sum(line.endswith("exit 0") for line in lines) == 6
    assert lines[-1] == "pipeline: ok, status 0"
