"""Run the ferroproc reactor with a long timer; print 'running' once it runs
and 'after run' once run() returns (Ctrl-C should get us there)."""

import os

from ferroproc import reactor

reactor.callLater(60, reactor.stop)
reactor.callWhenRunning(lambda: os.write(1, b"running\n"))
reactor.run()
os.write(1, b"after run\n")
