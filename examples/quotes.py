"""The seed's quotes.py: a TCP server that answers each client with a fortune.

Twisted's example (docs/core/howto/listings/process/quotes.py) running on
Twisted, with ferroproc's engine underneath: ``ferroproc.twisted.install()``
is the only addition, so ``utils.getProcessOutput`` spawns through
ferroproc. Each connection gets the output of ``/usr/games/fortune``, or of
a small stand-in when fortune is not installed, and is then closed.

    python examples/quotes.py [port]        # default 10999, on 127.0.0.1
    nc 127.0.0.1 10999

It prints ``listening on 127.0.0.1:<port>`` once it accepts connections
(port 0 picks a free port).
"""

import os
import sys

import ferroproc.twisted

ferroproc.twisted.install()

from twisted.internet import protocol, reactor, utils  # noqa: E402

QUOTES = [
    "The best way to predict the future is to invent it. -- Alan Kay",
    "Simple things should be simple, complex things should be possible. -- Alan Kay",
    "Premature optimization is the root of all evil. -- Donald Knuth",
]

if os.path.exists("/usr/games/fortune"):
    FORTUNE = ("/usr/games/fortune", [])
else:
    # A stand-in for fortune: one random quote on stdout.
    FORTUNE = (sys.executable, ["-c", f"import random; print(random.choice({QUOTES!r}))"])


class FortuneQuoter(protocol.Protocol):
    fortune = FORTUNE

    def connectionMade(self):
        executable, args = self.fortune
        output = utils.getProcessOutput(executable, args)
        output.addCallbacks(self.writeResponse, self.noResponse)

    def writeResponse(self, resp):
        self.transport.write(resp)
        self.transport.loseConnection()

    def noResponse(self, err):
        self.transport.loseConnection()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 10999
    f = protocol.Factory()
    f.protocol = FortuneQuoter
    listening = reactor.listenTCP(port, f, interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{listening.getHost().port}", flush=True)
    reactor.run()
