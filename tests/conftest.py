"""Shared fixtures.

- ``no_leaks`` (autouse): fails any test that leaves an extra fd open in this
  process, or a child of this process behind (running or zombie), once the
  reactor has had a moment to finish what the test started. Mark a test
  ``@pytest.mark.allow_leaks`` only with a reason.
- ``reactor``: the default ``ferroproc.reactor``.

Drive the reactor with ``helpers.run_reactor(until, timeout)``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import iterate_until, open_fds, our_children

from ferroproc import reactor as _reactor


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks(reason): skip the fd/child leak check")
    # A suite started in the background of a non-interactive shell (`make
    # test &`, nohup) inherits SIGINT ignored, and Python then leaves it so;
    # the tests of Ctrl-C handling need Python's usual handler, as a shell in
    # the foreground gives it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the counts of Twisted's own process suites, which run as a single
    pytest test (tests/test_twisted_suite.py records them), in the summary
    that ``make test`` shows even with ``-q``."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "twisted_suite":
                    terminalreporter.write_sep("-", "Twisted's process suites under ferroproc.twisted (trial)")
                    terminalreporter.write_line(str(value))


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    # A module may hold engines that live as long as their thread (the asyncio
    # host's): its settle_engines() makes sure they exist before and after.
    settle = getattr(request.module, "settle_engines", lambda: None)
    settle()
    before = open_fds()
    kids_before = {pid for pid, _ in our_children()}
    yield
    # Let the engine deliver what the test started (closing pipes, reaping).
    iterate_until(lambda: not [p for p, _ in our_children() if p not in kids_before], 5.0)
    settle()
    left = [(p, s) for p, s in our_children() if p not in kids_before]
    leaked = sorted(open_fds() - before)
    details = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not left, f"test left children behind (pid, state): {left}"
    assert not leaked, f"test leaked fds: {details}"


@pytest.fixture
def reactor() -> Any:
    return _reactor


@pytest.fixture(params=["posix_spawn", "clone"])
def spawn_method(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Run a test on both spawn paths: posix_spawn, and the vfork-style clone
    path (the default where the kernel has CLOSE_RANGE_UNSHARE; the classic
    clone without it runs in test_spawn_paths.py). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("spawn_method")``."""
    old = _reactor._spawnMethod
    _reactor._spawnMethod = request.param
    try:
        yield request.param
    finally:
        _reactor._spawnMethod = old
