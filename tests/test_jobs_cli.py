"""``ferroproc jobs`` end to end, in a subprocess as a user runs it: exit
status, job log, resume, each input form and replacement string, each output
mode, ``-k``, ``--results``, the progress display (off when piped, on under a
real PTY), Ctrl-C / SIGTERM / SIGKILL of the runner (what is left checked in
the process table, never taken from the runner's word), and a reader that
goes away. Where GNU parallel is installed, some outputs are compared with
its own; those checks skip cleanly without it.

Jobs that must overlap wait for each other through marker files (the job
polls; the test never sleeps to wait for an event).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import alive, wait_dead
from jobs_support import settle_engines  # noqa: F401 (no_leaks calls it: the spawn channels exist before a test counts fds)

PARALLEL = shutil.which("parallel")
CLI = [sys.executable, "-m", "ferroproc.jobs"]
needs_parallel = pytest.mark.skipif(PARALLEL is None, reason="GNU parallel (Debian's 'parallel') is not installed")
#: A shell loop that waits (at most 20 s) for a file to exist.
WAIT_FOR = "i=0; while [ ! -e {f} ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done"


def run(*argv: str, stdin: str | bytes | None = None, cwd: Path | None = None, timeout: float = 60):
    """Run ``python -m ferroproc.jobs argv``; its CompletedProcess (text)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    p = subprocess.run([*CLI, *argv], input=data, capture_output=True, cwd=cwd, timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


def gnu(*argv: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PARALLEL is not None
    return subprocess.run(
        [PARALLEL, "--will-cite", *argv], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def joblog(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
    return [line.split("\t") for line in lines[1:]]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[1]) == pid and rest[0] != "Z":
                out.append(int(name))
    return out


def wait_files(paths: list[Path], proc: subprocess.Popen[bytes], timeout: float = 20) -> list[int]:
    """Wait (polling the file system) until every file is complete; their pids."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"the runner ended early: {proc.returncode}"
        assert time.monotonic() < deadline, f"not all of {paths} appeared"
        time.sleep(0.01)
    return [int(p.read_text()) for p in paths]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def runner(*argv: str, cwd: Path, **popen) -> Iterator[subprocess.Popen[bytes]]:
    """The CLI running in the background, in a session of its own (as a
    terminal's foreground job is); killed and reaped whatever happens."""
    proc = subprocess.Popen([*CLI, *argv], cwd=cwd, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- exit status ---------------------------------------------------------------------------------


def test_the_exit_status_is_the_number_of_failed_jobs() -> None:
    ok = run("-j4", "exit {}", ":::", "0", "0")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    assert run("-j4", "exit {}", ":::", "0", "1", "2", "0", "3").returncode == 3


def test_the_exit_status_is_at_most_101(tmp_path: Path) -> None:
    values = tmp_path / "values"
    values.write_text("".join(f"{i}\n" for i in range(105)))
    result = run("-j8", "false", "::::", str(values))
    assert result.returncode == 101


@pytest.mark.parametrize(
    ("halt", "status"),
    [("now,fail=1", 7), ("soon,fail=2", 2), ("soon,fail=50%", 60), ("now,success=1", 0), ("soon,done=2", 1)],
)
def test_halt_statuses_are_gnu_parallels(halt: str, status: int) -> None:
    # One at a time: 0 7 3 0 5.
    ours = run("-j1", "--halt", halt, "exit {}", ":::", "0", "7", "3", "0", "5")
    assert (ours.returncode, ours.stderr) == (status, "")
    if PARALLEL is not None:
        assert gnu("-j1", "--halt", halt, "exit {}", ":::", "0", "7", "3", "0", "5").returncode == status


def test_halt_now_stops_the_running_jobs(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run("-j3", "--halt", "now,fail=1", "--joblog", str(log), "--kill-grace", "0", "{}", ":::",
                 "sleep 300", "sleep 300", "exit 4")  # fmt: skip
    assert result.returncode == 4, "the failing job's own status"
    rows = {int(r[0]): r for r in joblog(log)}
    assert rows[3][6] == "4"
    assert rows[1][6] == rows[2][6] == "-1", "the sleeps were stopped (Exitval -1)"


def test_a_bad_command_line_is_255_and_says_why() -> None:
    result = run("--pipe", "wc")
    assert result.returncode == 255
    assert "--pipe is a GNU parallel option that ferroproc jobs does not support" in result.stderr
    missing = run("echo", "::::", "/nonexistent/values")
    assert missing.returncode == 255
    assert "cannot open input file '/nonexistent/values'" in missing.stderr


def test_a_job_log_that_cannot_be_written_stops_before_any_job(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    result = run("--results", "out", "--joblog", str(tmp_path / "no" / "log"), f"touch {ran}", ":::", "a",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 255
    assert "No such file or directory" in result.stderr
    assert not ran.exists()
    assert os.listdir(tmp_path / "out") == [], "no staging directory left"


def test_a_program_that_is_not_there_fails_its_job_and_says_so() -> None:
    result = run("no-such-program-ferroproc", ":::", "a")
    assert result.returncode == 1
    assert "no-such-program-ferroproc" in result.stderr and "not found" in result.stderr


# -- the job log and resume ---------------------------------------------------------------------


def test_the_job_log_is_gnu_parallels(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run("-j2", "--joblog", str(log), "echo {}; exit {}", ":::", "0", "3", cwd=tmp_path)
    assert result.returncode == 1
    rows = sorted(joblog(log), key=lambda r: int(r[0]))
    assert [r[0] for r in rows] == ["1", "2"]
    assert all(r[1] == ":" for r in rows)
    assert [r[5] for r in rows] == ["2", "2"], "Receive: the bytes each job wrote"
    assert [(r[6], r[7]) for r in rows] == [("0", "0"), ("3", "0")]
    assert [r[8] for r in rows] == ["echo 0; exit 0", "echo 3; exit 3"]
    # A direct job's command as a shell line.
    run("--joblog", str(log), "echo", ":::", "a b")
    assert joblog(log)[0][8] == "echo 'a b'"


def test_a_plus_before_the_job_log_appends(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run("--joblog", str(log), "true", ":::", "a")
    run("--joblog", f"+{log}", "true", ":::", "b", "c")
    assert len(joblog(log)) == 3
    assert log.read_text().count("Seq\t") == 1


def test_resume_skips_what_the_log_lists_and_resume_failed_reruns_the_failures(tmp_path: Path) -> None:
    log, ran = tmp_path / "log", tmp_path / "ran"
    cmd = f"echo {{}} >> {ran}; exit {{}}"
    # The first run is stopped after job 3 (halt soon: job 4 never starts).
    first = run("-j1", "--joblog", str(log), "--halt", "soon,done=3", cmd, ":::", "0", "1", "0", "2", "0")
    assert first.returncode == 1
    assert ran.read_text().split() == ["0", "1", "0"]
    ran.unlink()
    second = run("-j1", "--joblog", str(log), "--resume", cmd, ":::", "0", "1", "0", "2", "0")
    assert ran.read_text().split() == ["2", "0"], "jobs 4 and 5 only"
    assert second.returncode == 1
    ran.unlink()
    third = run("-j1", "--joblog", str(log), "--resume-failed", cmd, ":::", "0", "1", "0", "2", "0")
    assert sorted(ran.read_text().split()) == ["1", "2"], "the failed jobs 2 and 4 again"
    assert third.returncode == 2
    assert [r[0] for r in joblog(log)] == ["1", "2", "3", "4", "5", "2", "4"]
    ran.unlink()
    assert run("-j1", "--joblog", str(log), "--resume", cmd, ":::", "0", "1", "0", "2", "0").returncode == 0
    assert not ran.exists(), "everything is in the log"


# -- input forms and replacement strings --------------------------------------------------------


def test_input_forms(tmp_path: Path) -> None:
    (tmp_path / "f1").write_text("x\ny\n")
    (tmp_path / "f2").write_text("1\n2\n3")

    def out(*argv: str, stdin: str | bytes | None = None) -> list[str]:
        result = run("-k", *argv, stdin=stdin, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert out("echo", ":::", "a", "b") == ["a", "b"]
    assert out("echo", "::::", "f1") == ["x", "y"]
    assert out("echo", stdin="l1\nl 2\n\nl4") == ["l1", "l 2", "", "l4"]
    assert out("-r", "echo", stdin="l1\n  \nl3\n") == ["l1", "l3"]
    assert out("-0", "echo", stdin=b"a\nb\0c\0") == ["a", "b", "c"]
    assert out("-d", ",", "echo", stdin="a,b,") == ["a", "b"]
    assert out("-a", "f1", "echo", ":::", "p") == ["x p", "y p"]
    assert out("echo", ":::", "a", "b", "::::", "f1") == ["a x", "a y", "b x", "b y"]
    assert out("echo", ":::", "a", "b", "c", "::::+", "f2") == ["a 1", "b 2", "c 3"]
    assert out("echo", "::::", "-", "f1", stdin="s\n") == ["s x", "s y"]
    assert out("--link", "echo", ":::", "a", "b", "c", ":::", "1", "2") == ["a 1", "b 2", "c 1"]
    assert out("--colsep", "\t", "echo", "{2}-{1}", stdin="a\tb\nc\td\n") == ["b-a", "d-c"]
    assert out("echo", ":::") == []


def test_replacement_strings(tmp_path: Path) -> None:
    argv = ["-k", "echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{1/}", ":::", "dir.x/a b.tar.gz", "plain"]
    result = run(*argv)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "dir.x/a b.tar.gz dir.x/a b.tar a b.tar.gz dir.x a b.tar 1 a b.tar.gz",
        "plain plain plain . plain 2 plain",
    ]
    if PARALLEL is not None:
        assert gnu(*argv).stdout == result.stdout


def test_values_are_never_shell_code_unless_they_are_the_command(tmp_path: Path) -> None:
    evil = "$(touch pwned); `touch pwned2`; rm -rf x"
    result = run("-k", "echo", "{}", ":::", evil, "a'b", cwd=tmp_path)
    assert result.stdout.splitlines() == [evil, "a'b"]
    result = run("-k", "echo {} | tr a-z A-Z", ":::", evil, cwd=tmp_path)
    assert result.stdout.splitlines() == [evil.upper()]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    # No command: each value is a command line.
    result = run("-k", stdin="echo one\necho two | tr a-z A-Z\n")
    assert result.stdout.splitlines() == ["one", "TWO"]


# -- output modes ----------------------------------------------------------------------------------


def _two_overlapping_jobs(tmp_path: Path) -> str:
    """A command for ``::: a b``, two at a time: each writes its first line,
    then waits for the other's, then writes its second."""
    return (
        f"echo {{}}1; touch {tmp_path}/{{}}-1; o=$(echo {{}} | tr ab ba); "
        + WAIT_FOR.format(f=f"{tmp_path}/$o-1")
        + "; echo {}2"
    )


def test_grouped_output_keeps_each_jobs_output_together(tmp_path: Path) -> None:
    result = run("-j2", _two_overlapping_jobs(tmp_path), ":::", "a", "b")
    lines = result.stdout.splitlines()
    assert sorted(lines) == ["a1", "a2", "b1", "b2"]
    assert lines in (["a1", "a2", "b1", "b2"], ["b1", "b2", "a1", "a2"])


def test_grouped_output_puts_stdout_before_stderr() -> None:
    # Both to one pipe: the job wrote to stderr first.
    both = subprocess.run([*CLI, "echo err {} >&2; echo out {}", ":::", "a"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)  # fmt: skip
    assert both.stdout == b"out a\nerr a\n"


def test_line_buffered_output_mixes_whole_lines(tmp_path: Path) -> None:
    result = run("-j2", "--line-buffer", _two_overlapping_jobs(tmp_path), ":::", "a", "b")
    lines = result.stdout.splitlines()
    assert sorted(lines[:2]) == ["a1", "b1"] and sorted(lines[2:]) == ["a2", "b2"]
    partial = run("--lb", "--tag", "printf 'x\\ny'", ":::", "p")
    assert partial.stdout == "p\tx\np\ty"


def test_line_buffered_output_comes_while_the_job_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    with runner("--lb", f"echo first; {WAIT_FOR.format(f=go)}; echo second", ":::", "a", cwd=tmp_path,
                stdout=subprocess.PIPE) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        go.touch()
        assert proc.stdout.read() == b"second a\n", "(the value appended: no replacement string)"
        assert proc.wait(30) == 0


def test_ungrouped_output_is_the_jobs_own(tmp_path: Path) -> None:
    go = tmp_path / "go"
    with runner("-u", f"printf part; {WAIT_FOR.format(f=go)}; echo end", ":::", "a", cwd=tmp_path,
                stdout=subprocess.PIPE) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert os.read(proc.stdout.fileno(), 100) == b"part"
        go.touch()
        assert proc.stdout.read() == b"end a\n"
        assert proc.wait(30) == 0


def test_keep_order_prints_in_input_order(tmp_path: Path) -> None:
    # Job 1 ends only after job 2 has: it waits for job 2's pid, then for
    # that process to be gone (reaped, so the runner has seen it end).
    done2 = tmp_path / "done2"
    gone = f"while kill -0 $(cat {done2}) 2>/dev/null; do sleep 0.01; done"
    cmd = (f"if [ {{}} = 1 ]; then {WAIT_FOR.format(f=done2)}; {gone}; fi; echo {{}}; "
           f"[ {{}} = 2 ] && echo $$ > {done2}.tmp && mv {done2}.tmp {done2}; true")  # fmt: skip
    assert run("-j2", cmd, ":::", "1", "2").stdout == "2\n1\n"
    done2.unlink()
    assert run("-j2", "-k", cmd, ":::", "1", "2").stdout == "1\n2\n"
    done2.unlink()
    assert run("-j2", "-k", "--lb", cmd, ":::", "1", "2").stdout == "1\n2\n"


@pytest.mark.parametrize("mode", [[], ["--lb"]])
def test_tag(mode: list[str]) -> None:
    argv = [*mode, "-k", "--tag", "echo {}; echo E{} >&2", ":::", "a", "b c"]
    result = run(*argv)
    assert result.stdout == "a\ta\nb c\tb c\n"
    assert result.stderr == "a\tEa\nb c\tEb c\n"
    if PARALLEL is not None:
        assert gnu(*argv).stdout == result.stdout
    tagged = run(*mode, "--tagstring", "<{#}>", "echo", ":::", "x")
    assert tagged.stdout == "<1>\tx\n"


def test_grouped_output_larger_than_memory_goes_through_a_file(tmp_path: Path) -> None:
    # 3 MiB per job: past the in-memory spool, and every byte arrives.
    result = run("-j2", "head -c 3145728 /dev/zero | tr '\\0' {}", ":::", "a", "b")
    assert len(result.stdout) == 2 * 3145728
    halves = {result.stdout[:3145728], result.stdout[3145728:]}
    assert halves == {"a" * 3145728, "b" * 3145728}


def test_results_go_to_gnu_parallels_layout(tmp_path: Path) -> None:
    result = run("--results", "out", "echo {1}-{2}; echo e >&2", ":::", "a", "b/c", ":::", "x", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == [
        "out/1/a/2/x/seq",
        "out/1/a/2/x/stderr",
        "out/1/a/2/x/stdout",
        "out/1/b\\_c/2/x/seq",
        "out/1/b\\_c/2/x/stderr",
        "out/1/b\\_c/2/x/stdout",
    ]
    assert (tmp_path / "out/1/b\\_c/2/x/stdout").read_text() == "b/c-x\n"
    assert (tmp_path / "out/1/b\\_c/2/x/stderr").read_text() == "e\n"
    assert (tmp_path / "out/1/b\\_c/2/x/seq").read_text() == "2"
    if PARALLEL is not None:
        gnu("--results", "gnu", "echo {1}-{2}; echo e >&2", ":::", "a", "b/c", ":::", "x", cwd=tmp_path)
        theirs = sorted(str(p.relative_to(tmp_path / "gnu")) for p in (tmp_path / "gnu").rglob("*") if p.is_file())
        assert theirs == [f.removeprefix("out/") for f in files]
    named = run("--results", "my_{}", "echo", ":::", "p", cwd=tmp_path)
    assert named.returncode == 0
    assert (tmp_path / "my_p").read_text() == "p\n"
    assert (tmp_path / "my_p.seq").read_text() == "1"
    assert (tmp_path / "my_p.err").read_text() == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ferroproc")], "no staging left"


# -- progress ---------------------------------------------------------------------------------------


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    result = run("echo", ":::", "a", "b")
    assert result.stderr == ""


def test_progress_on_request_without_a_terminal_is_plain_lines() -> None:
    result = run("--progress", "echo", ":::", "a", "b")
    assert result.returncode == 0
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("2/2 done, 0 failed, 0 running")


def _read_pty(master: int, proc: subprocess.Popen[bytes], until: bytes = b"") -> bytes:
    """What the runner writes to the terminal, until ``until`` appears (or it ends)."""
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every copy of the slave is closed
                break
            if not chunk:
                break
            data += chunk
            if until and until in data:
                return data
        elif proc.poll() is not None:
            break
    return data


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    go = tmp_path / "go"
    master, slave = pty.openpty()
    try:
        with runner("-j2", f"{WAIT_FOR.format(f=go)}; exit {{}}", ":::", "0", "1", "0", cwd=tmp_path,
                    stdout=subprocess.PIPE, stderr=slave) as proc:  # fmt: skip
            os.close(slave)
            slave = -1
            seen = _read_pty(master, proc, until=b"2 running")
            assert b"0/3 done, 0 failed, 2 running" in seen
            go.touch()
            seen += _read_pty(master, proc)
            assert proc.wait(30) == 1
            assert proc.stdout is not None and proc.stdout.read() == b""
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = seen.decode()
    assert "\r\x1b[K" in text, "drawn in place"
    assert text.endswith("\r\x1b[K"), "and taken away at the end"


def test_no_progress_by_itself_when_the_jobs_write_to_the_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        with runner("-u", "echo", ":::", "a", cwd=tmp_path, stdout=slave, stderr=slave) as proc:
            os.close(slave)
            slave = -1
            seen = _read_pty(master, proc)
            assert proc.wait(30) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert seen == b"a\r\n"


def test_bar_on_a_terminal_stays_at_the_end(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        with runner("--bar", "true", ":::", "a", "b", cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave) as proc:
            os.close(slave)
            slave = -1
            seen = _read_pty(master, proc)
            assert proc.wait(30) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    last = seen.decode().split("\r\x1b[K")[-1]
    assert re.match(r"100% \[#+\] 2/2 done, 0 failed, 0 running", last), last


# -- interruption ------------------------------------------------------------------------------------


def _grandchild_jobs(tmp_path: Path, n: int) -> tuple[list[str], list[Path]]:
    """Jobs whose shell starts ``sleep 300`` in the background and writes its pid."""
    pidfiles = [tmp_path / f"pid{i}" for i in range(1, n + 1)]
    cmd = f"sleep 300 & echo $! > {tmp_path}/pid{{#}}.tmp && mv {tmp_path}/pid{{#}}.tmp {tmp_path}/pid{{#}}; wait"
    return [cmd], pidfiles


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_stops_every_job_group_and_writes_the_log(tmp_path: Path, signum: int) -> None:
    log = tmp_path / "log"
    cmd, pidfiles = _grandchild_jobs(tmp_path, 3)
    grandchildren: list[int] = []
    shells: list[int] = []
    try:
        with runner("-j3", "--joblog", str(log), "--kill-grace", "2", *cmd, ":::", "1", "2", "3", "4", "5",
                    cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
            grandchildren = wait_files(pidfiles, proc)
            shells = children_of(proc.pid)
            assert len(shells) == 3
            # As a terminal's Ctrl-C: to the runner's process group (the
            # jobs lead groups of their own).
            os.killpg(proc.pid, signum)
            assert proc.wait(30) == -signum, "it ends by the signal it got"
        assert all(wait_dead(pid, 10) for pid in grandchildren + shells), "a job's process outlived the runner"
    finally:
        kill_all(grandchildren + shells)
    rows = joblog(log)
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3], "the stopped jobs are logged; 4 and 5 never started"
    assert all(r[6] == "-1" and r[7] == "15" for r in rows), rows


def test_a_second_stop_signal_kills_the_jobs_at_once(tmp_path: Path) -> None:
    # The jobs note each SIGTERM and go on; the grace is 300 s: only the
    # second Ctrl-C, killing them at once, lets the runner end.
    log = tmp_path / "log"
    pidfiles = [tmp_path / f"pid{i}" for i in (1, 2)]
    termed = [tmp_path / f"term{i}" for i in (1, 2)]
    cmd = (f"trap 'echo 1 >> {tmp_path}/term{{#}}' TERM; sleep 300 & echo $! > {tmp_path}/pid{{#}}.tmp && "
           f"mv {tmp_path}/pid{{#}}.tmp {tmp_path}/pid{{#}}; while :; do wait; done")  # fmt: skip
    grandchildren: list[int] = []
    try:
        with runner("-j2", "--joblog", str(log), "--kill-grace", "300", cmd, ":::", "1", "2",
                    cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
            grandchildren = wait_files(pidfiles, proc)
            proc.send_signal(signal.SIGINT)
            wait_files(termed, proc)
            assert proc.poll() is None, "the jobs outlive their SIGTERM"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == -signal.SIGINT
        assert all(wait_dead(pid, 10) for pid in grandchildren)
    finally:
        kill_all(grandchildren)
    rows = joblog(log)
    assert sorted(int(r[0]) for r in rows) == [1, 2]
    assert all(r[6] == "-1" and r[7] == "9" for r in rows), rows


def test_a_stop_signal_while_the_input_is_awaited(tmp_path: Path) -> None:
    # The runner waits for a third line from stdin (the writer keeps it
    # open) while two jobs run: SIGINT must not wait for that line.
    log = tmp_path / "log"
    cmd, pidfiles = _grandchild_jobs(tmp_path, 2)
    grandchildren: list[int] = []
    try:
        with runner("-j4", "--joblog", str(log), *cmd, cwd=tmp_path, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
            assert proc.stdin is not None
            proc.stdin.write(b"a\nb\n")
            proc.stdin.flush()
            grandchildren = wait_files(pidfiles, proc)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == -signal.SIGINT
        assert all(wait_dead(pid, 10) for pid in grandchildren)
    finally:
        kill_all(grandchildren)
    assert sorted(int(r[0]) for r in joblog(log)) == [1, 2]


def test_a_runner_killed_outright_leaves_no_job(tmp_path: Path) -> None:
    jobs: list[int] = []
    ready = tmp_path / "ready"
    try:
        # Direct jobs (sleep) and a shell job that runs until killed.
        with runner("-j3", "{}", ":::", "sleep 300", "sleep 301", f"touch {ready}; while :; do sleep 1; done",
                    cwd=tmp_path, stdout=subprocess.PIPE) as proc:  # fmt: skip
            deadline = time.monotonic() + 20
            while len(children_of(proc.pid)) < 3 or not ready.exists():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            jobs = children_of(proc.pid)
            proc.kill()
            assert proc.wait(30) == -signal.SIGKILL
        assert all(wait_dead(pid, 10) for pid in jobs), "a job outlived its runner (parentDeathSignal)"
    finally:
        kill_all(jobs)


def test_a_reader_that_goes_away_stops_the_run(tmp_path: Path) -> None:
    cmd, pidfiles = _grandchild_jobs(tmp_path, 1)
    grandchildren: list[int] = []
    try:
        with runner("--lb", f"{cmd[0].removesuffix('; wait')}; i=0; while [ $i -lt 3000 ]; do echo x; "
                    "sleep 0.01; i=$((i+1)); done", ":::", "a", cwd=tmp_path, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE) as proc:  # fmt: skip
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"x\n"
            grandchildren = wait_files(pidfiles, proc)
            proc.stdout.close()
            assert proc.wait(30) == -signal.SIGPIPE
        assert all(wait_dead(pid, 10) for pid in grandchildren)
    finally:
        kill_all(grandchildren)


# -- time limits and retries ---------------------------------------------------------------------------


def test_timeout_and_retries(tmp_path: Path) -> None:
    log, tries = tmp_path / "log", tmp_path / "tries"
    result = run("--joblog", str(log), "--timeout", "0.3", "--kill-grace", "0", "{}", ":::", "sleep 300", "true")
    assert result.returncode == 1
    rows = {r[8]: r for r in joblog(log)}
    assert (rows["sleep 300"][6], rows["sleep 300"][7]) == ("-1", "9")
    assert rows["true"][6] == "0"
    assert run("--retries", "3", f"echo . >> {tries}; exit 2", ":::", "a").returncode == 1
    assert tries.read_text() == ".\n.\n.\n", "three tries in all, as GNU parallel counts them"


# -- the console script and the help --------------------------------------------------------------------


def test_the_console_script() -> None:
    script = Path(sys.executable).parent / "ferroproc"
    if not script.exists():
        pytest.skip("the package is not installed with its console script here")
    result = subprocess.run([script, "jobs", "-k", "echo", ":::", "a", "b"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "a\nb\n")
    bare = subprocess.run([script], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "jobs" in bare.stderr
    assert subprocess.run([script, "nope"], capture_output=True, timeout=60).returncode == 2


def test_help_reads_well() -> None:
    result = run("--help")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("Usage: python -m ferroproc.jobs [OPTIONS] [COMMAND")
    for needle in ("::: VALUE", "{/.}", "--halt", "--joblog", "--resume-failed", "--line-buffer", "/bin/sh -c",
                   "Exit status", "ends by that same signal"):  # fmt: skip
        assert needle in text
    assert max(len(line) for line in text.splitlines()) <= 80


# -- in this process: nothing left behind ----------------------------------------------------------------


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize(
    "argv",
    [
        ["-j3", "--tag", "echo {}; echo E >&2; exit {}", ":::", "0", "1", "0", "2"],
        ["-j3", "-k", "--lb", "printf '{}\\n{}'", ":::", "a", "b", "c"],
        ["-j3", "-u", "echo", ":::", "a", "b"],
        ["-j2", "--halt", "now,fail=1", "--kill-grace", "0", "{}", ":::", "sleep 300 & wait", "exit 3"],
        ["-j2", "--timeout", "0.2", "--kill-grace", "0", "sh -c 'sleep 300 & wait'", ":::", "a"],
        ["-j2", "no-such-program-ferroproc", ":::", "a"],
        ["--memfree", "1k", "true", ":::", "a"],
    ],
)
def test_a_run_leaves_no_fd_child_or_thread(argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    # The autouse no_leaks fixture checks this process's fds and children.
    from ferroproc.jobs._cli import jobsMain

    threads = _threads()
    status = jobsMain(argv)
    assert status in (0, 1, 2, 3)
    assert _threads() == threads
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "our handlers are put back"
    capfd.readouterr()


def test_results_and_the_job_log_leave_nothing_open(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from ferroproc.jobs._cli import jobsMain

    log = tmp_path / "log"
    status = jobsMain(["--results", str(tmp_path / "out"), "--joblog", f"+{log}", "echo", ":::", "a", "b"])
    assert status == 0
    assert (tmp_path / "out/1/b/stdout").read_text() == "b\n"
    assert len(joblog(log)) == 2
    assert capfd.readouterr().out == ""


def test_an_input_that_cannot_be_read_stops_the_run_cleanly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from ferroproc.jobs._cli import jobsMain

    # A directory opens but cannot be read: the run stops with a message.
    status = jobsMain(["echo", ":::", "a", "::::", str(tmp_path)])
    assert status == 255
    assert "cannot read input file" in capfd.readouterr().err
