"""Print the child's environment as NUL-separated KEY=VALUE entries."""

import os

os.write(1, b"\0".join(k + b"=" + v for k, v in sorted(os.environb.items())))
