"""Spawns share no lock (issue 21, item 2): a process forked while another
thread spawns starts clean and can spawn itself; ``subprocess`` with a
``preexec_fn`` (a fork that runs the at-fork hooks, then execs) beside
ferroproc's spawns returns; a child stuck before its exec holds up no other
spawn."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cgroup_support
import pytest
from helpers import PY

#: A thread spawns children without pause through its own reactor while the
#: main thread does something fork-based many times.
_BESIDE_A_SPAWNING_THREAD = r"""
import os, sys, threading, time, subprocess, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads
from ferroproc import Reactor, reactor
from ferroproc.protocol import ProcessProtocol

class Ended(ProcessProtocol):
    def __init__(self):
        self.out, self.done = b"", False
    def outReceived(self, data):
        self.out += data
    def processEnded(self, reason):
        self.done = True

if sys.argv[1] == "twisted-fork":
    import ferroproc.twisted
    ferroproc.twisted.install()
    from twisted.internet import reactor as treactor, utils
    # The Twisted reactor's engine exists before the forks.
    treactor.spawnProcess(ProcessProtocol(), "/bin/true", ["true"])

stop = threading.Event()
spawned = [0]
def spawner():
    r = Reactor()
    while not stop.is_set():
        p = Ended()
        r.spawnProcess(p, "/bin/true", ["true"])
        while not p.done:
            r.iterate(0.01)
        spawned[0] += 1
t = threading.Thread(target=spawner, daemon=True)
t.start()
while spawned[0] < 5:
    time.sleep(0.01)

def in_fork():
    if sys.argv[1] == "asyncio-fork":
        import asyncio
        import ferroproc.asyncio
        async def main():
            proc = await ferroproc.asyncio.create_subprocess_exec(
                "/bin/echo", "from-the-fork", stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            return out
        out = asyncio.run(asyncio.wait_for(main(), 10))
        os._exit(0 if out == b"from-the-fork\n" else 3)
    if sys.argv[1] == "twisted-fork":
        got = []
        d = utils.getProcessOutput("/bin/echo", ["from-the-fork"])
        d.addBoth(lambda r: (got.append(r), treactor.stop()))
        treactor.callLater(10, treactor.stop)
        treactor.run(installSignalHandlers=False)
        os._exit(0 if got == [b"from-the-fork\n"] else 3)
    # A fresh engine on first use, and a spawn of its own.
    p = Ended()
    reactor.spawnProcess(p, "/bin/echo", ["echo", "from-the-fork"])
    deadline = time.monotonic() + 10
    while not p.done and time.monotonic() < deadline:
        reactor.iterate(0.01)
    os._exit(0 if p.out == b"from-the-fork\n" else 3)

hung = failed = 0
for i in range(int(sys.argv[2])):
    if sys.argv[1] != "preexec_fn":
        pid = os.fork()
        if pid == 0:
            in_fork()
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed += status != 0
                break
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
        if hung:
            break
            time.sleep(0.005)
    else:
        # The child runs the at-fork hooks (preexec_fn), then execs.
        subprocess.run(["/bin/true"], preexec_fn=lambda: None, check=True)
    time.sleep(0.002 * (i % 3))
# The spawning thread kept spawning all along.
before = spawned[0]
deadline = time.monotonic() + 10
while spawned[0] < before + 3 and time.monotonic() < deadline:
    time.sleep(0.01)
stop.set()
t.join(15)
print(f"hung={hung} failed={failed} spawning={spawned[0] >= before + 3}")
"""

#: The fixture (see cgroup_support).
frozen_cgroup = cgroup_support.frozen_cgroup


@pytest.mark.parametrize("how", ["fork", "twisted-fork", "asyncio-fork", "preexec_fn"])
def test_forking_beside_a_spawning_thread_never_hangs(how: str) -> None:
    if how == "twisted-fork":
        pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
    try:
        out = subprocess.run(
            [PY, "-c", _BESIDE_A_SPAWNING_THREAD, how, "40"], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"never returned: {e.stdout!r} {e.stderr!r}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hung=0 failed=0 spawning=True", out.stderr


#: One thread's spawn is stuck (its child frozen at birth in a cgroup);
#: another thread's spawns must go on. In a process of its own: the second
#: spawner takes a second fd channel, which the process then keeps.
_STUCK = r"""
import sys, threading, time
from ferroproc import Reactor
from ferroproc.protocol import ProcessProtocol

class Out(ProcessProtocol):
    def __init__(self):
        self.out, self.done = b"", False
    def outReceived(self, data):
        self.out += data
    def processEnded(self, reason):
        self.done = True

group = sys.argv[1]
stuck, other = Out(), Reactor()
t = threading.Thread(target=lambda: other.spawnProcess(stuck, "/bin/echo", ["echo", "late"], cgroup=group))
t.start()
deadline = time.monotonic() + 10
while not open(group + "/cgroup.procs").read() and time.monotonic() < deadline:
    time.sleep(0.01)
protos, done, mine = [Out() for _ in range(5)], threading.Event(), Reactor()
def spawn_others():
    for i, p in enumerate(protos):
        mine.spawnProcess(p, "/bin/echo", ["echo", str(i)])
    done.set()
t2 = threading.Thread(target=spawn_others, daemon=True)
t2.start()
went_on = done.wait(15)
with open(group + "/cgroup.freeze", "w") as f:
    f.write("0")
t.join(15)
t2.join(15)
deadline = time.monotonic() + 10
while not (stuck.done and all(p.done for p in protos)) and time.monotonic() < deadline:
    other.iterate(0.01)
    mine.iterate(0.01)
print("went on" if went_on else "waited", [p.out for p in protos], stuck.out)
"""


def test_a_child_stuck_before_its_exec_holds_up_no_other_spawn(frozen_cgroup: Path) -> None:
    out = subprocess.run([PY, "-c", _STUCK, str(frozen_cgroup)], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "went on [b'0\\n', b'1\\n', b'2\\n', b'3\\n', b'4\\n'] b'late\\n'", out.stdout
