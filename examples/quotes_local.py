"""The seed's quotes.py example without the network.

The original serves the output of ``/usr/games/fortune`` to each TCP client,
using ``utils.getProcessOutput``. Here the quote is printed instead. Without
fortune installed, a tiny Python child stands in for it.
"""

import os
import sys

from ferroproc import reactor, utils

QUOTES = [
    "The best way to predict the future is to invent it. -- Alan Kay",
    "Simple things should be simple, complex things should be possible. -- Alan Kay",
    "Premature optimization is the root of all evil. -- Donald Knuth",
]

if os.path.exists("/usr/games/fortune"):
    FORTUNE = ("/usr/games/fortune", [])
else:
    FORTUNE = (
        sys.executable,
        ["-c", f"import random; print(random.choice({QUOTES!r}))"],
    )


class FortuneQuoter:
    """Gets one quote and prints it (the original writes it to a socket)."""

    def start(self):
        executable, args = FORTUNE
        output = utils.getProcessOutput(executable, args)
        output.addCallbacks(self.writeResponse, self.noResponse)
        output.addBoth(lambda _: reactor.stop())

    def writeResponse(self, resp):
        sys.stdout.write(resp.decode(errors="replace"))

    def noResponse(self, err):
        print(f"no quote today: {err.getErrorMessage()}", file=sys.stderr)


if __name__ == "__main__":
    reactor.callWhenRunning(FortuneQuoter().start)
    reactor.run()
