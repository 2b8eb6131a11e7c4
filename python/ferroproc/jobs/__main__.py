"""``python -m ferroproc.jobs``: the same as ``ferroproc jobs`` (see
``python -m ferroproc.jobs --help``)."""

import sys

from ferroproc.jobs._cli import jobsMain

if __name__ == "__main__":
    sys.exit(jobsMain(sys.argv[1:], "python -m ferroproc.jobs"))
