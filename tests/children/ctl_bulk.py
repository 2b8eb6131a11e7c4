"""Write one byte, then, a moment later, the rest of N bytes at once.

``ctl_bulk.py N``: the first byte comes on its own, so that a parent that
stops reading at its first output does so before the bulk; the rest (N - 1
bytes of ``x``) then blocks on the full pipe until the parent reads again.
"""

import sys
import time

size = int(sys.argv[1])
sys.stdout.buffer.write(b"x")
sys.stdout.flush()
time.sleep(0.2)
sys.stdout.buffer.write(b"x" * (size - 1))
