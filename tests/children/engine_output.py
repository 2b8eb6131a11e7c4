"""Write ARGV[1] bytes of 'o' to stdout and ARGV[2] of 'e' to stderr, then
exit with ARGV[3] (default 0)."""

import os
import sys

out, err = int(sys.argv[1]), int(sys.argv[2])
code = int(sys.argv[3]) if len(sys.argv) > 3 else 0
for fd, n, ch in ((1, out, b"o"), (2, err, b"e")):
    data = ch * n
    while data:
        data = data[os.write(fd, data) :]
sys.exit(code)
