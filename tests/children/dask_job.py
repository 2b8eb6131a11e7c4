"""A job for the Dask tests: appends "pid ppid" (its own pid, and its
parent's: the worker that started it) to DIR/NAME.starts, one line per
start; with "wait", then waits until DIR/go exists (at most 120 s: exit 3).

Run: python dask_job.py DIR NAME [wait]
"""

import os
import sys
import time


def main() -> int:
    directory, name = sys.argv[1], sys.argv[2]
    fd = os.open(os.path.join(directory, f"{name}.starts"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{os.getpid()} {os.getppid()}\n".encode())
    os.close(fd)
    if sys.argv[3:] == ["wait"]:
        go = os.path.join(directory, "go")
        deadline = time.monotonic() + 120
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                return 3
            time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
