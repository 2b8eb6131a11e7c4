"""Read each fd named on the command line to EOF, in order, then print one
line per fd to stdout: ``<fd> <byte count> <sha256 hex>``."""

import hashlib
import os
import sys

lines = []
for fd in (int(a) for a in sys.argv[1:]):
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    lines.append(f"{fd} {n} {h.hexdigest()}\n")
os.write(1, "".join(lines).encode())
