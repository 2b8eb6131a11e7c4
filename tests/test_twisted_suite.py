"""Twisted's own process test suites, with every transport from ferroproc.

Runs tests/twisted_suite/run_trial.py (``ferroproc.twisted.install()`` under
trial, minus the tests listed with a reason in
tests/twisted_suite/excluded.txt) in a subprocess and requires it to pass.
Its counts (run, passed, skipped, excluded ...) are recorded as the
``twisted_suite`` property, which conftest.py prints in pytest's terminal
summary, so ``make test`` shows them although this is one test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
pytest.importorskip("hamcrest", reason="Twisted's test suites need pyhamcrest: pip install 'ferroproc[test]'")

RUNNER = Path(__file__).resolve().parent / "twisted_suite" / "run_trial.py"


def counts_line(summary: str) -> str:
    """run_trial.py's summary block as one line, or what went wrong."""

    def count(label: str) -> str:
        m = re.search(rf"{label}:?\s+(\d+)", summary)
        return m.group(1) if m else "?"

    if "trial summary" not in summary:
        return "no summary: the trial run ended before printing one (see the test's failure)"
    return (
        f"{count('tests run')} run, {count('passed')} passed, {count('skipped')} skipped, "
        f"{count('failed')} failed, {count('errors')} errors; "
        f"{count('excluded')} excluded by tests/twisted_suite/excluded.txt"
    )


def test_twisted_process_suites_pass_on_ferroproc(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
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
    record_property("twisted_suite", counts_line(summary))
    assert proc.returncode == 0, f"trial run failed:\n{out[-20000:]}\n{err[-5000:]}"
    assert "[ferroproc] OK" in summary, summary
