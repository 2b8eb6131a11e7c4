"""The native C baselines: compiled with ``gcc -O2`` at bench time, run as their own process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from _common import exe

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = ["spawn", "pipe_cat", "capture", "echo_rt", "pipeline", "jobs"]
#: Peers run as a command (a C baseline, or a tool measured by cmd_peer.py).
COMMAND_PEERS = ("xargs", "parallel")


def is_command(peer: str) -> bool:
    return peer.startswith("native") or peer in COMMAND_PEERS


def compile_all(out_dir: str) -> tuple[bool, str]:
    """Build every baseline into ``out_dir``; (ok, message)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return False, "no C compiler (gcc) on PATH"
    for name in PROGRAMS:
        src = os.path.join(HERE, "native", f"{name}.c")
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-o", os.path.join(out_dir, name), src], capture_output=True, text=True
        )
        if proc.returncode != 0:
            return False, f"{name}.c: {proc.stderr.strip()[-500:]}"
    return True, cc


def command(peer: str, scenario: str, p: dict[str, Any], bin_dir: str) -> list[str] | str:
    """The command line for one run, or a reason why this peer does not take part."""
    b = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    if scenario == "S10":
        if peer in COMMAND_PEERS:
            if p["conc"] == 1:
                return f"{peer} is run at {16} at a time only"
            return [sys.executable, os.path.join(HERE, "cmd_peer.py"), peer, str(p["n"]), str(p["conc"]), exe("true")]
        if peer != "native":
            return f"no {peer} baseline for S10"
        return [b("jobs"), "-n", str(p["n"]), "-j", str(p["conc"]), "--", exe("true")]
    if peer in COMMAND_PEERS:
        return f"{peer} takes part in S10 only"
    fork = peer == "native-fork"
    clone_files = peer == "native-clone"
    if scenario in ("S1", "S2", "S8", "S9"):
        kind = p.get("kind", "pipes")
        if kind == "creds" and os.geteuid() != 0:
            return "uid/gid spawns need root"
        if clone_files and kind != "pipes":
            return "the clone-files baseline does pipes only"
        if p.get("options") == "all+cgroup":
            return "a C clone3(CLONE_INTO_CGROUP) baseline needs a trampoline; not written"
        if p.get("options") and not clone_files:
            return "only the clone-files baseline sets S9's options"
        method = "fork" if fork else "clonefiles" if clone_files else ("vfork" if kind == "creds" else "spawn")
        cmd = [
            b("spawn"),
            "-m",
            method,
            "-s",
            "pty" if kind == "pty" else "pipes",
            "-n",
            str(p["n"]),
            "-c",
            str(p.get("conc", 1)),
        ]
        if kind == "creds":
            cmd.append("-C")
        if p.get("mem_mib"):
            cmd += ["-M", str(p["mem_mib"])]
        if p.get("budget"):
            cmd += ["-b", str(p["budget"])]
        if p.get("fds"):
            cmd += ["-R", "-H", str(p["fds"]), "-E", exe("cat")]
        if p.get("options"):
            cmd.append("-O")
        return cmd + ["--", exe("true")]
    if scenario == "S3":
        pipe_size = 0 if peer == "native-64k" else 1 << 20
        return [b("pipe_cat"), str(p["bytes"]), str(pipe_size), str(p["chunk"]), exe("cat")]
    if scenario == "S4":
        return [b("capture"), str(p["bytes"]), exe("head")]
    if scenario == "S5":
        return [b("echo_rt"), str(p["n"]), str(p["pin"]), exe("cat")]
    if scenario == "S6":
        return [
            b("spawn"),
            "-m",
            "clonefiles" if clone_files else "spawn",
            "-s",
            p["stdio"],
            "-n",
            str(p["n"]),
            "-c",
            str(p["n"]),
            "-R",
            *(["-K"] if p.get("kill") else []),
            "--",
            exe("sleep"),
            str(p["sleep"]),
        ]
    if scenario == "S7":
        if p["mode"] not in ("wired", "api"):
            return "a C program has no callbacks to relay through"
        return [b("pipeline"), str(p["bytes"]), exe("head"), exe("cat"), exe("wc")]
    return f"no native baseline for {scenario}"
