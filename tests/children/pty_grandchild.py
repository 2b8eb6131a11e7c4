"""Leave a grandchild holding the terminal after this process exits.

This process (the session leader) reads one line from the terminal and
exits. The grandchild waits for that exit (EOF on a private pipe), prints
``gc-ready``, reads one more line and echoes it as ``late:<line>``, then
exits: only then is the terminal's last holder gone.
"""

import os
import signal

# The session leader's exit sends SIGHUP to its foreground group, which the
# grandchild is in: ignore it from before the fork, so there is no window.
signal.signal(signal.SIGHUP, signal.SIG_IGN)
r, w = os.pipe()
if os.fork() == 0:
    os.close(w)
    while os.read(r, 100):
        pass
    os.write(1, b"gc-ready\n")
    line = os.read(0, 100)
    os.write(1, b"late:" + line)
    os._exit(0)
os.close(r)
os.read(0, 100)
os._exit(0)
