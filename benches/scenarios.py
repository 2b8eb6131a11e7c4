"""What is measured: scenarios, their cases, sizes (full and --quick), metrics and targets.

This file is the single place to change a size, a run count or a target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GiB, MiB = 1 << 30, 1 << 20

#: Column order of every table; a case lists the peers that take part in it.
PEERS = [
    "ferroproc",
    "ferroproc-posix",
    "twisted",
    "asyncio",
    "asyncio-ferroproc",
    "ferroproc.asyncio",
    "uvloop",
    "uvloop-ferroproc",
    "subprocess",
    "native",
    "native-clone",
    "native-fork",
    "native-64k",
    "native-mt",
    "xargs",
    "parallel",
    "ferroproc-dask",
]
#: Event-loop peers (the S3 target is against the best of these).
EVENT_LOOPS = ["twisted", "asyncio", "uvloop"]

PEER_NOTES = {
    "ferroproc": "ferroproc's reactor; the same code as the Twisted runner with the imports swapped",
    "ferroproc-posix": "ferroproc with posix_spawn forced (`reactor._spawnMethod = 'posix_spawn'`), the path "
    "that copies the fd table; informative (S6, S8)",
    "twisted": "Twisted's epoll reactor (`epollreactor.install()`), `reactor.spawnProcess`",
    "asyncio": "`asyncio.create_subprocess_exec` + streams, default loop (3.11: ThreadedChildWatcher)",
    "asyncio-ferroproc": "the asyncio code, unchanged, on `ferroproc.asyncio.new_event_loop()` (asyncio's loop "
    "whose subprocesses are ferroproc's)",
    "ferroproc.asyncio": "the asyncio code on asyncio's own loop, spawning with "
    "`ferroproc.asyncio.create_subprocess_exec` (ferroproc's `Process`)",
    "uvloop-ferroproc": "the asyncio code on a uvloop loop, with `ferroproc.asyncio.create_subprocess_exec`",
    "uvloop": "the asyncio code on `uvloop.new_event_loop`",
    "subprocess": "blocking `subprocess.Popen`; threads only for S1's 64-at-once and S3's writer",
    "native": "C, gcc -O2 at bench time: posix_spawn (clone-vfork for uid/gid), pidfd + epoll/poll",
    "native-clone": "C, clone(CLONE_VM|CLONE_VFORK|CLONE_FILES) + close_range(CLOSE_RANGE_UNSHARE), stdio "
    "sent over a socket pair (SCM_RIGHTS): ferroproc's default path with no Python (S1, S6, S8, S9)",
    "native-fork": "C, plain fork()+exec with the same child setup (what a fork-based engine pays)",
    "native-64k": "C, S3 with the kernel's default 64 KiB pipes (native uses 1 MiB, F_SETPIPE_SZ)",
    "native-mt": "S10: the C job runner as 4 threads, each a runner of its own with a quarter of the slots "
    "(a spawn's wait for the child's exec then blocks one of them, not all)",
    "xargs": "S10: `xargs -P 16 -n 1` (GNU findutils), lines on its stdin",
    "parallel": "S10: GNU parallel `-j 16 -N0` (Debian's package), default grouped output; n/a where absent",
    "ferroproc-dask": "S12: `ferroproc.jobs.dask.DaskRunner` on a Dask `LocalCluster` of 2 worker processes "
    "(1 thread each) on this machine; n/a without Dask distributed (`pip install 'ferroproc[dask]'`)",
}


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "higher", "lower" or "" (informative only)
    fmt: str = "{:,.0f}"
    #: Computed from a run's other values when the run does not report it.
    derive: Callable[[dict[str, Any]], float] | None = None

    def format(self, value: float | None) -> str:
        return "—" if value is None else self.fmt.format(value)


@dataclass
class Case:
    scenario: str
    name: str
    title: str
    peers: list[str]
    params: dict[str, Any]
    quick: dict[str, Any]
    metrics: list[Metric]
    runs: int = 5  # measured runs per peer, after the warm-up
    warmup: bool = True
    warmup_params: dict[str, Any] = field(default_factory=dict)  # overrides for the warm-up run
    timeout: float = 300.0  # per run, seconds

    @property
    def key(self) -> str:
        return f"{self.scenario}/{self.name}"

    def params_for(self, quick: bool) -> dict[str, Any]:
        return {**self.params, **self.quick} if quick else dict(self.params)


@dataclass
class Curve:
    """Some cases of a scenario read as one curve: ``x_param`` of each case on the x axis, a
    line per peer, for each metric in ``metrics`` (a chart panel and a table each)."""

    cases: list[str]  # case names, in x order
    x_param: str
    x_label: str
    metrics: list[str]
    log_x: bool = False  # symlog when an x is 0
    log_y: bool = False


@dataclass
class Scenario:
    id: str
    title: str
    about: str
    cases: list[Case]
    curves: list[Curve] = field(default_factory=list)


RATE = Metric("rate", "spawn rate", "spawns/s", "higher")
MBPS = Metric("mbps", "throughput", "MB/s", "higher")
RSS = Metric("rss_mib", "peak RSS growth", "MiB", "lower", "{:,.1f}")
US = Metric("us", "round trip", "µs", "lower", "{:,.1f}")
START_ALL = Metric("start_all", "start all", "s", "lower", "{:,.2f}")
CPU = Metric("cpu", "parent CPU", "s", "lower", "{:,.2f}")
THREADS = Metric("threads", "threads", "", "", "{:,.0f}")
PER_EVENT = Metric("per_event_us", "CPU per child", "µs", "lower", "{:,.0f}")
COMPLETED = Metric("completed", "completed OK", "children", "", "{:,.0f}")
FDS = Metric("fds", "open fds", "", "", "{:,.0f}")
JOBS_RATE = Metric("rate", "jobs", "jobs/s", "higher")
CPU_US = Metric("cpu_us", "parent CPU per job", "µs", "lower", "{:,.0f}")
RSS_MAX = Metric("rss_max", "runner RSS, highest", "MiB", "lower", "{:,.1f}")
RSS_GROWTH = Metric("rss_growth", "RSS growth, first to last tenth", "MiB", "lower", "{:,.2f}")
LEAKS = Metric("leaks", "fds + children + threads left", "", "lower", "{:,.0f}")
START_US = Metric(
    "start_us", "start cost per child", "µs", "lower", "{:,.0f}", derive=lambda v: v["start_all"] / v["n"] * 1e6
)

#: S8's levels: fds the parent holds while it spawns (RLIMIT_NOFILE's hard limit here is 20,000).
S8_FDS = [("0", 0), ("1k", 1000), ("10k", 10000), ("19k", 19000)]
S8_PEERS = ["ferroproc", "ferroproc-posix", "twisted", "asyncio", "uvloop", "subprocess", "native", "native-clone"]
#: S8's other two curves: the fds opened after the import and inherited by a forked child
#: that spawns, or opened before the peer is imported (Python peers: the runner does both).
S8_WHERE = [("fork", "a forked child, its parent holding the fds"), ("import", "fds opened before the import")]
S8_WHERE_PEERS = ["ferroproc", "ferroproc-posix", "twisted", "asyncio", "uvloop", "subprocess"]
#: S6's curve: how many children are alive at once.
S6_CURVE = [("curve-100", 100), ("curve-1k", 1000), ("curve-5k", 5000), ("curve-10k", 10000)]
S6_CURVE_PEERS = ["ferroproc", "ferroproc-posix", "twisted", "subprocess", "native", "native-clone"]

ALL_PY = [
    "ferroproc",
    "twisted",
    "asyncio",
    "asyncio-ferroproc",
    "ferroproc.asyncio",
    "uvloop",
    "uvloop-ferroproc",
    "subprocess",
    "native",
]
#: ferroproc under asyncio (issue 14): asyncio's loop, and uvloop's.
ASYNCIO_ON_FERROPROC = ["asyncio-ferroproc", "ferroproc.asyncio", "uvloop-ferroproc"]

SCENARIOS = [
    Scenario(
        "S1",
        "spawn rate",
        "2,000 × `/bin/true` with stdin/stdout/stderr pipes (each API's usual capture form), "
        "one at a time and up to 64 alive at once; a spawn ends when the child is reaped and "
        "its pipes are at EOF.",
        [
            Case(
                "S1",
                "seq",
                "one at a time",
                ALL_PY + ["native-clone"],
                {"n": 2000, "conc": 1},
                {"n": 60},
                [RATE],
                warmup_params={"n": 300},
            ),
            Case(
                "S1", "c64", "64 at once", ALL_PY, {"n": 2000, "conc": 64}, {"n": 128}, [RATE], warmup_params={"n": 300}
            ),
        ],
    ),
    Scenario(
        "S2",
        "spawn rate from a 2 GiB parent",
        "The runner first allocates 2 GiB and touches every page; then `/bin/true` one at a time, "
        "up to 400 spawns or 1 s (fork-based peers are ~60× slower). 3 runs per peer, no warm-up "
        "(S1 warmed the binaries). PTY: `usePTY=True` / `pty.openpty()` + `start_new_session`. "
        "uid/gid: 65534/65534 (root only).",
        [
            Case(
                "S2",
                kind,
                title,
                peers,
                {"n": 400, "conc": 1, "mem_mib": 2048, "budget": 1.0, "kind": kind},
                {"n": 20, "mem_mib": 64, "budget": 0.5},
                [RATE],
                runs=3,
                warmup=False,
            )
            for kind, title, peers in [
                ("pipes", "pipes", ALL_PY + ["native-fork"]),
                ("pty", "PTY", ALL_PY + ["native-fork"]),
                ("creds", "uid/gid", ALL_PY + ["native-fork"]),
            ]
        ]
        # The same spawns from a 64 MiB parent, for ferroproc and the C
        # baselines: the spawn cost must not depend on the parent's size.
        + [
            Case(
                "S2",
                f"{kind}-64m",
                f"{title}, 64 MiB parent",
                ["ferroproc", "native", "native-fork"],
                {"n": 400, "conc": 1, "mem_mib": 64, "budget": 1.0, "kind": kind},
                {"n": 20, "mem_mib": 64, "budget": 0.5},
                [RATE],
                runs=3,
                warmup=False,
            )
            for kind, title in [("pipes", "pipes"), ("pty", "PTY"), ("creds", "uid/gid")]
        ],
    ),
    Scenario(
        "S3",
        "pipe throughput",
        "1 GiB written into `cat` in 256 KiB chunks (with flow control) while all of its output is read.",
        [
            Case(
                "S3",
                "cat",
                "1 GiB through cat",
                ALL_PY + ["native-64k"],
                {"bytes": GiB, "chunk": 256 * 1024},
                {"bytes": 32 * MiB},
                [MBPS],
            ),
        ],
    ),
    Scenario(
        "S4",
        "capture",
        "Full output of `head -c 256M /dev/zero` via `utils.getProcessOutput` (asyncio: "
        "`communicate()`, subprocess: `check_output`). RSS is the growth of the runner's peak "
        "RSS over its RSS just before the spawn (the peak is reset there; see README); the "
        "captured data is 256 MiB.",
        [
            Case("S4", "head", "capture 256 MiB", ALL_PY, {"bytes": 256 * MiB}, {"bytes": 16 * MiB}, [MBPS, RSS]),
        ],
    ),
    Scenario(
        "S5",
        "round trip",
        "20,000 line echoes through `cat` (the same child for every peer): write a line, wait "
        "for it to come back, repeat. Pinned: parent and child on one CPU. Unpinned is "
        "bimodal: on an idle machine the scheduler puts them on different CPUs and every "
        "round trip pays two cross-CPU wakeups (~20-50 µs on this VM); when the other core "
        "is busy they share one CPU (~6-8 µs).",
        [
            Case("S5", "pinned", "pinned to 1 CPU", ALL_PY, {"n": 20000, "pin": 0}, {"n": 500}, [US]),
            Case("S5", "unpinned", "unpinned", ALL_PY, {"n": 20000, "pin": -1}, {"n": 500}, [US]),
        ],
    ),
    Scenario(
        "S6",
        "scale",
        "1,000 concurrent `sleep 2` with three pipes each (3 runs per peer, no warm-up), and "
        "10,000 concurrent `sleep 1` with stdio on /dev/null (no pipes: 10,000 × 3 pipes would "
        "pass RLIMIT_NOFILE's hard limit; 2 runs per peer, no warm-up). Threads are counted "
        "once all are started; CPU is the parent's user+system time from the first spawn to the "
        "last exit. The curve: 100, 1,000, 5,000 and 10,000 × `sleep 3600` on /dev/null, all "
        "SIGKILLed as soon as the last has started (so every one is alive while the others start; "
        "ferroproc and native-clone hold a pidfd per child, so the fd table grows with them); "
        "start cost per child = start-all ÷ n.",
        [
            Case(
                "S6",
                "1k",
                "1,000 × sleep 2",
                ALL_PY + ["ferroproc-posix"],
                {"n": 1000, "sleep": 2, "stdio": "pipes", "nofile": True},
                {"n": 50, "sleep": 0.2},
                [START_ALL, RSS, CPU, THREADS],
                runs=3,
                warmup=False,
            ),
            Case(
                "S6",
                "10k",
                "10,000 × sleep 1",
                ALL_PY + ["ferroproc-posix"],
                {"n": 10000, "sleep": 1, "stdio": "null", "nofile": True},
                {"n": 200, "sleep": 0.2},
                [START_ALL, RSS, PER_EVENT, THREADS, COMPLETED],
                runs=2,
                warmup=False,
                timeout=240,
            ),
        ]
        + [
            Case(
                "S6",
                name,
                f"{n:,} × sleep 3600, killed once all started",
                S6_CURVE_PEERS,
                {"n": n, "sleep": 3600, "stdio": "null", "nofile": True, "kill": True},
                {"n": n // 50},
                [START_US, START_ALL, RSS, PER_EVENT],
                runs=3 if n <= 1000 else 2,
                warmup=False,
                timeout=240,
            )
            for name, n in S6_CURVE
        ],
        curves=[
            Curve(
                [name for name, _ in S6_CURVE], "n", "children alive", ["start_us", "rss_mib"], log_x=True, log_y=True
            )
        ],
    ),
    Scenario(
        "S7",
        "pipeline",
        "`head -c 1G /dev/zero | cat | wc -c`. relay: every child on its own pipes, the parent "
        "writes what it reads from one into the next, with flow control (the upstream "
        "transport is registered as the producer of the downstream stdin). wired: `os.pipe()` "
        "ends passed as ints in `childFDs` (subprocess: `stdout=PIPE` → `stdin=`; native: "
        "pipe2 + posix_spawn like a shell), so the data never enters the parent. api: "
        "`ferroproc.pipeline.getPipelineOutput` (every stage's status and stderr kept), "
        "against the same C wiring.",
        [
            Case(
                "S7",
                "relay",
                "relayed by callbacks",
                ["ferroproc", "twisted"],
                {"bytes": GiB, "mode": "relay"},
                {"bytes": 32 * MiB},
                [MBPS],
                timeout=90,
            ),
            Case(
                "S7",
                "wired",
                "wired child to child",
                ["ferroproc", "twisted", "subprocess", "native"],
                {"bytes": GiB, "mode": "wired"},
                {"bytes": 32 * MiB},
                [MBPS],
                timeout=90,
            ),
            Case(
                "S7",
                "api",
                "ferroproc.pipeline vs a shell's wiring",
                ["ferroproc", "native"],
                {"bytes": GiB, "mode": "api"},
                {"bytes": 32 * MiB},
                [MBPS],
                timeout=90,
            ),
        ],
    ),
    Scenario(
        "S8",
        "spawn rate against open fds",
        "S1 one at a time (`/bin/true` with three pipes, ≤1,000 spawns or 1.5 s) from a parent "
        "holding 0, 1,000, 10,000 or 19,000 open fds (RLIMIT_NOFILE raised to its hard limit, "
        "20,000 here). The held fds: fds ÷ 8 live `cat` children started through the peer's own "
        "API with three pipes each (plus a pidfd for ferroproc and the C baselines: about half "
        "the fds), each known to be running once it has echoed a byte; then dup'd /dev/null fds "
        "(close-on-exec) up to the level. After the measurement their stdin is closed and they "
        "are reaped. The 0 level is the interpreter's own 5-15 fds. 3 runs per peer. Two more "
        "curves (Python peers) hold dup'd /dev/null fds only: opened after the peer's import "
        "by a parent that then forks, the forked child measuring (a pre-fork server's worker); "
        "and opened before the peer is imported.",
        [
            Case(
                "S8",
                name,
                f"{fds:,} open fds",
                S8_PEERS,
                {"n": 1000, "conc": 1, "budget": 1.5, "fds": fds, "nofile": True},
                {"n": 60, "budget": 0.3, "fds": fds // 10},
                [RATE, FDS],
                runs=3,
                warmup=fds == 0,
                warmup_params={"n": 300},
                timeout=240,
            )
            for name, fds in S8_FDS
        ]
        + [
            Case(
                "S8",
                f"{where}-{name}",
                f"{fds:,} open fds, {title}",
                S8_WHERE_PEERS,
                {"n": 1000, "conc": 1, "budget": 1.5, "held": fds, "fds_at": where, "nofile": True},
                {"n": 60, "budget": 0.3, "held": fds // 10},
                [RATE, FDS],
                runs=3,
                warmup=False,
                timeout=240,
            )
            for where, title in S8_WHERE
            for name, fds in S8_FDS
        ],
        curves=[Curve([name for name, _ in S8_FDS], "fds", "open fds in the parent", ["rate"], log_x=True)]
        + [
            Curve([f"{where}-{name}" for name, _ in S8_FDS], "held", title, ["rate"], log_x=True)
            for where, title in S8_WHERE
        ],
    ),
    Scenario(
        "S9",
        "spawn with every option, from a 2 GiB parent",
        "ferroproc's spawn options all set at once (`processGroup=True, killGroupOnExit, "
        "timeout=60, idleTimeout=60, rlimits={nofile: 1024, core: 0, cpu: 60}, umask=0o077, "
        "nice=<our own>, cpuAffinity=<every usable CPU>, parentDeathSignal=SIGTERM, "
        "noNewPrivileges=True`; the cgroup case adds `cgroup=` a fresh cgroup v2 group) on "
        "`/bin/true` with pipes, one at a time from a parent holding 2 GiB of touched memory "
        "(≤400 spawns or 1 s, 5 runs), against `plain`: the same spawns with no option from a "
        "small parent (S1 one at a time). native-clone makes the same child-side calls in C "
        "(no timers: those live in ferroproc's parent).",
        [
            Case(
                "S9",
                "plain",
                "no options, small parent",
                ["ferroproc", "native-clone"],
                {"n": 400, "conc": 1, "budget": 1.0},
                {"n": 20, "budget": 0.5},
                [RATE],
                warmup_params={"n": 100},
            ),
            Case(
                "S9",
                "options",
                "every option, 2 GiB parent",
                ["ferroproc", "native-clone"],
                {"n": 400, "conc": 1, "budget": 1.0, "mem_mib": 2048, "options": "all"},
                {"n": 20, "budget": 0.5, "mem_mib": 64},
                [RATE],
                warmup=False,
            ),
            Case(
                "S9",
                "options-cgroup",
                "every option + cgroup, 2 GiB parent",
                ["ferroproc", "native-clone"],
                {"n": 400, "conc": 1, "budget": 1.0, "mem_mib": 2048, "options": "all+cgroup"},
                {"n": 20, "budget": 0.5, "mem_mib": 64},
                [RATE],
                warmup=False,
            ),
        ],
    ),
]

S10_PEERS = ["ferroproc", "subprocess", "asyncio", "uvloop", "xargs", "parallel", "native", "native-mt"]
SCENARIOS += [
    Scenario(
        "S10",
        "many jobs",
        "2,000 × `/bin/true` through a job runner, 16 at a time and one at a time; every job's stdout "
        "and stderr captured and its exit status checked. ferroproc: `ferroproc.jobs.runJobs` (a new "
        "`Job` per item from a generator, `onResult` counting failures); subprocess: "
        "`ThreadPoolExecutor(16)` + `subprocess.run(capture_output=True)` (one at a time: a loop); "
        "asyncio, uvloop: `Semaphore(16)` + `create_subprocess_exec` + `communicate()`; xargs `-P 16 -n 1` "
        "and GNU parallel `-j 16 -N0` (their CPU includes the jobs'); native: a C runner doing ferroproc's "
        "work per job (clone-files spawn, stdio over a socket, /dev/null stdin, pipes captured, own "
        "group, PDEATHSIG, pidfd + epoll, group killed on exit), one thread; native-mt: the same as 4 "
        "threads, each a runner with a quarter of the slots. ferroproc starts jobs on 4 spawner threads "
        "(16 at a time) and inline (one at a time). Parent CPU per job excludes the jobs.",
        [
            Case("S10", "c16", "16 at a time", S10_PEERS, {"n": 2000, "conc": 16}, {"n": 200}, [JOBS_RATE, CPU_US]),
            Case(
                "S10",
                "seq",
                "one at a time",
                ["ferroproc", "subprocess", "native"],
                {"n": 2000, "conc": 1},
                {"n": 100},
                [JOBS_RATE, CPU_US],
            ),
        ],
    ),
    Scenario(
        "S11",
        "100,000 jobs with a job log",
        "100,000 × `/bin/true`, 16 at a time, through `ferroproc.jobs` with a GNU parallel job log "
        "(`onResult` counting failures, nothing kept): the runner's RSS read at every tenth of the "
        "jobs (the highest, and the growth from the first tenth to the last), and what is left once "
        "the summary has fired (fds, children, threads beyond the main one; counted from after an empty "
        "run, which makes the process's spawn channels). 2 runs, no warm-up.",
        [
            Case(
                "S11",
                "100k",
                "100,000 jobs, job log",
                ["ferroproc"],
                {"n": 100000, "conc": 16, "samples": 10},
                {"n": 5000},
                [RSS_MAX, RSS_GROWTH, LEAKS, JOBS_RATE],
                runs=2,
                warmup=False,
                timeout=600,
            ),
        ],
    ),
]

SCENARIOS += [
    Scenario(
        "S12",
        "many jobs on a Dask cluster",
        "20,000 × `/bin/true`, 16 at a time in all: `ferroproc.jobs.dask.DaskRunner` on a Dask "
        "`LocalCluster` of 2 worker processes with 1 thread each (each batch runs 8 at a time; batches "
        "sized by the runner), against the local runner (`ferroproc.jobs.runJobs`, 16 at a time) on the "
        "same machine. The cluster is started and warmed with 100 jobs before the clock starts; its "
        "start is reported on its own. Parent CPU per job is this process's: the client's and the "
        "scheduler's (`LocalCluster` runs it here), the workers' excluded. 3 runs.",
        [
            Case(
                "S12",
                "20k",
                "20,000 jobs, 2 workers",
                ["ferroproc", "ferroproc-dask"],
                {"n": 20000, "conc": 16},
                {"n": 1000},
                [JOBS_RATE, CPU_US, Metric("cluster_start", "cluster start", "s", "", "{:,.2f}")],
                runs=3,
                warmup=False,
                timeout=600,
            ),
        ],
    ),
]

# --- targets -------------------------------------------------------------------------------

Median = Callable[[str, str, str], "float | None"]  # (case key, peer, metric key) -> median


@dataclass
class Target:
    """``subject's value / reference`` compared with ``bound`` (``op`` is ">=" or "<=");
    the subject is ferroproc's reactor unless said otherwise."""

    case: str
    metric: str
    text: str
    op: str
    bound: float
    reference: Callable[[Median], tuple[float | None, str]]  # value and what it is
    subject: str = "ferroproc"

    def evaluate(self, med: Median) -> tuple[float | None, bool | None, str]:
        """(ratio, met, reference name); ratio and met are None when something is n/a."""
        ours = med(self.case, self.subject, self.metric)
        ref, ref_name = self.reference(med)
        if ours is None or not ref:
            return None, None, ref_name
        ratio = ours / ref
        return ratio, (ratio >= self.bound if self.op == ">=" else ratio <= self.bound), ref_name


def peer_ref(case: str, peer: str, metric: str) -> Callable[[Median], tuple[float | None, str]]:
    return lambda med: (med(case, peer, metric), peer)


def best_event_loop(case: str, metric: str) -> Callable[[Median], tuple[float | None, str]]:
    def ref(med: Median) -> tuple[float | None, str]:
        vals = [(v, p) for p in EVENT_LOOPS if (v := med(case, p, metric)) is not None]
        return max(vals) if vals else (None, "best event loop")

    return ref


def _targets() -> list[Target]:
    t: list[Target] = []
    for case in ("S1/seq", "S1/c64"):
        t += [
            Target(case, "rate", "≥1.25× twisted", ">=", 1.25, peer_ref(case, "twisted", "rate")),
            Target(case, "rate", "≥1.5× asyncio", ">=", 1.5, peer_ref(case, "asyncio", "rate")),
            Target(case, "rate", "≥0.95× native", ">=", 0.95, peer_ref(case, "native", "rate")),
        ]
    for peer in ASYNCIO_ON_FERROPROC:
        t.append(
            Target("S1/seq", "rate", f"{peer} ≥1.5× asyncio", ">=", 1.5, peer_ref("S1/seq", "asyncio", "rate"), peer)
        )
        t.append(Target("S1/seq", "rate", f"{peer} ≥3× uvloop", ">=", 3.0, peer_ref("S1/seq", "uvloop", "rate"), peer))
        # Issue 22: asyncio code through ferroproc.asyncio's Process, 64 at once.
        t.append(
            Target("S1/c64", "rate", f"{peer} ≥1.5× asyncio", ">=", 1.5, peer_ref("S1/c64", "asyncio", "rate"), peer)
        )
        t.append(
            Target(
                "S5/unpinned", "us", f"{peer} ≤0.5× asyncio", "<=", 0.5, peer_ref("S5/unpinned", "asyncio", "us"), peer
            )
        )
        t.append(
            Target(
                "S6/1k", "rss_mib", f"{peer} ≤ asyncio's RSS", "<=", 1.0, peer_ref("S6/1k", "asyncio", "rss_mib"), peer
            )
        )
        t.append(
            Target(
                "S2/pipes",
                "rate",
                f"{peer} ≥0.9× own S1 rate",
                ">=",
                0.9,
                lambda med, p=peer: (med("S1/seq", p, "rate"), f"{p} S1 one-at-a-time"),  # type: ignore[misc]
                peer,
            )
        )
    for kind in ("pipes", "pty", "creds"):
        t.append(
            Target(
                f"S2/{kind}",
                "rate",
                "≥0.9× own S1 rate",
                ">=",
                0.9,
                lambda med: (med("S1/seq", "ferroproc", "rate"), "ferroproc S1 one-at-a-time"),
            )
        )
    t.append(Target("S3/cat", "mbps", "≥1.5× best event loop", ">=", 1.5, best_event_loop("S3/cat", "mbps")))
    t.append(Target("S4/head", "mbps", "≥1.3× twisted", ">=", 1.3, peer_ref("S4/head", "twisted", "mbps")))
    t.append(
        Target(
            "S4/head",
            "rss_mib",
            "≤1.2× captured size",
            "<=",
            1.2,
            lambda med: ((med("S4/head", "ferroproc", "bytes") or 0) / MiB, "captured MiB"),
        )
    )
    for case in ("S5/pinned", "S5/unpinned"):
        t += [
            Target(case, "us", "≤1.5× native", "<=", 1.5, peer_ref(case, "native", "us")),
            Target(case, "us", "≤0.5× uvloop", "<=", 0.5, peer_ref(case, "uvloop", "us")),
        ]
    for case in ("S6/1k", "S6/10k"):
        t += [
            Target(case, "start_all", "≤ subprocess", "<=", 1.0, peer_ref(case, "subprocess", "start_all")),
            Target(case, "rss_mib", "≤1.5× subprocess", "<=", 1.5, peer_ref(case, "subprocess", "rss_mib")),
        ]
    t.append(Target("S7/api", "mbps", "≥0.9× a shell's wiring", ">=", 0.9, peer_ref("S7/api", "native", "mbps")))
    for case in ("S8/19k", "S8/fork-19k", "S8/import-19k"):
        t.append(
            Target(
                case,
                "rate",
                "≥0.9× own rate at 0 fds",
                ">=",
                0.9,
                lambda med: (med("S8/0", "ferroproc", "rate"), "ferroproc S8 at 0 fds"),
            )
        )
    for case in ("S9/options", "S9/options-cgroup"):
        t.append(
            Target(
                case,
                "rate",
                "≥0.9× own plain rate",
                ">=",
                0.9,
                lambda med: (med("S9/plain", "ferroproc", "rate"), "ferroproc S9 plain"),
            )
        )
    t += [
        Target("S10/c16", "rate", "≥1.25× ThreadPoolExecutor", ">=", 1.25, peer_ref("S10/c16", "subprocess", "rate")),
        Target("S10/c16", "rate", "≥2× xargs -P16", ">=", 2.0, peer_ref("S10/c16", "xargs", "rate")),
        Target("S10/c16", "rate", "≥10× GNU parallel", ">=", 10.0, peer_ref("S10/c16", "parallel", "rate")),
        Target("S10/c16", "rate", "≥0.95× native", ">=", 0.95, peer_ref("S10/c16", "native", "rate")),
        Target("S10/c16", "rate", "≥0.95× native-mt", ">=", 0.95, peer_ref("S10/c16", "native-mt", "rate")),
        Target("S10/c16", "cpu_us", "parent CPU ≤0.3 ms per job", "<=", 1.0, lambda med: (300.0, "300 µs")),
        Target(
            "S10/seq", "rate", "≥1.15× a subprocess.run loop", ">=", 1.15, peer_ref("S10/seq", "subprocess", "rate")
        ),
        Target("S10/seq", "rate", "≥0.95× native", ">=", 0.95, peer_ref("S10/seq", "native", "rate")),
        Target("S11/100k", "rss_max", "RSS < 50 MiB", "<=", 1.0, lambda med: (50.0, "50 MiB")),
        Target("S11/100k", "rss_growth", "flat: ≤ 2 MiB growth", "<=", 1.0, lambda med: (2.0, "2 MiB")),
        Target("S11/100k", "leaks", "zero leaks", "<=", 0.0, lambda med: (1.0, "none")),
        Target(
            "S12/20k",
            "rate",
            "≥0.7× the local runner",
            ">=",
            0.7,
            lambda med: (med("S12/20k", "ferroproc", "rate"), "ferroproc.jobs here"),
            "ferroproc-dask",
        ),
    ]
    return t


TARGETS = _targets()


def select(only: str | None) -> list[Scenario]:
    """The scenarios named in ``--only`` ("S1,S3"), or all."""
    if not only:
        return SCENARIOS
    wanted = {s.strip().upper() for s in only.split(",") if s.strip()}
    unknown = wanted - {s.id for s in SCENARIOS}
    if unknown:
        raise SystemExit(
            f"--only: unknown scenario(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(s.id for s in SCENARIOS)}"
        )
    return [s for s in SCENARIOS if s.id in wanted]
