"""The ``ferroproc`` command, whose first subcommand is ``jobs``: GNU
parallel's command line on :class:`ferroproc.jobs.Runner`.

``ferroproc jobs ...`` and ``python -m ferroproc.jobs ...`` run the same
code (:func:`jobsMain`). This module wires the pieces together: the command
line (:mod:`._options`), the jobs made of the input (:mod:`._template`), the
output (:mod:`._output`), the progress display (:mod:`._progress`), signals
and the exit status.

Interruption: SIGINT (Ctrl-C), SIGTERM and SIGHUP cancel the run: no job
starts any more, every running job's process group gets SIGTERM and, after
``--kill-grace``, SIGKILL; once all are reaped, the job log is complete (the
stopped jobs with Exitval -1), what they wrote is out, and the command ends
by the same signal (default disposition), so that its parent sees what a
shell expects of a program stopped by Ctrl-C. A reader that closes our
stdout stops the run the same way, ending by SIGPIPE. Killed by SIGKILL,
the runner cannot clean up: every job's program has ``parentDeathSignal``
SIGKILL, so none outlives it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from ferroproc.failure import Failure
from ferroproc.jobs._job import Job, JobResult, JobSummary
from ferroproc.jobs._joblog import ResumeSet, readResumeSet
from ferroproc.jobs._options import HELP, CliOptions, UsageError, parseArgs
from ferroproc.jobs._output import (
    GroupedOutput,
    LineOutput,
    Output,
    OutputClosed,
    ResultsOutput,
    Sink,
    UngroupedOutput,
    resultsLayout,
)
from ferroproc.jobs._progress import Counts, Progress
from ferroproc.jobs._runner import Runner
from ferroproc.jobs._template import Inputs, JobInput, Template, TemplateError, TextTemplate

__all__ = ["jobsMain", "main"]

#: GNU parallel's status for anything but failed jobs (a bad option, an
#: unreadable file...).
ERROR_STATUS = 255
#: The signals that stop a run cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

TOP_HELP = """\
Usage: ferroproc COMMAND [ARGS...]

Commands:
  jobs    run many commands at once: GNU parallel's command line on
          ferroproc's engine (ferroproc jobs --help)

  -h, --help     this text
  -V, --version  ferroproc's version
"""


def _version() -> str:
    import ferroproc

    return str(getattr(ferroproc, "__version__", "unknown"))


def _say(text: str) -> None:
    """A message of ours on stderr (written at once, whole)."""
    data = text.encode(errors="surrogateescape")
    try:
        while data:
            data = data[os.write(2, data) :]
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ferroproc`` console script: ``ferroproc jobs ...``. ``argv``
    (default ``sys.argv[1:]``) starts with the subcommand. Returns the exit
    status (a run stopped by a signal ends the process by that signal)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        _say(TOP_HELP)
        return 2
    if args[0] in ("-h", "--help", "help"):
        sys.stdout.write(TOP_HELP)
        sys.stdout.flush()
        return 0
    if args[0] in ("-V", "--version"):
        sys.stdout.write(f"ferroproc {_version()}\n")
        sys.stdout.flush()
        return 0
    if args[0] == "jobs":
        return jobsMain(args[1:], "ferroproc jobs")
    _say(f"ferroproc: unknown command {args[0]!r} (the commands: jobs; see ferroproc --help)\n")
    return 2


def jobsMain(argv: Sequence[str], prog: str = "ferroproc jobs") -> int:
    """``ferroproc jobs`` (and ``python -m ferroproc.jobs``) with the
    arguments ``argv``; returns the exit status. ``prog`` is the name
    messages and ``--help`` use."""
    try:
        options = parseArgs(argv)
    except UsageError as e:
        _say(f"{prog}: {e}\nTry '{prog} --help'.\n")
        return ERROR_STATUS
    if options.help:
        sys.stdout.write(HELP.format(prog=prog))
        sys.stdout.flush()
        return 0
    if options.version:
        sys.stdout.write(f"{prog} (ferroproc {_version()}): GNU parallel's command line on ferroproc's engine\n")
        sys.stdout.flush()
        return 0
    return _CliRun(options, prog).execute()


class _Interrupted(Exception):
    """A stop signal came while the input was being read (a read that would
    otherwise wait for more input before the run could stop)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class _CliRun:
    """One ``ferroproc jobs`` run."""

    def __init__(self, options: CliOptions, prog: str) -> None:
        self.o = options
        self.prog = prog
        self.runner: Runner | None = None
        self.signum: int | None = None
        self.outputClosed = False
        #: True while the input is read (a stop signal then interrupts the read).
        self.reading = False
        self.skippedSoFar = 0
        #: Jobs to run (those the job log showed done excluded), once known.
        self.total: int | None = None
        self.skip: ResumeSet | None = None
        #: What each job not reported yet was made of, by number.
        self.pending: dict[int, JobInput] = {}
        self.progress: Progress | None = None
        self.output: Output = UngroupedOutput(Sink())
        self.reactor: Any = None
        self.started = time.monotonic()

    # -- the run ------------------------------------------------------------------

    def execute(self) -> int:
        o = self.o
        try:
            template = o.template()
            inputs = o.inputs()
        except UsageError as e:
            return self._error(str(e))
        try:
            if o.readsStdin and os.isatty(0) and not o.dryRun:
                _say(f"{self.prog}: reading input from the terminal (one value a line; Ctrl-D ends it)\n")
            if o.dryRun:
                return self._dryRun(inputs, template)
            return self._run(inputs, template)
        finally:
            inputs.close()

    def _error(self, message: str) -> int:
        _say(f"{self.prog}: {message}\n")
        return ERROR_STATUS

    def _inputs(self, inputs: Inputs) -> Iterator[JobInput]:
        """The jobs' input values and numbers, read as they are needed."""
        skipEmpty = self.o.skipEmpty
        it = iter(inputs)
        seq = 0
        while True:
            self.reading = True
            try:
                args = next(it)
            except StopIteration:
                break
            finally:
                self.reading = False
            if skipEmpty and not any(a.strip() for a in args):
                continue
            seq += 1
            yield JobInput(args, seq)
        self.total = seq - self.skippedSoFar

    def _jobs(self, inputs: Inputs, template: Template) -> Iterator[Job]:
        """The jobs, made as the runner asks for them."""
        skip = self.skip
        pending = self.pending
        lines = self.output if isinstance(self.output, LineOutput) and self.output.tagFor is not None else None
        for made in self._inputs(inputs):
            seq = made.number
            if skip is not None and seq in skip:
                self.skippedSoFar += 1
            else:
                # Until its result: what it was made of (the jobs ahead of
                # the running ones, and with -k those held back, at most).
                pending[seq] = made
                if lines is not None:
                    lines.setTag(made)
            yield template.job(made.args, seq)

    def _dryRun(self, inputs: Inputs, template: Template) -> int:
        sink = Sink()
        try:
            for made in self._inputs(inputs):
                line = template.line(made.args, made.number)
                sink.write(1, line.encode(errors="surrogateescape") + b"\n")
        except OutputClosed:
            return _dieBy(signal.SIGPIPE)
        except KeyboardInterrupt:
            return _dieBy(signal.SIGINT)
        except TemplateError as e:
            return self._error(str(e))
        return 0

    def _run(self, inputs: Inputs, template: Template) -> int:
        old = {sig: signal.signal(sig, self._onSignal) for sig in STOP_SIGNALS}
        try:
            return self._runWithHandlers(inputs, template)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _runWithHandlers(self, inputs: Inputs, template: Template) -> int:
        from ferroproc import reactor

        o = self.o
        self.reactor = reactor
        if o.resume:
            assert o.joblog is not None
            try:
                self.skip = readResumeSet(o.joblog, failedToo=o.resume == "failed")
            except OSError as e:
                return self._error(_fileError("--joblog", e))
            except ValueError as e:
                return self._error(str(e))
        count = inputs.count() if not o.skipEmpty else None
        if count is not None:
            skipped = 0
            if self.skip is not None and self.skip.count:
                skipped = sum(1 for seq in range(1, count + 1) if seq in self.skip)
            self.total = count - skipped

        showProgress = o.progress
        if showProgress is None:
            # On by itself only where someone watches, and not with -u,
            # where the jobs write to that terminal themselves.
            showProgress = os.isatty(2) and o.output != "ungroup"
        if showProgress:
            self.progress = Progress(2, self._counts, reactor.callLater, bar=o.bar)
        sink = Sink(self.progress.clear if self.progress is not None else lambda: None)
        try:
            self.output, staging = self._makeOutput(sink, inputs)
        except (UsageError, TemplateError, OSError) as e:
            return self._error(str(e))
        try:
            runner = Runner(
                concurrency=o.jobs,
                timeout=o.timeout,
                killGrace=o.killGrace,
                retries=o.retries,
                halt=o.halt,
                memfree=o.memfree,
                capture=False,
                results=staging,
                stdout=1 if o.output == "ungroup" else None,
                stderr=2 if o.output == "ungroup" else None,
                keepOrder=o.keepOrder,
                joblog=o.joblog,
                resume=o.resume,
                joblogAppend=o.joblogAppend,  # GNU parallel's "+FILE"
                onOutput=self._onOutput if self.output.streams else None,
            )
        except (TypeError, ValueError, OSError) as e:
            return self._finish(None, None, str(e))
        if self.signum is not None:
            return self._finish(None, self.signum)
        self.runner = runner
        self.started = time.monotonic()
        try:
            d = runner.run(self._jobs(inputs, template), self._onResult)
        except OSError as e:
            # The one file the runner opens for us: the job log.
            return self._finish(None, None, _fileError("--joblog", e))
        except ValueError as e:
            return self._finish(None, None, str(e))
        outcome: list[JobSummary | Failure] = []

        def done(result: JobSummary | Failure) -> None:
            outcome.append(result)
            if reactor.running:
                reactor.stop()

        d.addBoth(done)
        if self._stopped():  # a signal while the first jobs were made
            runner.cancel()
        if not outcome:
            if self.progress is not None:
                self.progress.start()
            reactor.run()
        result = outcome[0]
        if isinstance(result, Failure):
            if isinstance(result.value, _Interrupted):
                return self._finish(None, result.value.signum)
            return self._finish(None, None, str(result.value))
        return self._finish(result, self.signum)

    def _finish(self, summary: JobSummary | None, signum: int | None, error: str | None = None) -> int:
        """Let go of everything; the exit status (or end by ``signum``).
        ``error``: why the run could not go on."""
        if self.progress is not None:
            self.progress.finish(keep=self.o.progress is True and not self.outputClosed and error is None)
        self.output.close()
        if error is not None and signum is None and self.signum is None and not self.outputClosed:
            return self._error(error)
        signum = signum if signum is not None else self.signum
        if signum is not None:
            return _dieBy(signum)
        if self.outputClosed:
            return _dieBy(signal.SIGPIPE)
        return summary.exitStatus if summary is not None else ERROR_STATUS

    # -- output ---------------------------------------------------------------------

    def _makeOutput(self, sink: Sink, inputs: Inputs) -> tuple[Output, str | None]:
        o = self.o
        tagFor = None
        if o.tagString is not None:
            tagText = TextTemplate(o.tagString, o.strings, inputs.sourceCount)
            tagFor = lambda made: os.fsencode(tagText(made.args, made.number)) + b"\t"  # noqa: E731
        elif o.tag:
            tagFor = lambda made: os.fsencode(" ".join(made.args)) + b"\t"  # noqa: E731
        if o.results is not None:
            name = TextTemplate(o.results, o.strings, inputs.sourceCount)
            base = o.results
            if name.hasRefs:
                # Staged beside the first directory the names share, so
                # that moving a job's files there is a rename.
                prefix = o.results[: _firstRef(o.results, o.strings)]
                base = os.path.dirname(prefix) or "."

                def place(made: JobInput) -> tuple[str, bool]:
                    path = name(made.args, made.number)
                    return (path, True) if path.endswith("/") else (path, False)

            else:

                def place(made: JobInput) -> tuple[str, bool]:
                    return resultsLayout(o.results or ".", made.args), True

            staging = os.path.join(base, f".ferroproc-jobs-{os.getpid()}")
            try:
                os.makedirs(staging, exist_ok=True)
            except OSError as e:
                raise UsageError(_fileError("--results", e)) from None
            return ResultsOutput(sink, staging, place), staging
        if o.output == "ungroup":
            return UngroupedOutput(sink), None
        if o.output == "line":
            return LineOutput(sink, tagFor, keepOrder=o.keepOrder), None
        return GroupedOutput(sink, tagFor), None

    def _onOutput(self, seq: int, fd: int, data: bytes) -> None:
        try:
            self.output.onOutput(seq, fd, data)
        except OutputClosed as e:
            self._closed(e)

    def _onResult(self, result: JobResult) -> None:
        made = self.pending.pop(result.seq, None)
        try:
            self.output.onResult(result, made)
        except OutputClosed as e:
            self._closed(e)

    def _closed(self, e: OutputClosed) -> None:
        """A reader closed our stdout: stop the run, its output has nowhere
        to go (the end is by SIGPIPE, as for any writer to a closed pipe)."""
        self.output.close()
        self.output = Output(Sink())
        if not self.outputClosed:
            self.outputClosed = True
            self.reactor.callFromThread(self._cancel)

    # -- progress and signals ------------------------------------------------------

    def _counts(self) -> Counts:
        r = self.runner
        if r is None:
            return Counts(0, 0, 0, self.total, 0.0)
        return Counts(r.done, r.failed, r.running, self.total, time.monotonic() - self.started, r.skipped)

    def _onSignal(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self.reading:
            # A read of the input waits for more; this ends it (the runner
            # then stops the run as for bad input, and this comes back).
            raise _Interrupted(self.signum or signum)
        if self.runner is not None:
            # The first stops the jobs (SIGTERM, SIGKILL after the grace); a
            # second kills them at once (the user is done waiting).
            self.reactor.callFromThread(self._cancel if first else self._kill)

    def _stopped(self) -> bool:
        """Whether a stop signal came (a call, so that type checkers do not
        take the signal handler's writes for impossible)."""
        return self.signum is not None

    def _cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def _kill(self) -> None:
        if self.runner is not None:
            self.runner.cancel(grace=0)


def _firstRef(text: str, strings: Any) -> int:
    """Where the first replacement string starts in ``text``."""
    candidates = [text.find(s) for s in strings.__dict__.values()] + [text.find("{")]
    found = [c for c in candidates if c >= 0]
    return min(found) if found else len(text)


def _fileError(option: str, e: OSError) -> str:
    """An OSError of the file or directory an option named, in its words."""
    name = e.filename if e.filename is not None else e.filename2
    where = "" if name is None else f" {os.fsdecode(name)!r}"
    return f"{option}:{where}: {e.strerror or e}"


def _dieBy(signum: int) -> int:
    """End this process by ``signum``, as if it had not been caught (so the
    parent sees the signal); returns 128 + signum if that fails."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    return 128 + signum
