"""Fork a grandchild that inherits stdin, stdout and stderr, then exit 0.

The child prints ``grandchild <pid>`` and exits at once. The grandchild keeps
every pipe open until it reads a line from stdin, then writes
``grandchild got <line>`` to stdout and exits: the parent decides when the
pipes close, so ``processExited`` comes long before ``processEnded``.
"""

import os
import sys

pid = os.fork()
if pid == 0:
    line = sys.stdin.buffer.readline()
    os.write(1, b"grandchild got " + line)
    os._exit(0)
os.write(1, b"grandchild %d\n" % pid)
os._exit(0)
