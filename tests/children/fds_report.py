"""Report this process's open fds as JSON, written to the file named by argv[1].

For each open fd: ``dev``/``ino`` (what it is), ``link`` (``readlink`` of
``/proc/self/fd/N``), ``acc`` ("r", "w" or "rw") and ``pipe`` (a FIFO or not).

``--exercise`` then uses every pipe end (``--exercise=3,5`` only those fds): a
write end gets ``token-<fd>`` and is closed; a read end is read to EOF and
what it held is reported as ``read``.
The write ends are done first, so a parent that reads the child's tokens while
it writes and closes its own pipes never deadlocks.

The listing is taken before anything else is opened; the directory fd that
``os.listdir`` used is closed again by then, so ``fstat`` rules it out.
"""

import fcntl
import json
import os
import stat
import sys

names = os.listdir("/proc/self/fd")
fds = {}
for name in names:
    fd = int(name)
    try:
        st = os.fstat(fd)
    except OSError:
        continue  # the listing's own fd, closed by now
    mode = os.O_ACCMODE & fcntl.fcntl(fd, fcntl.F_GETFL)
    fds[fd] = {
        "dev": st.st_dev,
        "ino": st.st_ino,
        "pipe": stat.S_ISFIFO(st.st_mode),
        "acc": {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}[mode],
        "link": os.readlink(f"/proc/self/fd/{fd}"),
    }

exercise: set[int] = set()
for arg in sys.argv[2:]:
    if arg == "--exercise":
        exercise = {fd for fd, info in fds.items() if info["pipe"]}
    elif arg.startswith("--exercise="):
        exercise = {int(x) for x in arg.split("=", 1)[1].split(",") if x}

if exercise:
    for fd, info in sorted(fds.items()):
        if fd in exercise and info["acc"] == "w":
            os.write(fd, f"token-{fd}".encode())
            os.close(fd)
    for fd, info in sorted(fds.items()):
        if fd in exercise and info["acc"] == "r":
            chunks = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            info["read"] = b"".join(chunks).decode("latin-1")
            os.close(fd)

with open(sys.argv[1], "w") as f:
    json.dump({str(k): v for k, v in fds.items()}, f)
