#!/usr/bin/env python3
"""The seed's wc example: write text to `wc`, parse its counts, print them.

From "Writing a ProcessProtocol" in Twisted's "Using Processes", with only
the imports changed (and Python 3's integer division).
"""

from ferroproc import protocol, reactor


class WCProcessProtocol(protocol.ProcessProtocol):
    def __init__(self, text: bytes) -> None:
        self.text = text

    def connectionMade(self) -> None:
        self.transport.write(self.text)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        fieldLength = len(data) // 3
        lines = int(data[:fieldLength])
        words = int(data[fieldLength : fieldLength * 2])
        chars = int(data[fieldLength * 2 :])
        self.transport.loseConnection()
        self.receiveCounts(lines, words, chars)

    def receiveCounts(self, lines: int, words: int, chars: int) -> None:
        print("Received counts from wc.")
        print("Lines:", lines)
        print("Words:", words)
        print("Characters:", chars)

    def processEnded(self, reason: object) -> None:
        reactor.stop()


if __name__ == "__main__":
    wcProcess = WCProcessProtocol(b"accessing protocols through Twisted is fun!\n")
    reactor.spawnProcess(wcProcess, "wc", ["wc"])
    reactor.run()
