"""Describe this process's terminal as one JSON line on stdout, then wait for
a line on stdin (so the parent can look at it while it runs) and exit.

Keys: ``pid``, ``sid``, ``pgrp``, ``tcpgrp`` (the terminal's foreground
process group), ``ttys`` (``ttyname`` of fds 0, 1, 2), ``devtty`` (whether
``/dev/tty`` opens), ``size`` (rows, cols).
"""

import fcntl
import json
import os
import struct
import termios

try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    devtty = True
except OSError:
    devtty = False
rows, cols = struct.unpack("hhhh", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
info = {
    "pid": os.getpid(),
    "sid": os.getsid(0),
    "pgrp": os.getpgrp(),
    "tcpgrp": os.tcgetpgrp(0),
    "ttys": [os.ttyname(fd) for fd in (0, 1, 2)],
    "devtty": devtty,
    "size": [rows, cols],
}
print(json.dumps(info), flush=True)
input()
