"""Write a lot of output, then exit at once with code 3.

``rel_flood_exit.py OUT ERR`` writes OUT bytes to stdout and ERR bytes to
stderr, interleaved in 64 KiB blocks; byte ``i`` of each stream is
``i % 251`` so the parent can check order and completeness.

``rel_flood_exit.py --fill`` grows its stdout pipe to 1 MiB, writes an 8-byte
big-endian length followed by that many pattern bytes in one write that the
empty pipe holds entirely, and exits: it is gone while all of it is unread.
"""

import fcntl
import os
import sys

BLOCK = 65536
PATTERN = bytes(i % 251 for i in range(251 * 1024))


def pattern(offset: int, n: int) -> bytes:
    start = offset % 251
    return PATTERN[start : start + n]


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if sys.argv[1] == "--fill":
    size = fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)
    n = size - 8
    body = (PATTERN * (n // len(PATTERN) + 1))[:n]
    # One write into the empty pipe: page-aligned, so it fits exactly (a
    # separate 8-byte write would take a page of its own).
    write_all(1, n.to_bytes(8, "big") + body)
    os._exit(3)

out, err = int(sys.argv[1]), int(sys.argv[2])
sent = {1: 0, 2: 0}
want = {1: out, 2: err}
while sent[1] < want[1] or sent[2] < want[2]:
    for fd in (1, 2):
        k = min(BLOCK, want[fd] - sent[fd])
        if k > 0:
            write_all(fd, pattern(sent[fd], k))
            sent[fd] += k
os._exit(3)
