"""A child gets exactly its own fds (issue 21, item 1), through the real ways
a spawn goes wrong after its fds are on their way: a child killed at birth
(a cgroup's ``cgroup.kill``, as the OOM killer or any SIGKILL between the
clone and the child's receive would), and a spawn that fails in the parent
(no address space left for the child's stack). Each time, the next spawn's
output must reach its own protocol and its ``processEnded`` must come."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import cgroup_support
from engine_support import Recorder
from helpers import PY, iterate_until, run_reactor

from ferroproc import reactor

#: The fixture (see cgroup_support).
frozen_cgroup = cgroup_support.frozen_cgroup


def spawn_in_thread(group: Path, argv: list[str]) -> tuple[threading.Thread, dict[str, Any]]:
    """``reactor.spawnProcess`` of ``argv`` in ``group``, from a thread (it
    returns only once the frozen child has exec'd or died)."""
    result: dict[str, Any] = {"proto": Recorder()}

    def go() -> None:
        try:
            result["transport"] = reactor.spawnProcess(result["proto"], argv[0], argv, cgroup=str(group))
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=go)
    t.start()
    assert iterate_until(lambda: bool(cgroup_support.members(group)), 10.0), "the child never appeared in its cgroup"
    return t, result


def test_a_child_killed_at_birth_leaves_its_fds_to_nobody(frozen_cgroup: Path) -> None:
    t, first = spawn_in_thread(frozen_cgroup, ["/bin/echo", "first"])
    # Killed before it could take its fds (as an OOM kill would).
    (frozen_cgroup / "cgroup.kill").write_text("1")
    t.join(10)
    assert not t.is_alive(), "spawnProcess never returned"
    # The next spawn gets exactly its own fds: its output is its own, and it ends.
    second = Recorder()
    reactor.spawnProcess(second, "/bin/echo", ["echo", "second"])
    run_reactor(second.ended, 10)
    assert second.output() == b"second\n"
    if "transport" in first:
        # Started, then killed: it ends, with nothing from anyone else.
        proto = run_reactor(first["proto"].ended, 10)
        assert proto.ended_reason.value.signal == 9 and proto.output() == b""
    # And the one after that too (nothing stays one message behind).
    third = Recorder()
    reactor.spawnProcess(third, "/bin/echo", ["echo", "third"])
    run_reactor(third.ended, 10)
    assert third.output() == b"third\n"


_NO_ADDRESS_SPACE = r"""
import errno, resource
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol

class Out(ProcessProtocol):
    out, ended = b"", None
    def outReceived(self, data):
        self.out += data
    def processEnded(self, reason):
        self.ended = reason.value

def vm_bytes():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024

soft, hard = resource.getrlimit(resource.RLIMIT_AS)
# No room for one more mapping (the child's stack takes 132 KiB).
resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + 48 * 1024, hard))
try:
    reactor.spawnProcess(Out(), "/bin/echo", ["echo", "first"])
    print("first spawned")
except OSError as e:
    print("first failed", errno.errorcode[e.errno])
finally:
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
p = Out()
reactor.spawnProcess(p, "/bin/echo", ["echo", "second"])
reactor.callLater(5, reactor.stop)
def check():
    if p.ended is not None:
        reactor.stop()
    else:
        reactor.callLater(0.01, check)
reactor.callWhenRunning(check)
reactor.run()
print("second", p.out, p.ended is not None)
"""


def test_a_spawn_that_fails_in_the_parent_leaves_the_channel_clean() -> None:
    out = subprocess.run([PY, "-c", _NO_ADDRESS_SPACE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "first failed ENOMEM", out.stdout
    assert lines[1] == "second b'second\\n' True", out.stdout
