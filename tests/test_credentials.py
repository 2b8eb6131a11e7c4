"""uid/gid on real processes (SPEC §4.3 and ferroproc's rule, SPEC preface
item 3): ``uid`` alone takes the user's primary group and the user's own
supplementary groups; ``gid`` alone sets the gid and clears supplementary
groups; nothing of root's groups survives; a uid with no passwd entry needs
a gid. Needs root.

Children that run as another user use ``/usr/bin/python3`` and ``/usr/bin/id``:
this test runner's interpreter lives under ``/root`` (mode 0700), which
another user cannot execute.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
from typing import Any

import pytest
from helpers import PY, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone
from ferroproc.protocol import ProcessProtocol

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    # Every test runs on both spawn paths (posix_spawn, and the vfork-style clone).
    pytest.mark.usefixtures("spawn_method"),
]

NOBODY = 65534
SYS_PY = "/usr/bin/python3"
ID_SCRIPT = "id -u; id -g; id -G"


def unused_id(start: int) -> int:
    n = start
    while True:
        try:
            pwd.getpwuid(n)
        except KeyError:
            try:
                grp.getgrgid(n)
            except KeyError:
                return n
        n += 1


UNKNOWN_UID = unused_id(4_000_123)
UNKNOWN_GID = unused_id(UNKNOWN_UID + 1)


class Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.reason: Any = None
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.reason = reason
        self.ended.callback(None)


def run(args: list[str], **kw: Any) -> Collect:
    p = Collect()
    reactor.spawnProcess(p, args[0], args, env=kw.pop("env", {"PATH": "/usr/bin:/bin"}), **kw)
    run_reactor(p.ended)
    assert p.err == b"", p.err
    assert p.reason.check(ProcessDone), p.reason
    return p


def ids(**kw: Any) -> tuple[int, int, list[int]]:
    """(uid, gid, groups as ``id -G`` lists them) of a child spawned with ``kw``."""
    out = run(["/bin/sh", "-c", ID_SCRIPT], **kw).out.decode().split("\n")
    return int(out[0]), int(out[1]), [int(g) for g in out[2].split()]


# -- who the child is ---------------------------------------------------------


def test_uid_and_gid() -> None:
    uid, gid, groups = ids(uid=NOBODY, gid=NOBODY)
    assert (uid, gid) == (NOBODY, NOBODY)
    assert groups == [NOBODY]


def test_uid_alone_takes_the_users_primary_group() -> None:
    user = pwd.getpwuid(NOBODY)
    uid, gid, groups = ids(uid=NOBODY)
    assert (uid, gid) == (NOBODY, user.pw_gid)
    assert sorted(groups) == sorted(set(os.getgrouplist(user.pw_name, user.pw_gid)))
    assert 0 not in groups, "root's group leaked into the child"


def user_with_supplementary_groups() -> pwd.struct_passwd | None:
    for user in pwd.getpwall():
        if user.pw_uid != 0 and len(set(os.getgrouplist(user.pw_name, user.pw_gid))) > 1:
            return user
    return None


def test_uid_alone_gives_the_users_own_supplementary_groups() -> None:
    user = user_with_supplementary_groups()
    if user is None:
        pytest.skip("no user here has supplementary groups")
    uid, gid, groups = ids(uid=user.pw_uid)
    assert (uid, gid) == (user.pw_uid, user.pw_gid)
    assert sorted(groups) == sorted(set(os.getgrouplist(user.pw_name, user.pw_gid)))


def test_uid_with_another_gid_keeps_the_users_groups_for_that_gid() -> None:
    """An explicit gid replaces the primary group."""
    uid, gid, groups = ids(uid=NOBODY, gid=UNKNOWN_GID)
    assert (uid, gid) == (NOBODY, UNKNOWN_GID)
    assert UNKNOWN_GID in groups
    assert 0 not in groups


def test_gid_alone_sets_the_gid_and_clears_supplementary_groups() -> None:
    uid, gid, groups = ids(gid=NOBODY)
    assert (uid, gid) == (0, NOBODY)
    assert groups == [NOBODY]


def test_unknown_uid_with_a_gid() -> None:
    uid, gid, groups = ids(uid=UNKNOWN_UID, gid=UNKNOWN_GID)
    assert (uid, gid, groups) == (UNKNOWN_UID, UNKNOWN_GID, [UNKNOWN_GID])


def test_uid_zero_as_root() -> None:
    uid, gid, groups = ids(uid=0)
    assert (uid, gid) == (0, 0)
    assert sorted(groups) == sorted(set(os.getgrouplist("root", 0)))


@pytest.mark.skipif(not os.access(SYS_PY, os.X_OK), reason=f"needs {SYS_PY}")
def test_the_child_cannot_get_root_back() -> None:
    script = """
import os
for what, call in [("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                   ("setgroups", lambda: os.setgroups([0])), ("seteuid", lambda: os.seteuid(0))]:
    try:
        call()
        print(what, "worked")
    except PermissionError:
        print(what, "EPERM")
print(os.getresuid(), os.getresgid(), os.getgroups())
"""
    out = run([SYS_PY, "-c", script], uid=NOBODY, gid=NOBODY).out.decode().splitlines()
    assert out[:4] == ["setuid EPERM", "setgid EPERM", "setgroups EPERM", "seteuid EPERM"]
    n = NOBODY
    assert out[4] == f"({n}, {n}, {n}) ({n}, {n}, {n}) [{n}]"  # real, effective and saved ids


def test_credentials_with_a_pty() -> None:
    """The terminal is set up (as root) before the ids change."""
    p = Collect()
    reactor.spawnProcess(p, "/bin/sh", ["sh", "-c", "id -u; id -G; tty"], usePTY=True, uid=NOBODY, gid=NOBODY)
    run_reactor(p.ended)
    assert p.reason.check(ProcessDone)
    out = p.out.decode().split("\r\n")
    assert out[:2] == [str(NOBODY), str(NOBODY)]
    assert out[2].startswith("/dev/pts/")


def test_chdir_happens_before_privileges_are_dropped(tmp_path: Any) -> None:
    """As in Twisted (SPEC §4.3): ``path`` is entered as root, so a directory
    only root may enter works."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    out = run(["/bin/pwd"], uid=NOBODY, gid=NOBODY, path=str(private)).out
    assert out == f"{private}\n".encode()


def test_fds_opened_by_root_are_usable_by_the_child(tmp_path: Any) -> None:
    """Ids limit what the child may open, not the fds it is given: a root-only
    file (mode 0600) passed as fd 1 takes the child's output."""
    secret = tmp_path / "root-only.log"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        p = Collect()
        reactor.spawnProcess(
            p,
            "/bin/sh",
            ["sh", "-c", f"id -u; cat {secret} 2>/dev/null || echo denied >&2"],
            env={"PATH": "/usr/bin:/bin"},
            uid=NOBODY,
            gid=NOBODY,
            childFDs={1: fd, 2: "r"},
        )
        run_reactor(p.ended)
    finally:
        os.close(fd)
    assert secret.read_bytes() == f"{NOBODY}\n".encode()
    assert p.err == b"denied\n"  # opening it by name is refused


def test_missing_executable_as_another_user_raises() -> None:
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(Collect(), "/nonexistent/prog", ["prog"], uid=NOBODY, gid=NOBODY)


def test_executable_the_user_cannot_run_raises_permission_error(tmp_path: Any) -> None:
    """Root can read the script; nobody cannot (mode 0700): the exec, after
    the ids change, fails with EACCES, raised from spawnProcess."""
    script = tmp_path / "secret.sh"
    script.write_text("#!/bin/sh\necho should not run\n")
    script.chmod(0o700)
    with pytest.raises(PermissionError):
        reactor.spawnProcess(Collect(), str(script), [str(script)], uid=NOBODY, gid=NOBODY)


# -- errors -------------------------------------------------------------------


def test_unknown_uid_without_gid_is_a_value_error_naming_it() -> None:
    p = Collect()
    with pytest.raises(ValueError, match=str(UNKNOWN_UID)):
        reactor.spawnProcess(p, "/usr/bin/id", ["id"], uid=UNKNOWN_UID)
    assert p.reason is None


@pytest.mark.parametrize(
    ("kw", "exc"),
    [
        ({"uid": "0"}, TypeError),
        ({"gid": 1.5}, TypeError),
        ({"uid": True}, TypeError),
        ({"uid": -1}, ValueError),
        ({"gid": -5}, ValueError),
        ({"gid": 2**32}, ValueError),
    ],
)
def test_bad_ids(kw: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"uid|gid"):
        reactor.spawnProcess(Collect(), "/usr/bin/id", ["id"], **kw)


def test_forced_posix_spawn_never_drops_the_credentials(spawn_method: str | None) -> None:
    """posix_spawn cannot change ids. Forcing it (a test hook) must either
    refuse or still give the child the ids asked for, never run it as root."""
    reactor._spawnMethod = "posix_spawn"
    p = Collect()
    try:
        reactor.spawnProcess(p, "/bin/sh", ["sh", "-c", ID_SCRIPT], uid=NOBODY, gid=NOBODY)
    except (ValueError, OSError):
        return
    run_reactor(p.ended)
    assert p.out.decode().split() == [str(NOBODY)] * 3


DROP_THEN_SPAWN = """
import json, os, sys
# Everything is imported before the drop: this interpreter lives under /root (0700).
import ferroproc, ferroproc.failure, ferroproc.defer, ferroproc.error, logging, resource
from ferroproc import reactor
from ferroproc.protocol import ProcessProtocol
reactor._spawnMethod = None if sys.argv[1] == "None" else sys.argv[1]
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
result = {}
class P(ProcessProtocol):
    out = b""
    def outReceived(self, data):
        self.out += data
    def processEnded(self, reason):
        result["same-uid"] = [self.out.decode(), reason.value.exitCode]
        reactor.stop()
for kw in ({"uid": 0}, {"gid": 0}, {"uid": 0, "gid": 0}):
    try:
        reactor.spawnProcess(ProcessProtocol(), "/usr/bin/id", ["id"], **kw)
        result[str(kw)] = "started"
    except OSError as e:
        result[str(kw)] = [type(e).__name__, e.errno, str(e)]
reactor.spawnProcess(P(), "/usr/bin/id", ["id", "-u"], uid=65534, gid=65534)
reactor.run(installSignalHandlers=False)
print(json.dumps(result))
"""


def test_unprivileged_parent_asking_for_root_gets_permission_error(spawn_method: str | None) -> None:
    """A parent that has dropped to nobody asks for uid/gid 0: EPERM, as a
    PermissionError from spawnProcess (no child runs). Asking for its own ids
    works."""
    done = subprocess.run(
        [PY, "-c", DROP_THEN_SPAWN, str(spawn_method)], capture_output=True, check=True, timeout=30, cwd="/"
    )
    result = json.loads(done.stdout)
    for kw in ("{'uid': 0}", "{'gid': 0}", "{'uid': 0, 'gid': 0}"):
        name, code, message = result[kw]
        assert (name, code) == ("PermissionError", 1), result[kw]
        assert "uid" in message or "gid" in message or "groups" in message, message
    assert result["same-uid"] == ["65534\n", 0]


# -- the parent comes out as it went in; the child keeps no way back -----------
# (hardening 12, 13, 14)


def _dumpable() -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_GET_DUMPABLE = 3
    return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def test_the_parent_stays_dumpable_after_a_uid_switch() -> None:
    before = _dumpable()
    assert before == 1, "precondition: a normal process is dumpable"
    run(["/usr/bin/id", "-u"], uid=NOBODY)
    run(["/usr/bin/id", "-u"], uid=NOBODY, gid=NOBODY)
    assert _dumpable() == before
    assert os.stat(f"/proc/{os.getpid()}").st_uid == os.geteuid(), "/proc/self stays ours"


def test_a_child_switched_to_another_user_gets_its_own_session() -> None:
    """It keeps no controlling terminal of the privileged parent, so it
    cannot open /dev/tty or push input into it with TIOCSTI."""
    script = (
        "import os, sys\n"
        "print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())\n"
        "try:\n"
        "    os.open('/dev/tty', os.O_RDWR)\n"
        "    print('tty')\n"
        "except OSError:\n"
        "    print('no tty')\n"
    )
    out = run([SYS_PY, "-c", script], uid=NOBODY).out.decode().split("\n")
    assert out[:2] == ["True True", "no tty"]


def test_a_terminal_is_handed_to_the_user_the_child_runs_as() -> None:
    out = run(["/bin/sh", "-c", "stat -c '%u %a' $(tty)"], uid=NOBODY, usePTY=True).out.decode()
    uid, mode = out.strip().split()
    assert (int(uid), mode) == (NOBODY, "620")
