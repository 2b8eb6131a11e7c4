"""Copy fd to fd: each argument is ``IN:OUT``; read IN to EOF while writing
what arrives to OUT, then close both. Pairs are handled in order."""

import os
import sys

for pair in sys.argv[1:]:
    src, dst = (int(x) for x in pair.split(":"))
    while True:
        chunk = os.read(src, 65536)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
    os.close(src)
    os.close(dst)
