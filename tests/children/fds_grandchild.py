"""Leave a grandchild holding fds 0 and 3, and exit at once.

The grandchild reads fd 0 to EOF, writes ``late`` to fd 3 and exits, so the
parent decides when fd 3 closes: by closing the child's stdin.
"""

import os

if os.fork() == 0:
    while os.read(0, 65536):
        pass
    os.write(3, b"late")
    os._exit(0)
os._exit(0)
