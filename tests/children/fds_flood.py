"""Write 4 KiB chunks to the fd given as argv[1] until the reader goes away;
then exit 3 (CPython ignores SIGPIPE, so the write raises BrokenPipeError)."""

import os
import sys

fd = int(sys.argv[1])
chunk = b"x" * 4096
try:
    while True:
        os.write(fd, chunk)
except BrokenPipeError:
    sys.exit(3)
