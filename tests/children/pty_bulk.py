"""Write a known stream of ``argv[1]`` bytes to stdout, then exit.

``text``: lines ``NNNNNNN <letters>\\n`` (no ``\\r``, so the parent can undo
ONLCR). ``raw``: first read stdin until ``go`` arrives (the parent sets raw
mode before sending it), then write ``random.Random(1234).randbytes(n)``.
"""

import os
import random
import sys

n = int(sys.argv[1])
if sys.argv[2] == "raw":
    got = b""
    while b"go" not in got:
        got += os.read(0, 100)
    data = random.Random(1234).randbytes(n)
else:
    lines = []
    total = 0
    i = 0
    while total < n:
        line = b"%07d abcdefghijklmnopqrstuvwxyz\n" % i
        lines.append(line)
        total += len(line)
        i += 1
    data = b"".join(lines)[:n]
view = memoryview(data)
while view:
    view = view[os.write(1, view) :]
