#!/usr/bin/env python3
"""The seed's "Verbose Example": feed ten verses to `wc` and say out loud
which ProcessProtocol method runs when.

It prints a transcript like the one in "Using Processes" (the stdin/stderr
lines may come in another order, as the seed explains)::

    connectionMade!
    inConnectionLost! stdin is closed! (we probably did it)
    errConnectionLost! The child closed their stderr.
    outReceived! with 24 bytes!
    outConnectionLost! The child closed their stdout!
    I saw 40 lines
    processExited, status 0
    processEnded, status 0
    quitting
    Main loop terminated.

Twisted code runs unchanged apart from its imports (``twisted.internet`` →
``ferroproc``); data written to the transport is bytes, as in Python 3 Twisted.
"""

from ferroproc import protocol, reactor

VERSE = (
    b"Aleph-null bottles of beer on the wall,\n"
    b"Aleph-null bottles of beer,\n"
    b"Take one down and pass it around,\n"
    b"Aleph-null bottles of beer on the wall.\n"
)


class MyPP(protocol.ProcessProtocol):
    def __init__(self, verses: int) -> None:
        self.verses = verses
        self.data = b""

    def connectionMade(self) -> None:
        print("connectionMade!")
        for _ in range(self.verses):
            self.transport.write(VERSE)
        self.transport.closeStdin()  # tell wc we are done

    def outReceived(self, data: bytes) -> None:
        print(f"outReceived! with {len(data)} bytes!")
        self.data += data

    def errReceived(self, data: bytes) -> None:
        print(f"errReceived! with {len(data)} bytes!")

    def inConnectionLost(self) -> None:
        print("inConnectionLost! stdin is closed! (we probably did it)")

    def outConnectionLost(self) -> None:
        print("outConnectionLost! The child closed their stdout!")
        # All of wc's output is here now: "lines words chars".
        lines, _words, _chars = self.data.split()
        print(f"I saw {int(lines)} lines")

    def errConnectionLost(self) -> None:
        print("errConnectionLost! The child closed their stderr.")

    def processExited(self, reason: object) -> None:
        print(f"processExited, status {reason.value.exitCode}")  # type: ignore[attr-defined]

    def processEnded(self, reason: object) -> None:
        print(f"processEnded, status {reason.value.exitCode}")  # type: ignore[attr-defined]
        print("quitting")
        reactor.stop()


if __name__ == "__main__":
    pp = MyPP(10)
    reactor.spawnProcess(pp, "wc", ["wc"], {})
    reactor.run()
    print("Main loop terminated.")
