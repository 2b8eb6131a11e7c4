"""Bad input to spawnProcess: a TypeError/ValueError naming the parameter,
raised before any child exists (SPEC improvement 1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import Recorder
from helpers import run_reactor

from ferroproc import reactor


def child_pids() -> set[int]:
    """This process's children, cheaply (the kernel's per-thread lists)."""
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            continue
    return pids


@pytest.fixture(autouse=True)
def no_child_started() -> Iterator[None]:
    before = child_pids()
    yield
    assert child_pids() == before, "a child was started"


def spawn(**kw: Any) -> Recorder:
    proto = kw.pop("proto", None) or Recorder()
    reactor.spawnProcess(proto, kw.pop("executable", "/bin/true"), kw.pop("args", ["true"]), **kw)
    return proto


@pytest.mark.parametrize(
    "args, exc, names",
    [
        (42, TypeError, "args"),
        ("true", TypeError, "args"),
        (b"true", TypeError, "args"),
        ({"true"}, TypeError, "args"),
        ([], ValueError, "args"),
        (["true", 1], TypeError, "args[1]"),
        (["true", None], TypeError, "args[1]"),
        (["true", "a\0b"], ValueError, "args[1]"),
        (["tr\0ue"], ValueError, "args[0]"),
        (["true", b"x\0"], ValueError, "args[1]"),
    ],
    ids=["int", "str", "bytes", "set", "empty", "int-item", "None-item", "NUL", "NUL-argv0", "NUL-bytes"],
)
def test_bad_args(args: Any, exc: type[Exception], names: str) -> None:
    proto = Recorder()
    with pytest.raises(exc) as info:
        spawn(proto=proto, args=args)
    assert names in str(info.value)
    assert proto.events == [], "connectionMade must not run"


@pytest.mark.parametrize(
    "env, exc",
    [
        ({"A=B": "1"}, ValueError),
        ({"A\0": "1"}, ValueError),
        ({"": "1"}, ValueError),
        ({1: "x"}, TypeError),
        ({"A": 1}, TypeError),
        ({"A": None}, TypeError),
        ({"A": "x\0y"}, ValueError),
        ([("A", "1")], TypeError),
        ("A=1", TypeError),
    ],
    ids=["eq-in-key", "NUL-in-key", "empty-key", "int-key", "int-value", "None-value", "NUL-in-value", "list", "str"],
)
def test_bad_env(env: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        spawn(env=env)
    assert "env" in str(info.value)


@pytest.mark.parametrize(
    "executable, exc",
    [(None, TypeError), (42, TypeError), ("", ValueError), ("/bin/tr\0ue", ValueError)],
    ids=["None", "int", "empty", "NUL"],
)
def test_bad_executable(executable: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        spawn(executable=executable)
    assert "executable" in str(info.value)


@pytest.mark.parametrize("path, exc", [(42, TypeError), ("/tm\0p", ValueError)], ids=["int", "NUL"])
def test_bad_path(path: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        spawn(path=path)
    assert "path" in str(info.value)


@pytest.mark.parametrize(
    "childFDs, exc",
    [
        ({0: "x"}, ValueError),
        ({0: b"r"}, ValueError),
        ({"0": "r"}, TypeError),
        ({-1: "r"}, ValueError),
        ({1: -3}, ValueError),
        ([(1, "r")], TypeError),
    ],
    ids=["x", "bytes-r", "str-key", "negative-key", "negative-fd", "list"],
)
def test_bad_child_fds(childFDs: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        spawn(childFDs=childFDs)
    assert "childFDs" in str(info.value)


@pytest.mark.parametrize("uid", ["0", 1.5, -1])
def test_bad_uid(uid: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        spawn(uid=uid)
    assert "uid" in str(info.value)


def test_protocol_lacking_methods() -> None:
    class NotAProtocol:
        def makeConnection(self, transport: Any) -> None:
            raise AssertionError("must not be called")

    with pytest.raises(TypeError) as info:
        spawn(proto=NotAProtocol())
    message = str(info.value)
    assert "processProtocol" in message
    assert "processEnded" in message and "childDataReceived" in message


def test_protocol_none_with_default_child_fds() -> None:
    with pytest.raises(TypeError) as info:
        reactor.spawnProcess(None, "/bin/true", ["true"])
    assert "processProtocol" in str(info.value)


def test_protocol_none_with_pipes_in_child_fds() -> None:
    with pytest.raises(TypeError, match="processProtocol"):
        reactor.spawnProcess(None, "/bin/true", ["true"], childFDs={1: "r"})


@pytest.mark.parametrize("childFDs", [{}, {0: "w", 1: "r", 2: "r"}], ids=["empty", "default"])
def test_use_pty_with_child_fds(childFDs: Any) -> None:
    with pytest.raises(ValueError, match="childFDs"):
        spawn(usePTY=True, childFDs=childFDs)


def test_valid_call_after_a_rejected_one_still_works() -> None:
    """A rejected call leaves nothing half-made behind (the leak fixture checks fds)."""
    with pytest.raises(ValueError):
        spawn(childFDs={0: "w", 1: "r", 2: "x"})
    proto = Recorder()
    reactor.spawnProcess(proto, "/bin/echo", ["echo", "ok"])
    run_reactor(proto.ended)
    assert proto.output() == b"ok\n"


# -- nothing left behind by what fails after the spawn (hardening 8) ----------------


class _Proxy:
    """A duck-typed protocol: every method comes through __getattr__."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.usefixtures("no_child_started")
def test_a_protocol_whose_methods_come_through_getattr_works() -> None:
    inner = Recorder()
    reactor.spawnProcess(_Proxy(inner), "/bin/echo", ["echo", "via proxy"])
    run_reactor(inner.ended)
    assert inner.output() == b"via proxy\n"
    assert inner.ended_reason is not None and inner.ended_reason.value.exitCode == 0


# -- a directory that exists but cannot be entered (hardening 17) -----------------

_UNENTERABLE = r"""
import os, resource, sys, tempfile  # imported before the uid drop: /root is 0700
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol

base = tempfile.mkdtemp()
locked = os.path.join(base, "locked")
os.mkdir(locked, 0)
os.chown(base, 65534, 65534)
os.setgid(65534)
os.setuid(65534)  # root could enter it anyway
for method in (None, "clone"):
    reactor._spawnMethod = method
    try:
        reactor.spawnProcess(ProcessProtocol(), "/bin/true", ["true"], path=locked)
    except PermissionError as e:
        print(method, e.filename == locked, "cannot change to directory" in str(e))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to drop to another user)")
def test_a_directory_that_cannot_be_entered_is_named_on_both_paths() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _UNENTERABLE], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["None True True", "clone True True"]
