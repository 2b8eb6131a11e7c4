"""childFDs against a model, with random mappings (hypothesis).

Each example maps some child fds (0-9, plus the numbers of the parent's own
files, so sources collide with targets: swaps, cycles, fan-out) to 'r', 'w'
or a parent fd (three files opened per example, and the parent's 0, 1, 2),
runs ``fds_report.py`` on a random spawn path, and checks what the child
had open against what the mapping means:

- the child's open fds are exactly the mapping's keys;
- an int entry is the parent's open file (same st_dev/st_ino and access mode);
- an 'r' entry is a pipe's write end whose token reaches
  ``childDataReceived(fd, ...)``; a 'w' entry is a pipe's read end that holds
  exactly what ``writeToChild(fd, ...)`` sent, then EOF;
- every pipe is a different pipe, and each gets one ``childConnectionLost``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from helpers import CHILDREN, PY, run_reactor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone
from ferroproc.protocol import ProcessProtocol

REPORT = str(CHILDREN / "fds_report.py")
ACCESS = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}


class Recorder(ProcessProtocol):
    def __init__(self, feed: dict[int, bytes]) -> None:
        self.feed = feed
        self.events: list[tuple[str, int]] = []
        self.data: dict[int, bytes] = {}
        self.reason: Any = None
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        for fd, data in self.feed.items():
            self.transport.writeToChild(fd, data)
            self.transport.closeChildFD(fd)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.events.append(("data", childFD))
        self.data[childFD] = self.data.get(childFD, b"") + data

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))

    def processEnded(self, reason: Any) -> None:
        self.reason = reason
        self.ended.callback(None)


@contextmanager
def parent_files(n: int) -> Iterator[list[int]]:
    """``n`` open files with distinct identities and mixed access modes."""
    with tempfile.TemporaryDirectory() as d, ExitStack() as stack:
        fds = []
        for i in range(n):
            flags = (os.O_RDWR, os.O_RDONLY, os.O_WRONLY)[i % 3]
            path = os.path.join(d, f"f{i}")
            with open(path, "wb"):
                pass
            fd = os.open(path, flags | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fds.append(fd)
        yield fds


def what(fd: int) -> tuple[int, int, str]:
    st_ = os.fstat(fd)
    return (st_.st_dev, st_.st_ino, ACCESS[os.O_ACCMODE & fcntl.fcntl(fd, fcntl.F_GETFL)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_child_fd_mappings(data: st.DataObject) -> None:
    with parent_files(3) as files, tempfile.TemporaryDirectory() as d:
        sources = [0, 1, 2, *files]
        targets = sorted(set(range(10)) | set(files))
        keys = data.draw(st.lists(st.sampled_from(targets), unique=True, max_size=7), label="child fds")
        values = st.one_of(st.sampled_from(["r", "w"]), st.sampled_from(sources))
        mapping: dict[int, Any] = {k: data.draw(values, label=f"childFDs[{k}]") for k in keys}
        method = data.draw(st.sampled_from(["posix_spawn", "clone"]), label="spawn method")

        expected_int = {c: what(p) for c, p in mapping.items() if isinstance(p, int)}
        pipes = sorted(c for c, v in mapping.items() if v in ("r", "w"))
        feed = {c: f"data-for-{c}".encode() * (c + 1) for c in pipes if mapping[c] == "w"}
        out = os.path.join(d, "report.json")

        proto = Recorder(feed)
        old = reactor._spawnMethod
        reactor._spawnMethod = method
        try:
            args = [PY, REPORT, out, "--exercise=" + ",".join(map(str, pipes))]
            reactor.spawnProcess(proto, PY, args, childFDs=mapping)
        finally:
            reactor._spawnMethod = old
        run_reactor(proto.ended)

        assert proto.reason.check(ProcessDone), proto.reason
        with open(out) as f:
            got = {int(k): v for k, v in json.load(f).items()}
        assert sorted(got) == sorted(mapping)
        for c, ident in expected_int.items():
            assert (got[c]["dev"], got[c]["ino"], got[c]["acc"]) == ident, f"child fd {c} <- parent fd {mapping[c]}"
        for c in pipes:
            info = got[c]
            assert info["pipe"], f"child fd {c} should be a pipe"
            if mapping[c] == "r":
                assert info["acc"] == "w"
                assert proto.data.get(c) == f"token-{c}".encode()
            else:
                assert info["acc"] == "r"
                assert info["read"].encode("latin-1") == feed[c]
        pipe_inodes = [got[c]["ino"] for c in pipes]
        assert len(set(pipe_inodes)) == len(pipe_inodes), "two entries share a pipe"
        assert sorted(proto.data) == sorted(c for c in pipes if mapping[c] == "r")
        lost = [fd for kind, fd in proto.events if kind == "lost"]
        assert sorted(lost) == pipes
        for c in pipes:
            if mapping[c] == "r":
                assert proto.events.index(("data", c)) < proto.events.index(("lost", c))
