"""What a live child costs the parent (issue 23, S6's 10,000 children): no
Python object is made per child that nothing asked for."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest
from helpers import run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.protocol import ProcessProtocol


class Quiet(ProcessProtocol):
    """A protocol with no attribute that is itself a dict."""

    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def has_instance_dict(ob: object) -> bool:
    """Whether ``ob``'s ``__dict__`` has been made. CPython keeps an
    instance's attributes without a dict until someone asks for
    ``__dict__``; the collector then sees the dict instead of the values."""
    return any(type(r) is dict for r in gc.get_referents(ob))


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="CPython 3.10 makes an instance's __dict__ with its first attribute"
)
def test_spawning_makes_no_protocol_dict() -> None:
    # The spawn checks (is the protocol's class enough to check? does it
    # keep the default childDataReceived?) ask the class and the bound
    # method, never the instance's __dict__ (64 bytes or more per child).
    proto = Quiet()
    assert not has_instance_dict(proto)
    reactor.spawnProcess(proto, "/bin/true", ["true"])
    assert not has_instance_dict(proto)
    run_reactor(proto.ended)
    assert not has_instance_dict(proto)
    assert proto.transport.status == 0
