"""ferroproc: Twisted's process API on a Rust engine.

Port Twisted code by changing ``twisted.internet`` / ``twisted.python``
imports to ``ferroproc``::

    from ferroproc import reactor
    from ferroproc.protocol import ProcessProtocol

    class Echo(ProcessProtocol):
        def outReceived(self, data: bytes) -> None:
            print(data)

        def processEnded(self, reason) -> None:
            reactor.stop()

    reactor.spawnProcess(Echo(), "echo", ["echo", "hello"])
    reactor.run()
"""

from ferroproc._core import __version__
from ferroproc._reactor import Reactor, reactor
from ferroproc._spawnargs import ChildOptions, SpawnOptions

__all__ = ["ChildOptions", "Reactor", "SpawnOptions", "__version__", "reactor"]
