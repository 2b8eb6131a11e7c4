"""Twisted's own process test suites, with every transport from ferroproc.

Runs tests/twisted_suite/run_trial.py (``ferroproc.twisted.install()`` under
trial, minus the tests listed with a reason in
tests/twisted_suite/excluded.txt) in a subprocess and requires it to pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
pytest.importorskip("hamcrest", reason="Twisted's test suites need pyhamcrest: pip install 'ferroproc[test]'")

RUNNER = Path(__file__).resolve().parent / "twisted_suite" / "run_trial.py"


def test_twisted_process_suites_pass_on_ferroproc(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--reporter=summary"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=1200,
    )
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    summary = out[out.rfind("[ferroproc] trial summary") :]
    assert proc.returncode == 0, f"trial run failed:\n{out[-20000:]}\n{err[-5000:]}"
    assert "[ferroproc] OK" in summary, summary
