"""The child's environment, working directory, executable lookup and exec
failures (SPEC §1.1 env table, improvements 1 and 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from engine_support import Recorder, spawn_and_run
from helpers import CHILDREN, PY, our_children

from ferroproc import reactor
from ferroproc.error import ProcessDone

ENV_CHILD = str(CHILDREN / "engine_env.py")
# What a child Python may add to its own environment (PEP 538 locale coercion).
RUNTIME_ADDED = {b"LC_CTYPE"}


def env_of(proto: Recorder) -> dict[bytes, bytes]:
    out = proto.output()
    entries = [e for e in out.split(b"\0") if e]
    return dict(e.split(b"=", 1) for e in entries)


def children() -> set[int]:
    return {pid for pid, _ in our_children()}


# -- env ---------------------------------------------------------------------


def test_env_omitted_is_empty() -> None:
    proto = spawn_and_run(["/usr/bin/env", "-0"])
    assert proto.output() == b""


def test_env_omitted_python_child_sees_only_its_runtime_additions() -> None:
    proto = spawn_and_run([PY, ENV_CHILD])
    assert set(env_of(proto)) <= RUNTIME_ADDED


def test_env_none_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROPROC_ENGINE_MARKER", "marker value\twith tab")
    proto = spawn_and_run(["/usr/bin/env", "-0"], env=None)
    env = env_of(proto)
    assert env[b"FERROPROC_ENGINE_MARKER"] == b"marker value\twith tab"
    assert env == dict(os.environb)


def test_env_dict_is_exactly_that() -> None:
    given = {"A": "1", "SPACES": "two words", b"BYTES_KEY": b"\xff\xfe", "EMPTY": "", "EQ": "a=b"}
    proto = spawn_and_run(["/usr/bin/env", "-0"], env=given)
    assert env_of(proto) == {
        b"A": b"1",
        b"SPACES": b"two words",
        b"BYTES_KEY": b"\xff\xfe",
        b"EMPTY": b"",
        b"EQ": b"a=b",
    }


def test_env_empty_dict_is_empty() -> None:
    proto = spawn_and_run(["/usr/bin/env", "-0"], env={})
    assert proto.output() == b""


# -- path (working directory) --------------------------------------------------


@pytest.mark.parametrize("kind", [str, bytes, Path])
def test_path_is_the_childs_cwd(tmp_path: Path, kind: Any) -> None:
    where = tmp_path / "work dir"
    where.mkdir()
    arg = os.fsencode(where) if kind is bytes else kind(where)
    proto = spawn_and_run(["/bin/pwd"], path=arg)
    assert proto.output() == os.fsencode(where.resolve()) + b"\n"


def test_path_none_is_the_parents_cwd() -> None:
    proto = spawn_and_run(["/bin/pwd"], path=None)
    assert proto.output() == os.fsencode(os.getcwd()) + b"\n"


def test_nonexistent_path_raises_before_any_child(tmp_path: Path) -> None:
    before = children()
    proto = Recorder()
    with pytest.raises(FileNotFoundError) as info:
        reactor.spawnProcess(proto, "/bin/pwd", ["pwd"], path=str(tmp_path / "missing"))
    assert "missing" in str(info.value)
    assert proto.events == [], "no connectionMade"
    assert children() == before


def test_non_directory_path_raises_before_any_child(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    before = children()
    with pytest.raises(NotADirectoryError) as info:
        reactor.spawnProcess(Recorder(), "/bin/pwd", ["pwd"], path=str(afile))
    assert isinstance(info.value, OSError)
    assert "afile" in str(info.value)
    assert children() == before


# -- PATH lookup ---------------------------------------------------------------


def fake_program(directory: Path, name: str, says: str) -> Path:
    prog = directory / name
    prog.write_text(f"#!/bin/sh\necho {says}\n")
    prog.chmod(0o755)
    return prog


def test_bare_name_with_empty_env_uses_parents_path() -> None:
    proto = spawn_and_run(["wc", "-c"], stdin=b"12345")
    assert proto.output().strip() == b"5"
    assert proto.ended_reason.check(ProcessDone)


def test_bare_name_uses_the_childs_path_first(tmp_path: Path) -> None:
    fake_program(tmp_path, "wc", "fake-wc")
    proto = spawn_and_run(["wc"], stdin=b"", env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert proto.output() == b"fake-wc\n"


def test_bare_name_found_on_a_later_entry_of_the_childs_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_program(bindir, "engine-probe-prog", "found")
    proto = spawn_and_run(["engine-probe-prog"], env={"PATH": f"{empty}:{bindir}"})
    assert proto.output() == b"found\n"


def test_childs_path_without_the_program_is_not_found(tmp_path: Path) -> None:
    """With a PATH of its own, the parent's PATH is not searched."""
    before = children()
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(Recorder(), "wc", ["wc"], env={"PATH": str(tmp_path)})
    assert children() == before


# -- exec failures ------------------------------------------------------------


def test_missing_executable_is_file_not_found(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-program")
    before = children()
    proto = Recorder()
    with pytest.raises(FileNotFoundError) as info:
        reactor.spawnProcess(proto, missing, [missing])
    assert missing in str(info.value)
    assert info.value.filename == missing
    assert proto.events == []
    assert children() == before


def test_missing_bare_name_is_file_not_found() -> None:
    with pytest.raises(FileNotFoundError) as info:
        reactor.spawnProcess(Recorder(), "ferroproc-no-such-program", ["x"])
    assert "ferroproc-no-such-program" in str(info.value)


def test_non_executable_file_is_permission_error(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    before = children()
    with pytest.raises(PermissionError) as info:
        reactor.spawnProcess(Recorder(), str(script), ["not-executable"])
    assert "not-executable" in str(info.value)
    assert info.value.filename == str(script)
    assert children() == before


def test_directory_as_executable_is_permission_error(tmp_path: Path) -> None:
    with pytest.raises(PermissionError) as info:
        reactor.spawnProcess(Recorder(), str(tmp_path), ["dir"])
    assert str(tmp_path) in str(info.value)


def test_exec_failure_with_path_set(tmp_path: Path) -> None:
    """The fork path (a cwd given) reports exec errors the same way."""
    with pytest.raises(FileNotFoundError):
        reactor.spawnProcess(Recorder(), str(tmp_path / "nope"), ["nope"], path=str(tmp_path))
