"""Report credentials and whether root can be regained, as JSON.

Run with a dropped uid/gid. Reports the Uid/Gid/Groups/Cap* lines of
/proc/self/status and, for each of setuid(0), seteuid(0), setgid(0),
setegid(0), setgroups([0]) and setresuid(0, 0, 0), either "ok" (root regained:
a failure) or the errno name.
"""

import errno
import json
import os

status = {}
with open("/proc/self/status") as f:
    for line in f:
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
            status[key] = value.split()

attempts = {}
for name, call in [
    ("setuid", lambda: os.setuid(0)),
    ("seteuid", lambda: os.seteuid(0)),
    ("setgid", lambda: os.setgid(0)),
    ("setegid", lambda: os.setegid(0)),
    ("setgroups", lambda: os.setgroups([0])),
    ("setresuid", lambda: os.setresuid(0, 0, 0)),
]:
    try:
        call()
        attempts[name] = "ok"
    except OSError as e:
        attempts[name] = errno.errorcode.get(e.errno, str(e.errno))

os.write(1, json.dumps({"status": status, "attempts": attempts, "groups": os.getgroups()}).encode())
