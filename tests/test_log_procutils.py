"""``ferroproc.log`` and ``ferroproc.procutils``: what ported Twisted programs
import from ``twisted.python``."""

from __future__ import annotations

import io
import logging
import os

import pytest
from helpers import run_reactor

from ferroproc import log, procutils, reactor
from ferroproc.defer import Deferred
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol


def test_which_finds_programs_on_path_in_order(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = os.path.join(tmp_path, "a"), os.path.join(tmp_path, "b")
    for d in (a, b):
        os.mkdir(d)
        prog = os.path.join(d, "tool")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\necho tool\n")
        os.chmod(prog, 0o755)
    os.mkdir(os.path.join(a, "adir"))
    monkeypatch.setenv("PATH", os.pathsep.join([a, "/nonexistent", b]))
    assert procutils.which("tool") == [os.path.join(a, "tool"), os.path.join(b, "tool")]
    assert procutils.which("adir") == []  # a directory is not a program
    assert procutils.which("no-such-program") == []
    monkeypatch.delenv("PATH")
    assert procutils.which("tool") == []


def test_which_result_spawns() -> None:
    class P(ProcessProtocol):
        def __init__(self) -> None:
            self.out = b""
            self.done: Deferred[None] = Deferred()

        def outReceived(self, data: bytes) -> None:
            self.out += data

        def processEnded(self, reason: Failure) -> None:
            self.done.callback(None)

    echo = procutils.which("echo")[0]
    p = P()
    reactor.spawnProcess(p, echo, [echo, "found"])
    run_reactor(p.done)
    assert p.out == b"found\n"


def test_msg_and_err_go_to_the_ferroproc_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ferroproc")
    log.msg("child", 42, "started")
    log.msg("bad thing", isError=True)
    try:
        raise ValueError("boom")
    except ValueError:
        log.err(None, "while reading")
    log.err(Failure(KeyError("k")), "lookup")
    log.err(RuntimeError("plain"))
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ferroproc"]
    assert records[0] == ("INFO", "child 42 started")
    assert records[1] == ("ERROR", "bad thing")
    assert records[2][1] == "while reading" and "ValueError: boom" in caplog.records[2].exc_text
    assert records[3][0] == "ERROR" and "lookup" in records[3][1] and "KeyError" in records[3][1]
    assert records[4][1] == "Unhandled Error" and "RuntimeError: plain" in caplog.records[4].exc_text


def test_startLogging_writes_records_to_a_file() -> None:
    out = io.StringIO()
    logger = logging.getLogger("ferroproc")
    level = logger.level
    handler = log.startLogging(out)
    try:
        log.msg("hello from a ported program")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    line = out.getvalue()
    assert line.rstrip().endswith("[ferroproc] hello from a ported program")
