"""Process control (ferroproc's spawnProcess extensions): process groups and
kill-trees, time limits, resource limits and hygiene, cgroups, and what a
child cost. Every check is made by a real child reporting on itself."""

from __future__ import annotations

import os
import re
import resource
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Recorder
from helpers import CHILDREN, PY, alive, iterate_until, our_children, run_reactor, wait_dead

from ferroproc import reactor
from ferroproc.error import ProcessDone, ProcessExitedAlready, ProcessTerminated, ProcessTimedOut, ResourceUsage

pytestmark = pytest.mark.usefixtures("spawn_method")


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids of grandchildren a test starts: killed afterwards if a test failed
    to (they are not our children, so no_leaks does not see them)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def run(args: list[str], **options: Any) -> Recorder:
    """Spawn ``args`` with ``options`` and run until it has ended (at most 20 s)."""
    proto = Recorder()
    reactor.spawnProcess(proto, args[0], args, **options)
    run_reactor(proto.ended, timeout=20)
    return proto


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


# A child that starts a grandchild which leaves every pipe of ours behind
# (stdio on /dev/null: nothing of ours shows it is alive), prints its pid,
# then does what the test appends.
DETACHED_GRANDCHILD = """\
import subprocess, time
g = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(g.pid, flush=True)
"""


class LineRecorder(Recorder):
    """A Recorder that fires ``first_line`` with the first line of stdout."""

    def __init__(self) -> None:
        super().__init__()
        from ferroproc.defer import Deferred

        self.first_line: Deferred[int] = Deferred()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        super().childDataReceived(childFD, data)
        text = self.output()
        if not self.first_line.called and b"\n" in text:
            self.first_line.callback(int(text.split(b"\n", 1)[0]))


# -- process groups and sessions ---------------------------------------------


def test_process_group_true_makes_the_child_lead_a_new_group() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, PY, py("import os; print(os.getpgid(0), os.getsid(0))"), processGroup=True)
    assert t.pgid == t.pid
    pid = t.pid
    run_reactor(proto.ended)
    pgid, sid = map(int, proto.output().split())
    assert pgid == pid
    assert sid == os.getsid(0), "a new group, not a new session"


def test_new_session_makes_the_child_lead_a_session_and_a_group() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, PY, py("import os; print(os.getpgid(0), os.getsid(0))"), newSession=True)
    pid = t.pid
    assert t.pgid == pid
    run_reactor(proto.ended)
    assert list(map(int, proto.output().split())) == [pid, pid]


def test_a_child_can_join_an_existing_group() -> None:
    leader = Recorder(close_stdin=False)
    lt = reactor.spawnProcess(leader, "cat", ["cat"], processGroup=True)
    member = run(py("import os; print(os.getpgid(0))"), processGroup=lt.pid)
    assert int(member.output()) == lt.pid
    lt.closeStdin()
    run_reactor(leader.ended)


def test_without_a_group_option_the_child_is_in_ours() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, PY, py("import os; print(os.getpgid(0))"))
    assert t.pgid is None
    run_reactor(proto.ended)
    assert int(proto.output()) == os.getpgid(0)
    with pytest.raises(ValueError, match="group of its own"):
        t.signalGroup("TERM")


def test_signal_group_kills_a_grandchild_that_left_the_pipes(strays: list[int]) -> None:
    proto = LineRecorder()
    t = reactor.spawnProcess(proto, PY, py(DETACHED_GRANDCHILD + "time.sleep(60)\n"), processGroup=True)
    grandchild = run_reactor(proto.first_line)
    strays.append(grandchild)
    assert alive(grandchild)
    t.signalGroup("KILL")
    run_reactor(proto.ended)
    assert proto.ended_reason is not None
    assert proto.ended_reason.value.signal == signal.SIGKILL
    assert wait_dead(grandchild), "the grandchild outlived signalGroup"


def test_signal_group_once_the_group_is_empty_raises() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, "true", ["true"], processGroup=True)
    run_reactor(proto.ended)
    with pytest.raises(ProcessExitedAlready):
        t.signalGroup("KILL")


def test_signal_group_reaches_the_group_until_its_leader_is_reaped(strays: list[int]) -> None:
    # A grandchild holds stdout: the exited leader is reaped only when the
    # pipes close, and its group can be signalled until then.
    code = "import subprocess\ng = subprocess.Popen(['sleep', '60'])\nprint(g.pid, flush=True)"
    proto = LineRecorder()
    t = reactor.spawnProcess(proto, PY, py(code), processGroup=True)
    grandchild = run_reactor(proto.first_line)
    strays.append(grandchild)
    run_reactor(lambda: proto.exited_reason is not None)
    assert t.pid is None and alive(grandchild)
    t.signalGroup(signal.SIGTERM)
    assert wait_dead(grandchild)
    run_reactor(proto.ended)


def test_signal_group_never_reaches_a_group_whose_leader_was_reaped(strays: list[int]) -> None:
    # Reaped, its group id may be reused: signalGroup refuses, whoever is left.
    proto = LineRecorder()
    t = reactor.spawnProcess(proto, PY, py(DETACHED_GRANDCHILD), processGroup=True)
    grandchild = run_reactor(proto.first_line)
    strays.append(grandchild)
    run_reactor(proto.ended)
    assert alive(grandchild), "without killGroupOnExit the group outlives its leader"
    try:
        t.signalGroup(signal.SIGTERM)
    except ProcessExitedAlready:
        pass
    else:
        pytest.fail(f"signalGroup reached the group after processEnded: {proto.events}, pid {t.pid}, status {t.status}")
    assert alive(grandchild)


def test_kill_group_on_exit_ends_the_grandchildren(strays: list[int]) -> None:
    proto = LineRecorder()
    reactor.spawnProcess(proto, PY, py(DETACHED_GRANDCHILD), processGroup=True, killGroupOnExit=True)
    strays.append(run_reactor(proto.first_line))
    run_reactor(proto.ended)
    assert isinstance(proto.ended_reason.value, ProcessDone)  # type: ignore[union-attr]
    assert wait_dead(strays[0]), "the grandchild outlived its parent"


def test_kill_group_on_lost_ends_the_group_on_lose_connection(strays: list[int]) -> None:
    proto = LineRecorder()
    t = reactor.spawnProcess(
        proto, PY, py(DETACHED_GRANDCHILD + "time.sleep(60)\n"), newSession=True, killGroupOnLost=True
    )
    strays.append(run_reactor(proto.first_line))
    t.loseConnection()
    run_reactor(proto.ended)
    assert proto.ended_reason.value.signal == signal.SIGKILL  # type: ignore[union-attr]
    assert wait_dead(strays[0])


def test_group_options_are_checked_before_any_child_exists() -> None:
    def spawn(**kw: Any) -> None:
        reactor.spawnProcess(Recorder(), "true", ["true"], **kw)

    with pytest.raises(ValueError, match="killGroupOnExit needs processGroup=True or newSession=True"):
        spawn(killGroupOnExit=True)
    with pytest.raises(ValueError, match="killGroupOnLost needs"):
        spawn(killGroupOnLost=True, processGroup=os.getpgid(0))
    with pytest.raises(ValueError, match="newSession and processGroup exclude each other"):
        spawn(newSession=True, processGroup=True)
    with pytest.raises(ValueError, match="processGroup must be"):
        spawn(processGroup=-3)
    with pytest.raises(TypeError, match="newSession must be a bool"):
        spawn(newSession="yes")
    with pytest.raises(TypeError, match="unexpected keyword argument 'procesGroup'"):
        spawn(procesGroup=True)


def test_joining_a_group_that_does_not_exist_is_an_os_error() -> None:
    # A pid that cannot be a live group: beyond pid_max.
    with pytest.raises(OSError, match="process group"):
        reactor.spawnProcess(Recorder(), "true", ["true"], processGroup=2**22 + 7)


# -- time limits --------------------------------------------------------------


def test_timeout_terminates_the_child_and_says_so() -> None:
    started = time.monotonic()
    proto = run(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - started < 15
    reason = proto.ended_reason.value  # type: ignore[union-attr]
    assert isinstance(reason, ProcessTimedOut)
    assert isinstance(reason, ProcessTerminated)
    assert (reason.kind, reason.timeout, reason.killed) == ("wall", 0.3, False)
    assert reason.signal == signal.SIGTERM
    assert "ran longer than 0.3 seconds" in str(reason)
    assert isinstance(proto.exited_reason.value, ProcessTimedOut)  # type: ignore[union-attr]


def test_timeout_follows_with_sigkill_after_the_grace() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(30)"
    )
    proto = run(py(code), timeout=0.5, killGrace=0.2)
    reason = proto.ended_reason.value  # type: ignore[union-attr]
    assert isinstance(reason, ProcessTimedOut)
    assert reason.killed and reason.signal == signal.SIGKILL
    assert "SIGKILL after SIGTERM" in str(reason)


def test_a_child_that_ends_in_time_gets_its_own_reason() -> None:
    proto = run(["true"], timeout=30, idleTimeout=30)
    assert isinstance(proto.ended_reason.value, ProcessDone)  # type: ignore[union-attr]


def test_idle_timeout_counts_from_the_last_output() -> None:
    # Output every 0.1 s for 0.8 s keeps a 0.5 s idle limit away; then silence.
    code = "import time\nfor i in range(8):\n print(i, flush=True); time.sleep(0.1)\ntime.sleep(30)"
    proto = run(py(code), idleTimeout=0.5, killGrace=0)
    reason = proto.ended_reason.value  # type: ignore[union-attr]
    assert isinstance(reason, ProcessTimedOut)
    assert reason.kind == "idle"
    assert proto.output().split() == [str(i).encode() for i in range(8)], "all the output came first"
    assert reason.signal == signal.SIGKILL, "killGrace=0 sends SIGKILL at once"


def test_a_timeout_stops_the_whole_group(strays: list[int]) -> None:
    # The grandchild keeps the pipes open: without the group, processEnded
    # would wait for it.
    code = "import subprocess, time\ng = subprocess.Popen(['sleep', '60'])\nprint(g.pid, flush=True)\ntime.sleep(60)"
    proto = LineRecorder()
    reactor.spawnProcess(proto, PY, py(code), processGroup=True, timeout=0.5)
    strays.append(run_reactor(proto.first_line))
    run_reactor(proto.ended, timeout=15)
    assert isinstance(proto.ended_reason.value, ProcessTimedOut)  # type: ignore[union-attr]
    assert wait_dead(strays[0])


def test_grandchildren_that_ignore_sigterm_die_at_the_end_of_the_grace(strays: list[int]) -> None:
    # The leader dies of the SIGTERM at once; its grandchild ignores it and
    # holds stdout. The idle limit counts from the grandchild's line, so the
    # SIGTERM comes after it has set its disposition.
    script = "(trap '' TERM; exec sh -c 'echo $$; exec sleep 60') & wait"
    proto = LineRecorder()
    reactor.spawnProcess(proto, "sh", ["sh", "-c", script], processGroup=True, idleTimeout=1, killGrace=1)
    grandchild = run_reactor(proto.first_line)
    strays.append(grandchild)
    run_reactor(lambda: proto.exited_reason is not None)
    assert proto.exited_reason.value.signal == signal.SIGTERM  # type: ignore[union-attr]
    assert alive(grandchild), "it ignores SIGTERM"
    run_reactor(proto.ended)
    reason = proto.ended_reason.value  # type: ignore[union-attr]
    assert isinstance(reason, ProcessTimedOut)
    assert (reason.kind, reason.killed) == ("idle", False), "SIGTERM ended the child itself"
    assert wait_dead(grandchild), "the grace's SIGKILL did not reach the group"


class _Paused(Recorder):
    """Stops reading at the first output for ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause
        self.paused = False

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        super().childDataReceived(childFD, data)
        if not self.paused:
            self.paused = True
            self.transport.pauseProducing()
            reactor.callLater(self.pause, self.transport.resumeProducing)


def test_idle_time_does_not_count_while_we_do_not_read() -> None:
    # A busy child blocks on the full pipe we stopped reading, for longer
    # than its idle limit: that is our back-pressure, not its idleness.
    size = 3_276_800
    proto = _Paused(2.5)
    reactor.spawnProcess(proto, PY, [PY, str(CHILDREN / "ctl_bulk.py"), str(size)], idleTimeout=1)
    run_reactor(proto.ended, timeout=30)
    assert isinstance(proto.ended_reason.value, ProcessDone), proto.ended_reason  # type: ignore[union-attr]
    assert len(proto.output()) == size


class _BusyAtReady(Recorder):
    """At the child's first line: tells it to exit, then keeps the loop busy
    until it has (its exit unseen: this turn has polled already) and its idle
    limit has run out, so both come due in the same turn."""

    def __init__(self, idle: float) -> None:
        super().__init__()
        self.idle = idle

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        started = time.time()
        super().childDataReceived(childFD, data)
        pid = self.transport.pid
        self.transport.signalProcess("USR1")
        zombie = lambda: (pid, "Z") in our_children()  # noqa: E731
        deadline = time.monotonic() + 10
        while not zombie() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert zombie()
        while time.time() < started + self.idle + 0.05:
            time.sleep(0.005)


def test_a_child_that_exits_as_its_limit_runs_out_did_not_time_out() -> None:
    code = """\
    import os, signal, time
    signal.signal(signal.SIGUSR1, lambda *a: os._exit(0))
    print('ready', flush=True)
    time.sleep(60)
    """
    proto = _BusyAtReady(1.0)
    reactor.spawnProcess(proto, PY, py(code), idleTimeout=1, killGrace=5)
    run_reactor(proto.ended)
    assert isinstance(proto.ended_reason.value, ProcessDone), proto.ended_reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"idleTimeout": -1}, "idleTimeout must be positive"),
        ({"idleTimeout": "5"}, "idleTimeout must be a finite number"),
        ({"killGrace": float("nan")}, "killGrace must be a finite number"),
        ({"killGrace": -0.5}, "killGrace must be >= 0"),
    ],
)
def test_time_limits_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reactor.spawnProcess(Recorder(), "true", ["true"], **options)


# -- limits and hygiene ---------------------------------------------------------


def test_rlimits_are_what_the_child_sees() -> None:
    proto = run(["cat", "/proc/self/limits"], rlimits={"nofile": 77, "RLIMIT_CORE": (0, 1024 * 1024)})
    limits = {line[:26].strip(): line[26:].split() for line in proto.output().decode().splitlines()[1:]}
    assert limits["Max open files"][:2] == ["77", "77"]
    assert limits["Max core file size"][:2] == ["0", "1048576"]


def test_an_rlimit_can_be_unlimited() -> None:
    inf = resource.RLIM_INFINITY
    proto = run(["cat", "/proc/self/limits"], rlimits={resource.RLIMIT_STACK: (inf, inf)})
    line = next(x for x in proto.output().decode().splitlines() if x.startswith("Max stack size"))
    assert line.split()[3:5] == ["unlimited", "unlimited"]


def test_an_rlimit_the_kernel_refuses_fails_the_spawn_by_name() -> None:
    # No one may raise RLIMIT_NOFILE above fs.nr_open, not even root.
    with open("/proc/sys/fs/nr_open") as f:
        limit = int(f.read()) + 1
    with pytest.raises(PermissionError, match=rf"rlimits: cannot set RLIMIT_NOFILE \({limit}, {limit}\) in the child"):
        reactor.spawnProcess(Recorder(), "true", ["true"], rlimits={"nofile": limit})


@pytest.mark.parametrize(
    ("rlimits", "error", "message"),
    [
        ({"nofiles": 5}, ValueError, "unknown resource 'nofiles'"),
        ({"nofile": -2}, ValueError, r"rlimits\['nofile'\] must be an int"),
        ({"nofile": (10, 5)}, ValueError, "soft limit 10 is above the hard limit 5"),
        ({"nofile": 1.5}, ValueError, "must be an int"),
        ([("nofile", 5)], TypeError, "rlimits must be a dict"),
    ],
)
def test_rlimits_are_checked(rlimits: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        reactor.spawnProcess(Recorder(), "true", ["true"], rlimits=rlimits)


def test_umask_nice_affinity_and_no_new_privs_reach_the_child() -> None:
    code = """
        import os
        umask = os.umask(0)
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        print(oct(umask), os.nice(0), sorted(os.sched_getaffinity(0)), status["NoNewPrivs"].strip())
    """
    cpu = max(os.sched_getaffinity(0))
    proto = run(py(code), umask=0o027, nice=os.nice(0) + 3, cpuAffinity=[cpu], noNewPrivileges=True)
    assert proto.output().decode().split(maxsplit=2) == ["0o27", str(os.nice(0) + 3), f"[{cpu}] 1\n"]


def test_without_options_the_child_has_ours() -> None:
    code = "import os; print(oct(os.umask(0)), os.nice(0), len(os.sched_getaffinity(0)))"
    mask = os.umask(0o022)
    os.umask(mask)
    proto = run(py(code))
    assert proto.output().split() == [
        oct(mask).encode(),
        str(os.nice(0)).encode(),
        str(len(os.sched_getaffinity(0))).encode(),
    ]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"umask": 0o1000}, ValueError, "umask must be an int from 0 to 0o777"),
        ({"nice": 20}, ValueError, "nice must be an int from -20 to 19"),
        ({"cpuAffinity": []}, ValueError, "cpuAffinity must name CPUs"),
        ({"cpuAffinity": "0"}, TypeError, "cpuAffinity must be an iterable"),
        ({"parentDeathSignal": "SIGNOPE"}, ValueError, "parentDeathSignal: unknown signal name 'SIGNOPE'"),
        ({"noNewPrivileges": 1}, TypeError, "noNewPrivileges must be a bool"),
        ({"cgroup": "/nonexistent/group"}, ValueError, "cgroup '/nonexistent/group' is not a directory"),
    ],
)
def test_hygiene_options_are_checked(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        reactor.spawnProcess(Recorder(), "true", ["true"], **options)


def test_an_affinity_of_cpus_we_do_not_have_fails_by_name() -> None:
    with pytest.raises(OSError, match="cpuAffinity"):
        reactor.spawnProcess(Recorder(), "true", ["true"], cpuAffinity=[1023])


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("RTMIN+1", signal.SIGRTMIN + 1),
        ("sigrtmax-2", signal.SIGRTMAX - 2),
        ("usr1", signal.SIGUSR1),
        ("SIGTERM", signal.SIGTERM),
        (signal.SIGHUP, signal.SIGHUP),
        (int(signal.SIGKILL), signal.SIGKILL),
    ],
)
def test_parent_death_signal_takes_what_signal_process_takes(name: str | int, number: int) -> None:
    # One parser: whatever signalProcess accepts, as the child sees it.
    code = """
        import ctypes, signal
        sig = ctypes.c_int()
        ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
        print(sig.value)
    """
    proto = run(py(code), parentDeathSignal=name)
    assert int(proto.output()) == number


@pytest.mark.parametrize("name", ["NOPE", "RTMIN+999"])
def test_an_unknown_signal_name_is_refused_alike_everywhere(name: str) -> None:
    with pytest.raises(ValueError, match=f"parentDeathSignal: unknown signal name '{re.escape(name)}'"):
        reactor.spawnProcess(Recorder(), "true", ["true"], parentDeathSignal=name)
    proto = Recorder()
    t = reactor.spawnProcess(proto, "sleep", ["sleep", "30"], childFDs={})
    try:
        with pytest.raises(ValueError, match=f"signalProcess: unknown signal name '{re.escape(name)}'"):
            t.signalProcess(name)
    finally:
        t.signalProcess("KILL")
        run_reactor(proto.ended)


@pytest.mark.parametrize("bad", [0, True, 1.5])
def test_a_parent_death_signal_that_is_no_signal_is_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="parentDeathSignal"):
        reactor.spawnProcess(Recorder(), "true", ["true"], parentDeathSignal=bad)


def test_parent_death_signal_kills_the_child_when_its_parent_dies(tmp_path: Path) -> None:
    # A middle process spawns the child through ferroproc, then dies at once.
    script = tmp_path / "middle.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from ferroproc import reactor
            from ferroproc.protocol import ProcessProtocol
            t = reactor.spawnProcess(ProcessProtocol(), "sleep", ["sleep", "60"], childFDs={},
                                     parentDeathSignal="KILL")
            print(t.pid, flush=True)
            os._exit(0)
            """
        )
    )
    proto = run([PY, str(script)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert isinstance(proto.ended_reason.value, ProcessDone), proto.output(2)  # type: ignore[union-attr]
    orphan = int(proto.output())
    try:
        assert wait_dead(orphan), "the child outlived its parent"
    finally:
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)


# -- cgroups --------------------------------------------------------------------


def cgroup2_root() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    return None


@pytest.fixture
def cgroup() -> Iterator[Path]:
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    path = root / f"ferroproc-test-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup under {root}: {e}")
    yield path
    iterate_until(lambda: not (path / "cgroup.procs").read_text(), 5.0)
    path.rmdir()


def test_a_child_starts_in_the_cgroup_given(cgroup: Path) -> None:
    root = cgroup2_root()
    assert root is not None
    proto = run(["cat", "/proc/self/cgroup"], cgroup=str(cgroup))
    line = next(x for x in proto.output().decode().splitlines() if x.startswith("0::"))
    assert line == f"0::/{cgroup.relative_to(root)}"


def cgroup1_directory() -> Path | None:
    """A directory of a cgroup v1 hierarchy, if one is mounted."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup":
                return Path(left.split()[4])
    return None


def test_a_directory_that_is_not_a_cgroup_is_named_and_refused(tmp_path: Path) -> None:
    # The kernel would only say "Bad file descriptor" when starting the child.
    with pytest.raises(ValueError, match=f"cgroup '{tmp_path}' is not a cgroup v2 directory"):
        reactor.spawnProcess(Recorder(), "true", ["true"], cgroup=tmp_path)


def test_a_cgroup_v1_directory_is_named_and_refused() -> None:
    v1 = cgroup1_directory()
    if v1 is None:
        pytest.skip("no cgroup v1 hierarchy is mounted")
    with pytest.raises(ValueError, match=f"cgroup '{v1}' is not a cgroup v2 directory"):
        reactor.spawnProcess(Recorder(), "true", ["true"], cgroup=v1)


# -- what a child cost ------------------------------------------------------------


def test_resource_usage_comes_with_the_reason_and_on_the_transport() -> None:
    # Burn ~0.2 s of CPU and touch 512 MiB: more than this parent holds
    # (ru_maxrss starts at the parent's resident size, see ResourceUsage).
    code = """
        import time
        b = bytearray(512 << 20)
        for i in range(0, len(b), 4096):
            b[i] = 1
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
    """
    proto = Recorder()
    t = reactor.spawnProcess(proto, PY, py(code))
    assert t.resourceUsage is None
    run_reactor(proto.ended)
    usage = proto.ended_reason.value.resourceUsage  # type: ignore[union-attr]
    assert isinstance(usage, ResourceUsage)
    assert usage == t.resourceUsage
    assert usage.userTime + usage.systemTime >= 0.2
    assert usage.maxRSS >= 512 << 20
    assert proto.exited_reason.value.resourceUsage == usage  # type: ignore[union-attr]


def test_a_killed_child_has_its_usage_too() -> None:
    proto = Recorder()
    t = reactor.spawnProcess(proto, "sleep", ["sleep", "30"])
    t.signalProcess("KILL")
    run_reactor(proto.ended)
    reason = proto.ended_reason.value  # type: ignore[union-attr]
    assert isinstance(reason, ProcessTerminated)
    assert isinstance(reason.resourceUsage, ResourceUsage)
    assert reason.resourceUsage.maxRSS > 0
