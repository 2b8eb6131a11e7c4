"""examples/quotes.py: the seed's TCP quote server on Twisted with
``ferroproc.twisted.install()``, read by a real TCP client on loopback."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="examples/quotes.py runs on Twisted: pip install 'ferroproc[twisted]'")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quotes.py"


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"no output from {EXAMPLE.name} within {timeout}s")
    return proc.stdout.readline()


@pytest.fixture
def server() -> Iterator[int]:
    """The example on a free loopback port (port 0: the kernel picks)."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=EXAMPLE.parent,
    )
    try:
        line = read_line(proc, 30.0)
        m = re.fullmatch(rb"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else b''!r}"
        yield int(m.group(1))
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert b"Traceback" not in err, err.decode(errors="replace")


def fetch_quote(port: int, timeout: float = 15.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = s.recv(65536)
            if not data:  # the server closes the connection after the quote
                return b"".join(chunks)
            chunks.append(data)


def test_a_tcp_client_gets_a_quote(server: int) -> None:
    quote = fetch_quote(server)
    assert quote.strip(), "the server sent an empty answer"
    if not os.path.exists("/usr/games/fortune"):
        assert b" -- " in quote, quote  # one of the stand-in's quotes


def test_several_clients_at_once(server: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", server), timeout=15.0) for _ in range(5)]
    try:
        answers = []
        for s in socks:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            answers.append(data)
    finally:
        for s in socks:
            s.close()
    assert all(a.strip() for a in answers), answers
