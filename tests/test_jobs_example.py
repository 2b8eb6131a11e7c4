"""examples/jobs.py, run as a user would run it: checksums of generated
files through ferroproc.jobs, a job log, and a resume of what failed."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs.py"


def test_the_jobs_example_runs_and_resumes(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x" * i)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1, proc.stderr  # GNU parallel's status: one failed job
    lines = proc.stdout.splitlines()
    for i in range(5):
        digest = hashlib.sha256(b"x" * i).hexdigest()[:16]
        assert f"{i + 1:3} {digest}  f{i}" in lines
    assert "  6 failed (2) after 2 attempts: no such file" in lines
    assert "5 done, 1 failed" in proc.stdout
    assert "resumed: 5 skipped, 1 failed again" in proc.stdout
