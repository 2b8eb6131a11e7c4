"""Print this process's argv exactly as the kernel gave it.

Line 1: ``repr`` of the arguments after the script, as bytes (``os.fsencode``
undoes Python's surrogateescape decoding, so any byte survives).
Then the raw ``/proc/self/cmdline`` (NUL-separated), after a ``--cmdline--`` line.
"""

import os
import sys

args = [os.fsencode(a) for a in sys.argv[1:]]
with open("/proc/self/cmdline", "rb") as f:
    raw = f.read()
os.write(1, repr(args).encode() + b"\n--cmdline--\n" + raw)
