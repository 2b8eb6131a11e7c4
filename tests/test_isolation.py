"""Privilege and isolation: what a child gets from its parent, on purpose
or not. Only what was asked for crosses over: the environment given (empty
by default), the fds mapped, default signal state, the dropped credentials
(with no way back to root), and the arguments as literal bytes.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHILDREN, PY, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone
from ferroproc.protocol import ProcessProtocol

SYSTEM_PY = "/usr/bin/python3"  # readable by every user (ours may live under /root)
NOBODY = 65534


class Recorder(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred = Deferred()
        self.data: dict[int, bytearray] = {}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.data.setdefault(childFD, bytearray()).extend(data)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)

    def out(self, fd: int = 1) -> bytes:
        return bytes(self.data.get(fd, b""))


def run(executable: str, args: list[Any], **kw: Any) -> bytes:
    """Spawn, run to the end (exit 0 required), return stdout (the terminal
    with usePTY, with its \\r\\n turned back into \\n)."""
    p = Recorder()
    reactor.spawnProcess(p, executable, args, **kw)
    value = run_reactor(p.ended, 15)
    assert isinstance(value, ProcessDone), (value, p.out(2))
    out = p.out()
    return out.replace(b"\r\n", b"\n") if kw.get("usePTY") else out


@pytest.fixture(params=["posix_spawn", "clone", "pty"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Spawn keywords for each way a child can be started: posix_spawn, the
    vfork-style clone (the default), and a terminal."""
    monkeypatch.setattr(reactor, "_spawnMethod", request.param if request.param != "pty" else None)
    return {"usePTY": True} if request.param == "pty" else {}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_system_python = pytest.mark.skipif(not os.access(SYSTEM_PY, os.X_OK), reason=f"needs {SYSTEM_PY}")


# -- environment ------------------------------------------------------------


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FERROPROC_SECRET", "hunter2")
    return "FERROPROC_SECRET=hunter2"


def env_of(child_out: bytes) -> set[bytes]:
    return set(child_out.split(b"\0")) - {b""}


def test_env_omitted_is_empty(mode: dict[str, Any], secret: str) -> None:
    out = run("/usr/bin/env", ["env", "-0"], **mode)
    assert env_of(out) == set(), f"the child inherited {out!r}"


def test_env_dict_is_exactly_that(mode: dict[str, Any], secret: str) -> None:
    env = {"ONLY": "this", b"RAW\xff": b"\xfe\x01 $(x) `y`"}
    out = run("/usr/bin/env", ["env", "-0"], env=env, **mode)
    assert env_of(out) == {b"ONLY=this", b"RAW\xff=\xfe\x01 $(x) `y`"}


def test_env_None_is_os_environ(mode: dict[str, Any], secret: str) -> None:
    out = run("/usr/bin/env", ["env", "-0"], env=None, **mode)
    assert secret.encode() in env_of(out)


def test_env_omitted_with_a_uid_drop_is_still_empty(secret: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    out = run("/usr/bin/env", ["env", "-0"], uid=NOBODY, gid=NOBODY, path="/")
    assert env_of(out) == set()


# -- file descriptors -------------------------------------------------------


@pytest.fixture
def parent_fds(tmp_path: Path) -> Iterator[dict[str, int]]:
    """Fds the parent holds that a careless spawn would pass on: inheritable
    and not, low and high numbers, a file, a socket, a pipe."""
    f = tmp_path / "secret-file"
    f.write_text("secret")
    fds: dict[str, int] = {}
    fds["inheritable"] = os.open(f, os.O_RDONLY)
    os.set_inheritable(fds["inheritable"], True)
    fds["cloexec"] = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
    fds["high"] = os.dup2(fds["inheritable"], 300, inheritable=True)
    sock = socket.socket()
    sock.set_inheritable(True)
    fds["socket"] = sock.detach()
    r, w = os.pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    fds["pipe_r"], fds["pipe_w"] = r, w
    yield fds
    for fd in fds.values():
        os.close(fd)


def child_fds(**kw: Any) -> dict[int, tuple[int, int, str]]:
    out = run(PY, [PY, str(CHILDREN / "rel_fds.py")], **kw)
    return {int(k): (v[0], v[1], v[2]) for k, v in json.loads(out).items()}


def test_only_stdio_reaches_the_child_by_default(mode: dict[str, Any], parent_fds: dict[str, int]) -> None:
    got = child_fds(**mode)
    assert sorted(got) == [0, 1, 2], f"unmapped fds reached the child: {got}"
    if mode:
        assert {v[2] for v in got.values()} == {"chr"}  # the terminal, thrice


def test_only_mapped_fds_reach_the_child(parent_fds: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    for clone in (False, True):
        monkeypatch.setattr(reactor, "_neverUseSpawn", clone)
        mapping: dict[int, Any] = {
            0: "w",
            1: "r",
            2: "r",
            5: parent_fds["inheritable"],
            7: parent_fds["cloexec"],
            9: "r",
        }
        got = child_fds(childFDs=mapping)
        assert sorted(got) == [0, 1, 2, 5, 7, 9]
        # Mapped by identity: the child's 5 and 7 are the parent's file.
        for child_fd, name in ((5, "inheritable"), (7, "cloexec")):
            st = os.fstat(parent_fds[name])
            assert got[child_fd][:2] == (st.st_dev, st.st_ino)
        assert got[9][2] == "fifo"


# -- signal mask and dispositions -------------------------------------------


def _mask(status: bytes, field: bytes) -> int:
    for line in status.splitlines():
        if line.startswith(field + b":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field!r} not in /proc/self/status")


LOW_SIGNALS = (1 << 31) - 1  # bits for signals 1..31; glibc keeps 32/33 for itself


@pytest.fixture
def hostile_signal_state() -> Iterator[None]:
    """A parent with blocked, ignored and handled signals (Python itself
    already ignores SIGPIPE and SIGXFSZ)."""
    blocked = {signal.SIGUSR1, signal.SIGTERM, signal.SIGCHLD, signal.SIGWINCH}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGUSR2, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP)}
    old[signal.SIGALRM] = signal.signal(signal.SIGALRM, lambda s, f: None)
    try:
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def test_child_signal_mask_empty_and_dispositions_default(mode: dict[str, Any], hostile_signal_state: None) -> None:
    status = run("/bin/cat", ["cat", "/proc/self/status"], **mode)
    assert _mask(status, b"SigBlk") & LOW_SIGNALS == 0, "blocked signals leaked into the child"
    assert _mask(status, b"SigIgn") & LOW_SIGNALS == 0, "ignored signals leaked into the child"


@needs_root
def test_signal_state_reset_after_a_uid_drop(hostile_signal_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for clone in (False, True):
        monkeypatch.setattr(reactor, "_neverUseSpawn", clone)
        status = run("/bin/cat", ["cat", "/proc/self/status"], uid=NOBODY, gid=NOBODY, path="/")
        assert _mask(status, b"SigBlk") & LOW_SIGNALS == 0
        assert _mask(status, b"SigIgn") & LOW_SIGNALS == 0


def test_the_parent_signal_state_is_untouched(hostile_signal_state: None) -> None:
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    run("/bin/true", ["true"])
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == mask
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN


# -- credentials ------------------------------------------------------------


def creds(**kw: Any) -> dict[str, Any]:
    out = run(SYSTEM_PY, [SYSTEM_PY, "-I", "-S", str(CHILDREN / "rel_creds.py")], path="/", **kw)
    result: dict[str, Any] = json.loads(out)
    return result


@needs_root
@needs_system_python
@pytest.mark.parametrize("ids", [{"uid": NOBODY, "gid": NOBODY}, {"uid": NOBODY}], ids=["uid+gid", "uid-only"])
def test_uid_drop_cannot_regain_root(mode: dict[str, Any], ids: dict[str, int]) -> None:
    c = creds(**ids, **mode)
    st = c["status"]
    assert st["Uid"] == [str(NOBODY)] * 4  # real, effective, saved, filesystem
    assert st["Gid"] == [str(NOBODY)] * 4  # uid alone takes nobody's primary group
    groups = [int(g) for g in st["Groups"]]
    assert 0 not in groups and 0 not in c["groups"], "a root group survived the drop"
    assert set(groups) <= set(os.getgrouplist("nobody", NOBODY))
    for cap in ("CapPrm", "CapEff", "CapAmb", "CapInh"):
        assert int(st[cap][0], 16) == 0, f"{cap} kept capabilities"
    assert c["attempts"] == dict.fromkeys(
        ("setuid", "seteuid", "setgid", "setegid", "setgroups", "setresuid"), "EPERM"
    ), "the child could regain root"


@needs_root
@needs_system_python
def test_gid_alone_clears_root_supplementary_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    for clone in (False, True):
        monkeypatch.setattr(reactor, "_neverUseSpawn", clone)
        c = creds(gid=NOBODY)
        assert c["status"]["Gid"] == [str(NOBODY)] * 4
        assert c["status"]["Groups"] == []
        assert c["status"]["Uid"] == ["0"] * 4  # still root: only the group changed


@needs_root
def test_dropped_child_cannot_read_root_only_files(tmp_path: Path) -> None:
    f = tmp_path / "root-only"
    f.write_text("secret")
    f.chmod(0o600)
    p = Recorder()
    reactor.spawnProcess(p, "/bin/cat", ["cat", str(f)], uid=NOBODY, gid=NOBODY, path="/")
    value = run_reactor(p.ended, 10)
    assert value.exitCode == 1 and b"Permission denied" in p.out(2) and p.out() == b""


# -- arguments verbatim -----------------------------------------------------

NASTY_ARGS: list[str | bytes] = [
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "| touch {marker}",
    "&& touch {marker}",
    "> {marker}",
    "*",
    "/*",
    "?",
    "[a-z]*",
    "~",
    "$HOME",
    "${PATH}",
    "'single'",
    '"double"',
    "back\\slash",
    "new\nline",
    "tab\there",
    "  spaces  ",
    "",
    "-c",
    "--",
    "%s%n",
    "é ünïcødé 日本",
    b"\xff\xfe not utf-8 \x80",
    b"\x1b[31mescape\x1b[0m",
]


def test_arguments_arrive_as_literal_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    args = [a.replace("{marker}", str(marker)) if isinstance(a, str) else a for a in NASTY_ARGS]
    want = [a if isinstance(a, bytes) else a.encode() for a in args]
    for clone in (False, True):
        monkeypatch.setattr(reactor, "_neverUseSpawn", clone)
        out = run(PY, [PY, str(CHILDREN / "rel_argv.py"), *args], path=str(tmp_path))
        first, _, raw = out.partition(b"\n--cmdline--\n")
        assert ast.literal_eval(first.decode()) == want
        assert raw == b"".join(os.fsencode(a) + b"\0" for a in [PY, str(CHILDREN / "rel_argv.py"), *args])
    assert not marker.exists(), "an argument was interpreted by a shell"
    assert sorted(os.listdir(tmp_path)) == [], "an argument created a file (redirection or glob side effect)"


def test_argv0_and_executable_are_independent() -> None:
    # Twisted semantics: args[0] is the program's name, not prepended.
    out = run("/bin/sh", ["not-sh-at-all", "-c", 'printf "%s" "$0"'])
    assert out == b"not-sh-at-all"


def test_a_shell_is_used_only_when_asked_for() -> None:
    out = run("/bin/echo", ["echo", "$(id -u)", "`id -u`", "$$"])
    assert out == b"$(id -u) `id -u` $$\n"
