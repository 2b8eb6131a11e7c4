"""ferroproc under asyncio, the three ways in.

1. ``ferroproc.asyncio.create_subprocess_exec`` on whatever loop is running
   (here asyncio's own): asyncio's API, ferroproc's engine.
2. ``ferroproc.asyncio.run``: a loop whose ``asyncio.create_subprocess_*``
   (and every library built on them) use the engine, with no code change.
3. Twisted-style ``ferroproc.utils`` awaited inside the loop, no reactor run.

Run: python examples/asyncio_jobs.py
"""

import asyncio
import time

import ferroproc.asyncio
from ferroproc import utils


async def job(i: int) -> tuple[int, bytes]:
    """A job that counts the words of what it is fed, with a time limit."""
    proc = await ferroproc.asyncio.create_subprocess_exec(
        "wc",
        "-w",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        timeout=10,  # ferroproc keyword: TERM, then KILL after kill_grace
    )
    out, _ = await proc.communicate(b"word " * (i + 1))
    return proc.returncode or 0, out.strip()


async def unchanged_asyncio_code() -> bytes:
    """Plain asyncio: on ferroproc's loop it spawns through the engine."""
    proc = await asyncio.create_subprocess_exec("uname", "-s", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.strip()


async def main() -> None:
    started = time.perf_counter()
    results = await asyncio.gather(*(job(i) for i in range(20)))
    print("20 jobs, word counts:", [int(out) for _, out in results], f"({time.perf_counter() - started:.2f} s)")

    print("kernel:", (await unchanged_asyncio_code()).decode())

    # A killed child: asyncio's -signal return code.
    sleeper = await asyncio.create_subprocess_exec("sleep", "30")
    sleeper.terminate()
    print("terminated sleeper returned", await sleeper.wait())

    # Twisted's utilities, awaited: the loop drives ferroproc's reactor.
    print("getProcessOutput:", (await utils.getProcessOutput("echo", ["from", "the", "reactor"])).decode(), end="")


if __name__ == "__main__":
    ferroproc.asyncio.run(main())
