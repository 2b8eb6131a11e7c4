"""The paths this kernel does not need, run on purpose: each capability is
probed once per process, so these tests turn one off in a subprocess.

- Without pidfds (older kernels, or a seccomp filter that refuses them;
  ``FERROPROC_NO_PIDFD=1``): a thread per child waits for it *without
  reaping it*, and the loop reaps it under the child's lock, so its pid is
  never signalled after it could have been reused.
- Without ``CLOSE_RANGE_UNSHARE`` (Linux < 5.9; ``FERROPROC_NO_CLONE_FILES=1``):
  the clone path copies the fd table as posix_spawn does, with every source
  placed in the parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NO_PIDFD = dict(os.environ, FERROPROC_NO_PIDFD="1")
CLASSIC = dict(os.environ, FERROPROC_NO_CLONE_FILES="1")

_PROBE = r"""
import os, time
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol

class P(ProcessProtocol):
    reason = None
    def processEnded(self, reason):
        P.reason = reason.value
        reactor.stop()

t = reactor.spawnProcess(P(), "/bin/sh", ["sh", "-c", "sleep 0.3; exit 3"])
pid = t.pid
time.sleep(0.1)
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
assert f"fp-wait-{pid}" in names, f"a waiter thread: {names}"
time.sleep(0.5)
# Exited, and the waiter saw it, but the loop has not turned: the child is a
# zombie of ours, so its pid cannot have been reused and signalling it is safe.
with open(f"/proc/{pid}/stat") as f:
    assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
t.signalProcess(0)
reactor.run()
assert P.reason.exitCode == 3 and t.pid is None
assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[3] != str(os.getpid())
print("ok")
"""


def test_the_waiter_does_not_reap_and_the_loop_does() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=NO_PIDFD, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _suites(env: dict[str, str], *names: str) -> None:
    tests = [str(HERE / name) for name in names]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


def test_the_engine_and_utilities_suites_pass_without_pidfds() -> None:
    _suites(NO_PIDFD, "test_events.py", "test_transport.py", "test_utils.py")


def test_the_fd_suites_pass_on_the_classic_clone_path() -> None:
    _suites(CLASSIC, "test_childfds.py", "test_pty.py", "test_child_setup.py", "test_isolation.py")
