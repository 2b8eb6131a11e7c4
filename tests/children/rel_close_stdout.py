"""Close stdout early, then keep running until stdin reaches EOF.

Writes ``stdout closed`` to stderr once fd 1 is closed, then exits with the
number of bytes read from stdin (mod 256) as its exit code.
"""

import os

os.close(1)
os.write(2, b"stdout closed\n")
total = 0
while chunk := os.read(0, 65536):
    total += len(chunk)
os._exit(total % 256)
