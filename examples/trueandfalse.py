"""The seed's trueandfalse.py listing, ported: only the import changed.

Runs /bin/true, then /bin/false, with ``utils.getProcessValue`` and prints
their exit codes.
"""

# The listing's own %-formatting is kept as written.
# ruff: noqa: UP031

from ferroproc import reactor, utils


def printTrueValue(val):
    print("/bin/true exits with rc=%d" % val)
    output = utils.getProcessValue("/bin/false")
    output.addCallback(printFalseValue)


def printFalseValue(val):
    print("/bin/false exits with rc=%d" % val)
    reactor.stop()


output = utils.getProcessValue("/bin/true")
output.addCallback(printTrueValue)
reactor.run()
