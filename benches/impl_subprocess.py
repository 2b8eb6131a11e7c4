"""Every scenario with the blocking ``subprocess`` module; threads only where a case needs
concurrency (S1's 64 at once, S3's writer)."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from subprocess import DEVNULL, PIPE
from typing import Any

from _common import (
    ECHO_LINE,
    ENV,
    HELD_PING,
    NotApplicable,
    close_fds,
    cpu_seconds,
    exe,
    fill_fds,
    held_children,
    now,
    open_fd_count,
    peak_rss_mib,
    rss_baseline,
    thread_count,
)


def load(peer: str) -> None:
    if peer != "subprocess":
        raise ValueError(peer)


def _spawn_true(kind: str) -> int:
    true = exe("true")
    if kind == "pty":
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([true], stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=ENV)
        finally:
            os.close(slave)
        try:
            while os.read(master, 65536):
                pass
        except OSError:  # EIO once the slave side is closed
            pass
        os.close(master)
        return proc.wait()
    kw: dict[str, Any] = {}
    if kind == "creds":
        kw.update(user=65534, group=65534, extra_groups=[65534])
    proc = subprocess.Popen([true], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=ENV, **kw)
    proc.communicate()
    return proc.returncode


def _hold_fds(total: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """S8: live ``cat`` children with pipes (each has echoed a byte), then dup'd fds up to ``total``."""
    cat = exe("cat")
    procs = [
        subprocess.Popen([cat], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=ENV, bufsize=0)
        for _ in range(held_children(total))
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(HELD_PING)
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.read(1) != HELD_PING:
            raise RuntimeError("a held cat did not echo")
    return procs, fill_fds(total)


def _release(procs: list[subprocess.Popen[bytes]], fillers: list[int]) -> int:
    """End what ``_hold_fds`` made; the number of children that did not exit 0."""
    close_fds(fillers)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    bad = 0
    for proc in procs:
        bad += proc.wait() != 0
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return bad


def spawn_rate(p: dict[str, Any]) -> dict[str, Any]:
    kind = p.get("kind", "pipes")
    if kind == "creds" and os.geteuid() != 0:
        raise NotApplicable("uid/gid spawns need root")
    if p.get("options"):
        raise NotApplicable("subprocess has no such spawn options")
    n, conc, budget = p["n"], p.get("conc", 1), p.get("budget", 0)
    procs, fillers = _hold_fds(p.get("fds", 0))
    fds = open_fd_count()
    t0 = now()
    if conc == 1:
        codes = []
        for _ in range(n):
            codes.append(_spawn_true(kind))
            if budget and now() - t0 > budget:
                break
    else:
        with ThreadPoolExecutor(max_workers=conc) as pool:
            codes = list(pool.map(lambda _: _spawn_true(kind), range(n)))
    dt = now() - t0
    bad = _release(procs, fillers)
    return {
        "n": len(codes),
        "seconds": dt,
        "rate": len(codes) / dt,
        "fds": fds,
        "held_children": len(procs),
        "failures": sum(c != 0 for c in codes) + bad,
    }


def pipe_throughput(p: dict[str, Any]) -> dict[str, Any]:
    total, chunk = p["bytes"], b"\0" * p["chunk"]
    t0 = now()
    proc = subprocess.Popen([exe("cat")], stdin=PIPE, stdout=PIPE, env=ENV, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def write() -> None:
        view, sent = memoryview(chunk), 0
        while sent < total:
            sent += os.write(stdin.fileno(), view[: total - sent])  # all zeros: any slice will do
        stdin.close()

    writer = threading.Thread(target=write)
    writer.start()
    buf, got = bytearray(1 << 20), 0
    while n := stdout.readinto(buf):
        got += n
    writer.join()
    proc.wait()
    dt = now() - t0
    return {"bytes": got, "seconds": dt, "mbps": got / dt / 1e6, "ok": got == total and proc.returncode == 0}


def capture(p: dict[str, Any]) -> dict[str, Any]:
    size = p["bytes"]
    base = rss_baseline()
    t0 = now()
    out = subprocess.check_output([exe("head"), "-c", str(size), "/dev/zero"], env=ENV)
    dt = now() - t0
    return {
        "bytes": len(out),
        "seconds": dt,
        "mbps": len(out) / dt / 1e6,
        "rss_mib": peak_rss_mib() - base,
        "ok": len(out) == size,
    }


def round_trips(p: dict[str, Any]) -> dict[str, Any]:
    n, size = p["n"], len(ECHO_LINE)
    proc = subprocess.Popen([exe("cat")], stdin=PIPE, stdout=PIPE, env=ENV, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    win, rout = proc.stdin.fileno(), proc.stdout.fileno()
    t0 = now()
    for _ in range(n):
        os.write(win, ECHO_LINE)
        got = 0
        while got < size:
            got += len(os.read(rout, 4096))
    dt = now() - t0
    proc.stdin.close()
    proc.wait()
    return {"n": n, "seconds": dt, "us": dt / n * 1e6, "ok": True}


def many_children(p: dict[str, Any]) -> dict[str, Any]:
    """``n`` children alive at once; with ``kill`` (S6's curve) they run ``sleep 3600`` and
    are SIGKILLed as soon as all have started."""
    n, argv, kill = p["n"], [exe("sleep"), str(p["sleep"])], p.get("kill", False)
    pipes = p["stdio"] == "pipes"
    io = PIPE if pipes else DEVNULL
    base = rss_baseline()
    cpu0, t0 = cpu_seconds(), now()
    procs = [subprocess.Popen(argv, stdin=io, stdout=io, stderr=io, env=ENV) for _ in range(n)]
    start_all = now() - t0
    threads = thread_count()
    if kill:
        for proc in procs:
            proc.kill()
    for proc in procs:
        if pipes:
            proc.communicate()
        else:
            proc.wait()
    cpu = cpu_seconds() - cpu0
    bad = sum(proc.returncode != (-9 if kill else 0) for proc in procs)
    return {
        "n": n,
        "seconds": now() - t0,
        "start_all": start_all,
        "cpu": cpu,
        "per_event_us": cpu / n * 1e6,
        "threads": threads,
        "rss_mib": peak_rss_mib() - base,
        "failures": bad,
        "completed": n - bad,
    }


def pipeline(p: dict[str, Any]) -> dict[str, Any]:
    """Wired only: each stage's ``stdout=PIPE`` becomes the next stage's ``stdin``."""
    if p["mode"] != "wired":
        raise NotApplicable("subprocess has no relay mode")
    size = p["bytes"]
    t0 = now()
    a = subprocess.Popen([exe("head"), "-c", str(size), "/dev/zero"], stdout=PIPE, env=ENV)
    b = subprocess.Popen([exe("cat")], stdin=a.stdout, stdout=PIPE, env=ENV)
    c = subprocess.Popen([exe("wc"), "-c"], stdin=b.stdout, stdout=PIPE, env=ENV)
    assert a.stdout is not None and b.stdout is not None
    a.stdout.close()
    b.stdout.close()
    out, _ = c.communicate()
    bad = a.wait() or b.wait() or c.returncode
    dt = now() - t0
    count = int(out.split()[0])
    return {"bytes": count, "seconds": dt, "mbps": count / dt / 1e6, "ok": count == size and not bad}


SCENARIOS = {
    "S1": spawn_rate,
    "S2": spawn_rate,
    "S8": spawn_rate,
    "S3": pipe_throughput,
    "S4": capture,
    "S5": round_trips,
    "S6": many_children,
    "S7": pipeline,
}


def run(_ctx: None, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    """Measure ``scenario`` once."""
    return SCENARIOS[scenario](params)
