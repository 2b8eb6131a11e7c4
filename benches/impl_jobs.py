"""S10 and S11, many jobs, for the Python peers: ``ferroproc.jobs``; ``subprocess.run`` in a
``ThreadPoolExecutor`` (one at a time: a plain loop); the asyncio pattern (a ``Semaphore`` and
``create_subprocess_exec`` + ``communicate()``) on asyncio's loop and on uvloop's.

Every peer captures each job's stdout and stderr and checks its exit status, as a job runner
must; the parent's CPU (``cpu_us``) is its own, children excluded.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import ENV, NotApplicable, cpu_seconds, exe, now, open_fd_count, thread_count

PEERS = ("ferroproc", "subprocess", "asyncio", "uvloop")


def load(peer: str) -> str:
    if peer not in PEERS:
        raise NotApplicable(f"{peer} has no job runner here")
    return peer


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def _children() -> int:
    me = str(os.getpid())
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2 :].split()[1] == me:
                count += 1
    return count


def _ferroproc(n: int, conc: int, joblog: str | None = None, samples: int = 0) -> dict[str, Any]:
    from ferroproc import jobs, reactor

    true = exe("true")
    failures = [0]
    rss: list[float] = []
    every = n // samples if samples else 0
    count = [0]

    def onResult(r: jobs.JobResult) -> None:
        if not r.ok:
            failures[0] += 1
        count[0] += 1
        if every and count[0] % every == 0:
            rss.append(_rss_mib())

    fds = open_fd_count()
    t0, c0 = now(), cpu_seconds()
    d = jobs.runJobs((jobs.Job((true,), env=ENV) for _ in range(n)), concurrency=conc, onResult=onResult, joblog=joblog)
    summary: list[Any] = []
    d.addBoth(lambda s: (summary.append(s), reactor.stop()))
    reactor.run()
    dt, cpu = now() - t0, cpu_seconds() - c0
    out: dict[str, Any] = {"n": n, "seconds": dt, "rate": n / dt, "cpu_us": cpu / n * 1e6, "failures": failures[0]}
    if samples:
        out.update(
            rss_max=max(rss),
            rss_growth=rss[-1] - rss[0],
            rss_samples=[round(r, 2) for r in rss],
            leaks=(open_fd_count() - fds) + _children() + (thread_count() - 1),
        )
    s = summary[0]
    out["ok"] = getattr(s, "succeeded", -1) == n - failures[0]
    return out


def _subprocess(n: int, conc: int) -> dict[str, Any]:
    true = exe("true")

    def one(_: int) -> int:
        return subprocess.run([true], capture_output=True, env=ENV, check=False).returncode

    t0, c0 = now(), cpu_seconds()
    if conc == 1:
        failures = sum(1 for i in range(n) if one(i))
    else:
        with ThreadPoolExecutor(conc) as pool:
            failures = sum(1 for rc in pool.map(one, range(n)) if rc)
    dt, cpu = now() - t0, cpu_seconds() - c0
    return {"n": n, "seconds": dt, "rate": n / dt, "cpu_us": cpu / n * 1e6, "failures": failures}


def _asyncio(n: int, conc: int, uvloop: bool) -> dict[str, Any]:
    import asyncio

    true = exe("true")

    async def main() -> int:
        sem = asyncio.Semaphore(conc)

        async def one() -> int:
            async with sem:
                proc = await asyncio.create_subprocess_exec(
                    true, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV
                )
                await proc.communicate()
                return proc.returncode or 0

        codes = await asyncio.gather(*(one() for _ in range(n)))
        return sum(1 for c in codes if c)

    t0, c0 = now(), cpu_seconds()
    if uvloop:
        import uvloop as uv

        failures = uv.run(main())
    else:
        failures = asyncio.run(main())
    dt, cpu = now() - t0, cpu_seconds() - c0
    return {"n": n, "seconds": dt, "rate": n / dt, "cpu_us": cpu / n * 1e6, "failures": failures}


SCENARIOS = {"S10", "S11"}


def run(peer: str, scenario: str, p: dict[str, Any]) -> dict[str, Any]:
    n, conc = p["n"], p["conc"]
    if scenario == "S11":
        if peer != "ferroproc":
            raise NotApplicable("S11 measures ferroproc's runner alone")
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ferroproc-s11-") as tmp:
            return _ferroproc(n, conc, joblog=os.path.join(tmp, "joblog"), samples=p["samples"])
    if peer == "ferroproc":
        return _ferroproc(n, conc)
    if peer == "subprocess":
        return _subprocess(n, conc)
    if conc == 1:
        raise NotApplicable("the asyncio pattern is run at 16 at a time only")
    return _asyncio(n, conc, uvloop=peer == "uvloop")
