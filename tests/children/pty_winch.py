"""Print ``ready``, wait for SIGWINCH, then print what ``stty size`` says.

SIGWINCH is blocked before ``ready`` is printed and taken with ``sigwait``,
so a resize that arrives at any moment after ``ready`` is seen.
"""

import signal
import subprocess
import sys

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})
print("ready", flush=True)
signal.sigwait({signal.SIGWINCH})
size = subprocess.run(["stty", "size"], capture_output=True, check=True).stdout.decode().strip()
print(f"size {size}", flush=True)
sys.exit(0)
