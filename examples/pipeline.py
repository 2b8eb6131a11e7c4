#!/usr/bin/env python3
"""Count the words of a generated text with a shell-style pipeline.

The same as ``tr -cs A-Za-z '\\n' | tr A-Z a-z | sort | uniq -c | sort -rn |
head -5`` in a shell: the text goes to the first stage, the stages pass it
on through kernel pipes (none of it through Python), and the result holds
the last stage's output and how every stage ended. Prints the five most
frequent words, then each stage's status and the pipeline's (pipefail).

Exits with the pipeline's status, as a shell with ``set -o pipefail`` would.
"""

import random
import shlex
import signal

from ferroproc import task
from ferroproc.pipeline import getPipelineOutput

WORDS = "the process spawns a child and reads what it writes to the pipe".split()

STAGES = [
    ["tr", "-cs", "A-Za-z", "\\n"],  # one word per line
    ["tr", "A-Z", "a-z"],
    ["sort"],
    ["uniq", "-c"],
    ["sort", "-rn"],
    ["head", "-5"],
]


def generatedText(words: int, seed: int = 17) -> bytes:
    """``words`` words drawn from WORDS (the same text for the same seed),
    with some capitals and punctuation for the first stages to remove."""
    rng = random.Random(seed)
    picked = [rng.choice(WORDS) for _ in range(words)]
    sentences = [" ".join(picked[i : i + 12]).capitalize() + "." for i in range(0, len(picked), 12)]
    return "\n".join(sentences).encode() + b"\n"


def describe(status: int | None, sig: int | None) -> str:
    if sig is not None:
        return f"killed by {signal.Signals(sig).name}"
    return f"exit {status}"


async def main(reactor: object) -> None:
    text = generatedText(200_000)
    result = await getPipelineOutput(STAGES, text, timeout=60)
    print(f"The most frequent of {len(text):,} bytes of words:")
    print(result.out.decode(), end="")
    print()
    for stage in result.stages:
        note = " (failed)" if stage.failed else ""
        print(f"  {shlex.join(stage.command):28} {describe(stage.exitCode, stage.signal)}{note}")
    print(f"pipeline: {'ok' if result.ok else 'failed'}, status {result.exitCode}")
    if not result.ok:
        raise SystemExit(result.exitCode)


if __name__ == "__main__":
    task.react(main)
