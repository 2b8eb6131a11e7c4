#!/usr/bin/env python3
"""Benchmark ferroproc against Twisted, asyncio, uvloop, subprocess and native C.

    pip install -e '.[bench]' && python benches/run.py     # full run, about 12 minutes
    python benches/run.py --quick                         # smoke run: small sizes, 1 run each
    python benches/run.py --only S1,S3 --runs 7           # some scenarios, more runs

Every run of every peer is a fresh process (benches/runner.py, or a C program), and the
peers alternate (A B C A B C ...) after one warm-up round, so that drift on a noisy
machine hits all peers alike. Prints each run as it goes, then tables of medians and of
ferroproc's ratio to each peer with the targets; writes them with the machine's details
to benches/results/<name>.md (+ .json, and a .png chart when matplotlib is there).
Times are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import impl_native  # noqa: E402
import report  # noqa: E402
from scenarios import PEERS, Case, select  # noqa: E402

PY_PEER_PROBES = {
    "ferroproc": "from ferroproc import reactor, utils; from ferroproc.protocol import ProcessProtocol",
    "ferroproc-posix": "from ferroproc import reactor, utils; from ferroproc.protocol import ProcessProtocol",
    "twisted": (
        "from twisted.internet import epollreactor, utils; from twisted.internet.protocol import ProcessProtocol"
    ),
    "asyncio": "import asyncio",
    "asyncio-ferroproc": "import ferroproc.asyncio",
    "ferroproc.asyncio": "import ferroproc.asyncio",
    "uvloop": "import uvloop",
    "uvloop-ferroproc": "import uvloop, ferroproc.asyncio",
    "subprocess": "import subprocess",
    "ferroproc-dask": "import ferroproc.jobs.dask",
}
VERSION_PROBES = {
    "ferroproc": "import importlib.metadata as m; print(m.version('ferroproc'))",
    "twisted": "import twisted; print(twisted.__version__)",
    "uvloop": "import uvloop; print(uvloop.__version__)",
    "ferroproc-dask": "import distributed; print('distributed', distributed.__version__)",
}


def probe_python_peer(peer: str) -> str | None:
    """None if ``peer`` can be imported in a fresh interpreter, else why not."""
    proc = subprocess.run(
        [sys.executable, "-c", PY_PEER_PROBES[peer]], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return f"not installed ({lines[-1] if lines else 'import failed'})"


def version_of(peer: str) -> str:
    if peer not in VERSION_PROBES:
        return ""
    proc = subprocess.run(
        [sys.executable, "-c", VERSION_PROBES[peer]], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine_info() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / (1 << 20):.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--", "src", "python", "Cargo.toml"],
        capture_output=True,
        text=True,
    )
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": model,
        "cores": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})",
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gcc": gcc.stdout.splitlines()[0] if gcc.returncode == 0 and gcc.stdout else "n/a",
        "commit": (commit.stdout.strip() or "?")
        + (" (+ uncommitted changes in src/ or python/)" if dirty.stdout.strip() else ""),
        "root": "yes" if os.geteuid() == 0 else "no (uid/gid cases are n/a)",
        "load average at start": loadavg(),
    }


def loadavg() -> str:
    """1/5/15-minute load averages: above the core count, other work is competing."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


class Outcome:
    """One run: ``values`` (metric -> number), or ``na`` / ``error`` with a reason."""

    def __init__(self, values: dict[str, Any] | None = None, na: str = "", error: str = "") -> None:
        self.values, self.na, self.error = values or {}, na, error


def run_once(case: Case, peer: str, params: dict[str, Any], bin_dir: str | None, timeout: float) -> Outcome:
    if impl_native.is_command(peer):
        if bin_dir is None and peer.startswith("native"):
            return Outcome(na="native baselines not built")
        cmd = impl_native.command(peer, case.scenario, params, bin_dir or "")
        if isinstance(cmd, str):
            return Outcome(na=cmd)
    else:
        cmd = [sys.executable, os.path.join(HERE, "runner.py"), peer, case.scenario, json.dumps(params)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return Outcome(error=f"timeout after {timeout:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}, no output"])[-1]
        return Outcome(error=tail[:200])
    values = json.loads(lines[-1])
    if "na" in values:
        return Outcome(na=values["na"])
    if values.get("failures"):
        return Outcome(error=f"{values['failures']} children did not exit 0")
    if values.get("ok") is False or proc.returncode != 0:
        return Outcome(error=f"wrong result {values} (exit {proc.returncode})")
    for metric in case.metrics:
        if metric.derive is not None and metric.key not in values:
            values[metric.key] = metric.derive(values)
    return Outcome(values)


def run_case(
    case: Case, peers: list[str], unavailable: dict[str, str], args: argparse.Namespace, bin_dir: str | None
) -> dict[str, Any]:
    """All rounds of one case; returns {"runs": {peer: [values...]}, "status": {peer: reason}}."""
    params = case.params_for(args.quick)
    runs = 1 if args.quick else (args.runs or case.runs)
    warmup = case.warmup and not args.quick
    status: dict[str, str] = {}
    got: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    active = []
    for peer in peers:
        if peer in unavailable:
            status[peer] = f"n/a: {unavailable[peer]}"
        else:
            active.append(peer)
    main = case.metrics[0]
    rounds = ([("warm-up", {**params, **case.warmup_params})] if warmup else []) + [
        (f"run {i + 1}/{runs}", params) for i in range(runs)
    ]
    for label, p in rounds:
        line = []
        for peer in list(active):
            out = run_once(case, peer, p, bin_dir, case.timeout)
            if out.na or out.error:
                status[peer] = f"n/a: {out.na}" if out.na else f"error: {out.error}"
                active.remove(peer)
                line.append(f"{peer} {'n/a' if out.na else 'ERROR'}")
                if out.error:
                    print(f"    ! {case.key} {peer}: {out.error}", flush=True)
                continue
            if label != "warm-up":
                got[peer].append(out.values)
            line.append(f"{peer} {main.format(out.values.get(main.key))}")
        print(f"  {case.key:<12} {label:<9} " + " | ".join(line), flush=True)
    return {"params": params, "runs": got, "status": status}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 run per peer, no warm-up")
    ap.add_argument("--only", metavar="S1,S3", help="run only these scenarios")
    ap.add_argument("--runs", type=int, default=0, help="measured runs per peer (default: per case, 5 for most)")
    ap.add_argument("--peers", metavar="P,Q", help=f"run only these peers (of {', '.join(PEERS)})")
    ap.add_argument("--name", help="results/<name>.{md,json,png}; default 'latest' ('quick' with --quick)")
    args = ap.parse_args(argv)

    scenarios = select(args.only)
    wanted = [p.strip() for p in args.peers.split(",")] if args.peers else PEERS
    bad = set(wanted) - set(PEERS)
    if bad:
        ap.error(f"--peers: unknown {', '.join(sorted(bad))}")
    name = args.name or ("quick" if args.quick else "latest")

    info = machine_info()
    print("ferroproc benchmarks — " + ", ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    unavailable: dict[str, str] = {}
    versions: dict[str, str] = {}
    for peer in PY_PEER_PROBES:
        reason = probe_python_peer(peer)
        if reason:
            unavailable[peer] = reason
        else:
            versions[peer] = version_of(peer)
    with tempfile.TemporaryDirectory(prefix="ferroproc-bench-") as tmp:
        ok, msg = impl_native.compile_all(tmp)
        bin_dir = tmp if ok else None
        if not ok:
            for peer in PEERS:
                if peer.startswith("native"):
                    unavailable[peer] = msg
        versions["native"] = info["gcc"] if ok else ""
        print(
            "peers: "
            + ", ".join(
                f"{p} {versions.get(p, '')}".strip() if p not in unavailable else f"{p} n/a ({unavailable[p]})"
                for p in PEERS
                if p in wanted
            ),
            flush=True,
        )

        results: dict[str, Any] = {}
        t_start = time.monotonic()
        for sc in scenarios:
            print(f"\n== {sc.id} {sc.title}", flush=True)
            for case in sc.cases:
                peers = [p for p in case.peers if p in wanted]
                t_case = time.monotonic()
                results[case.key] = run_case(case, peers, unavailable, args, bin_dir)
                results[case.key]["elapsed_s"] = round(time.monotonic() - t_case, 1)
                print(report.case_text(case, results[case.key]), flush=True)
                print(f"  ({results[case.key]['elapsed_s']:.0f} s, load average {loadavg()})", flush=True)
        elapsed = time.monotonic() - t_start
        info["load average at end"] = loadavg()

    run_info = {
        "command": " ".join(["python benches/run.py"] + (argv if argv is not None else sys.argv[1:])),
        "elapsed": f"{elapsed / 60:.1f} min" if elapsed >= 60 else f"{elapsed:.0f} s",
        "versions": versions,
        "unavailable": unavailable,
        "quick": args.quick,
    }
    print()
    print(report.final_text(scenarios, results))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    base = os.path.join(HERE, "results", name)
    with open(base + ".json", "w") as f:
        json.dump({"machine": info, "run": run_info, "results": results}, f, indent=1, sort_keys=True)
    chart = report.write_chart(scenarios, results, base + ".png")
    with open(base + ".md", "w") as f:
        f.write(report.markdown(scenarios, results, info, run_info, os.path.basename(chart) if chart else None))
    print(
        f"\nwrote {os.path.relpath(base, ROOT)}.md, .json" + (", .png" if chart else " (no chart: matplotlib missing)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
