"""``ferroproc jobs``' command line: GNU parallel's options, read into
:class:`CliOptions`, and the ``--help`` text.

Options come first; the first word that is not one (or follows ``--``)
starts the command, which runs to the first input separator (``:::``,
``:::+``, ``::::``, ``::::+``). Short options bundle as GNU parallel's do
(``-kj4``), and an option's value may be attached (``-j4``, ``--jobs=4``).
An option GNU parallel has and ``ferroproc jobs`` does not is an error that
names it: never ignored.
"""

from __future__ import annotations

import math
import os
import re
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ferroproc.jobs._halt import HaltPolicy
from ferroproc.jobs._template import (
    FileSource,
    Inputs,
    ListSource,
    Replacements,
    Source,
    Template,
    TemplateError,
    parseDelimiter,
)

__all__ = ["HELP", "CliOptions", "UsageError", "parseArgs"]


class UsageError(Exception):
    """The command line cannot be run; the message says why."""


@dataclass
class CliOptions:
    """What a ``ferroproc jobs`` command line asks for."""

    command: list[str] = field(default_factory=list)
    #: The input sources as given: (kind, linked, payload): kind ":::" (a
    #: list of values) or "::::" (a file name; "-" is stdin).
    sources: list[tuple[str, bool, list[str] | str]] = field(default_factory=list)
    argFiles: list[str] = field(default_factory=list)
    delimiter: bytes = b"\n"
    link: bool = False
    colsep: str | None = None
    skipEmpty: bool = False
    quoteAll: bool = False
    strings: Replacements = field(default_factory=Replacements)
    jobs: int = 1
    timeout: float | None = None
    retries: int = 0
    halt: str | None = None
    memfree: str | None = None
    killGrace: float = 1.0
    dryRun: bool = False
    joblog: str | None = None
    joblogAppend: bool = False
    resume: bool | Literal["failed"] = False
    results: str | None = None
    output: Literal["group", "line", "ungroup"] = "group"
    keepOrder: bool = False
    tag: bool = False
    tagString: str | None = None
    #: None: on when stderr is a terminal; True: --progress/--eta/--bar; False: --no-progress.
    progress: bool | None = None
    bar: bool = False
    help: bool = False
    version: bool = False

    def inputs(self) -> Inputs:
        """The input sources, files opened (raises :class:`UsageError` for
        one that cannot be)."""
        opened: list[FileSource] = []

        def source(kind: str, payload: list[str] | str) -> Source:
            if kind == ":::":
                assert isinstance(payload, list)
                return ListSource(payload)
            assert isinstance(payload, str)
            try:
                s = FileSource(payload, self.delimiter)
            except TemplateError as e:
                for f in opened:
                    f.close()
                raise UsageError(str(e)) from None
            opened.append(s)
            return s

        groups: list[list[Source]] = []
        given = [("::::", False, name) for name in self.argFiles] + list(self.sources)
        if not given:
            given = [("::::", False, "-")]
        for kind, linked, payload in given:
            s = source(kind, payload)
            if linked and groups:
                groups[-1].append(s)
            else:
                groups.append([s])
        return Inputs(groups, link=self.link, colsep=self.colsep)

    def template(self) -> Template:
        """The command as a :class:`Template` (raises :class:`UsageError`)."""
        count = len(self.argFiles) + len(self.sources) or 1
        try:
            return Template(self.command, self.strings, quoteAll=self.quoteAll, sources=None if self.colsep else count)
        except TemplateError as e:
            raise UsageError(str(e)) from None

    @property
    def readsStdin(self) -> bool:
        """Whether an input source is stdin."""
        if not self.argFiles and not self.sources:
            return True
        return "-" in self.argFiles or any(k == "::::" and p == "-" for k, _, p in self.sources)


# -- values ----------------------------------------------------------------------------

_DURATION = re.compile(r"(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?[smhd]?)+")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parseDuration(text: str, option: str) -> float:
    """GNU parallel's durations: seconds, or numbers with s, m, h, d
    (``1d3.5h16.6m4s``)."""
    if text.endswith("%"):
        raise UsageError(
            f"{option} {text}: a percentage of the median runtime is GNU parallel's; give a duration in seconds"
        )
    if not _DURATION.fullmatch(text):
        raise UsageError(f"{option}: {text!r} is not a duration (seconds, or e.g. 90s, 1.5m, 2h, 1d2h)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if not math.isfinite(seconds):
        raise UsageError(f"{option}: {text!r} is too long a duration")
    if seconds <= 0:
        raise UsageError(f"{option}: {text!r} must be more than 0 seconds")
    return seconds


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: -j 0: as many as the open-file limit allows (a job holds about 3 fds:
#: its output pipes and its pidfd), at most this many.
_MOST_JOBS = 4096


def parseJobs(text: str) -> int:
    """``-j``: N, N% of the CPUs, +N / -N more or fewer than the CPUs, or
    0 for as many as the open-file limit allows."""
    cpus = _cpus()
    m = re.fullmatch(r"([-+]?)([0-9]+(?:\.[0-9]*)?)(%?)", text.strip())
    if m is None:
        raise UsageError(
            f"-j: {text!r} is not a number of jobs (N, N%, +N or -N; a file to read it from is not supported)"
        )
    sign, number, percent = m.groups()
    value = float(number)
    if percent:
        if sign:
            raise UsageError(f"-j: {text!r}: a percentage takes no sign")
        return max(1, int(cpus * value / 100))
    if "." in number:
        raise UsageError(f"-j: {text!r}: a number of jobs is a whole number")
    if sign == "+":
        return cpus + int(value)
    if sign == "-":
        return max(1, cpus - int(value))
    if value == 0:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return _MOST_JOBS
        return max(1, min(_MOST_JOBS, (soft - 32) // 3))
    return int(value)


def _positiveInt(text: str, option: str, allowZero: bool = False) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a whole number") from None
    if value < 0 or (value == 0 and not allowZero):
        raise UsageError(f"{option}: {text!r} must be {'at least 0' if allowZero else 'at least 1'}")
    return value


# -- the option table --------------------------------------------------------------------

_Setter = Callable[[CliOptions, str], None]


def _flag(f: Callable[[CliOptions], None]) -> Callable[[CliOptions, str], None]:
    return lambda o, _v: f(o)


def _setRetries(o: CliOptions, v: str) -> None:
    tries = _positiveInt(v, "--retries", allowZero=True)
    if tries == 0:
        raise UsageError("--retries 0 (GNU parallel's 'retry forever') is not supported: give a number of tries")
    # GNU parallel's N is the number of tries in all; the runner's, the extra ones.
    o.retries = tries - 1


def _setHalt(o: CliOptions, v: str) -> None:
    try:
        HaltPolicy.parse(v)
    except ValueError as e:
        raise UsageError(f"--{e}") from None
    o.halt = v


def _setKillGrace(o: CliOptions, v: str) -> None:
    try:
        value = float(v)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--kill-grace: {v!r} is not a number of seconds (0 or more)")
    o.killGrace = value


def _setJoblog(o: CliOptions, v: str) -> None:
    if not v:
        raise UsageError("--joblog: the file name is empty")
    o.joblogAppend = v.startswith("+")
    o.joblog = v[1:] if o.joblogAppend else v
    if not o.joblog:
        raise UsageError("--joblog: the file name is empty")


def _setResults(o: CliOptions, v: str) -> None:
    if not v:
        raise UsageError("--results: the directory name is empty")
    if re.search(r"\.(csv|tsv|json)\Z", v):
        raise UsageError(f"--results {v}: CSV, TSV and JSON results are GNU parallel's; give a directory")
    o.results = v


def _setColsep(o: CliOptions, v: str) -> None:
    try:
        re.compile(v)
    except re.error as e:
        raise UsageError(f"--colsep: {v!r} is not a regular expression: {e}") from None
    o.colsep = v


def _setDelimiter(o: CliOptions, v: str) -> None:
    try:
        o.delimiter = parseDelimiter(v)
    except TemplateError as e:
        raise UsageError(str(e)) from None


def _rename(name: str) -> _Setter:
    def set_(o: CliOptions, v: str) -> None:
        if not v:
            raise UsageError(f"a replacement string cannot be empty ({name})")
        o.strings = Replacements(**{**o.strings.__dict__, name: v})

    return set_


def _setOutput(mode: Literal["group", "line", "ungroup"]) -> _Setter:
    def set_(o: CliOptions, _v: str) -> None:
        o.output = mode

    return set_


def _setProgress(bar: bool) -> _Setter:
    def set_(o: CliOptions, _v: str) -> None:
        o.progress = True
        o.bar = o.bar or bar

    return set_


def _setResume(value: bool | Literal["failed"]) -> _Setter:
    def set_(o: CliOptions, _v: str) -> None:
        o.resume = value

    return set_


def _setJobs(o: CliOptions, v: str) -> None:
    o.jobs = parseJobs(v)


def _setTimeout(o: CliOptions, v: str) -> None:
    o.timeout = parseDuration(v, "--timeout")


def _setMemfree(o: CliOptions, v: str) -> None:
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]*)?[KMGTPkmgtp]?", v.strip()):
        raise UsageError(f"--memfree: {v!r} is not a size (bytes, or a number with K, M, G, T, k, m, g, t ...)")
    o.memfree = v


def _setTagString(o: CliOptions, v: str) -> None:
    o.tagString = v


def _noop(_o: CliOptions, _v: str) -> None:
    pass


@dataclass(frozen=True)
class _Option:
    names: tuple[str, ...]
    takesValue: bool
    set: _Setter


#: The options ``ferroproc jobs`` has (GNU parallel's spellings and aliases).
_OPTIONS = [
    _Option(("-j", "-P", "--jobs", "--max-procs", "--maxprocs"), True, _setJobs),
    _Option(("--timeout",), True, _setTimeout),
    _Option(("--retries",), True, _setRetries),
    _Option(("--halt", "--halt-on-error"), True, _setHalt),
    _Option(("--memfree",), True, _setMemfree),
    _Option(("--kill-grace",), True, _setKillGrace),
    _Option(("--dry-run", "--dryrun", "--dr"), False, _flag(lambda o: setattr(o, "dryRun", True))),
    _Option(("--joblog", "--jl"), True, _setJoblog),
    _Option(("--resume",), False, _setResume(True)),
    _Option(("--resume-failed", "--resumefailed"), False, _setResume("failed")),
    _Option(("--results", "--result", "--res"), True, _setResults),
    _Option(("--group",), False, _setOutput("group")),
    _Option(("--line-buffer", "--line-buffered", "--linebuffer", "--linebuffered", "--lb"), False, _setOutput("line")),
    _Option(("-u", "--ungroup"), False, _setOutput("ungroup")),
    _Option(("-k", "--keep-order", "--keeporder"), False, _flag(lambda o: setattr(o, "keepOrder", True))),
    _Option(
        ("--no-keep-order", "--nokeeporder", "--nok", "--no-k"), False, _flag(lambda o: setattr(o, "keepOrder", False))
    ),
    _Option(("--tag",), False, _flag(lambda o: setattr(o, "tag", True))),
    _Option(("--tagstring", "--tag-string"), True, _setTagString),
    _Option(("--progress", "--eta"), False, _setProgress(False)),
    _Option(("--bar",), False, _setProgress(True)),
    _Option(("--no-progress",), False, _flag(lambda o: setattr(o, "progress", False))),
    _Option(("-a", "--arg-file", "--argfile"), True, lambda o, v: o.argFiles.append(v)),
    _Option(("-0", "--null"), False, _flag(lambda o: setattr(o, "delimiter", b"\0"))),
    _Option(("-d", "--delimiter"), True, _setDelimiter),
    _Option(("--link", "--xapply"), False, _flag(lambda o: setattr(o, "link", True))),
    _Option(("-C", "--colsep", "--col-sep"), True, _setColsep),
    _Option(("-r", "--no-run-if-empty", "--norunifempty"), False, _flag(lambda o: setattr(o, "skipEmpty", True))),
    _Option(("-q", "--quote"), False, _flag(lambda o: setattr(o, "quoteAll", True))),
    _Option(("-I",), True, _rename("whole")),
    _Option(("-U", "--extensionreplace", "--er"), True, _rename("noExtension")),
    _Option(("--basenamereplace", "--bnr"), True, _rename("basename")),
    _Option(("--dirnamereplace", "--dnr"), True, _rename("dirname")),
    _Option(("--basenameextensionreplace", "--bner"), True, _rename("basenameNoExtension")),
    _Option(("--seqreplace",), True, _rename("seq")),
    _Option(("--arg-sep", "--argsep"), True, _noop),  # handled by the scanner
    _Option(("--arg-file-sep", "--argfilesep"), True, _noop),  # handled by the scanner
    # GNU parallel's way to silence its citation notice; ferroproc has none.
    _Option(("--will-cite", "--willcite", "--nn", "--nonotice", "--no-notice"), False, _noop),
    _Option(("-h", "--help"), False, _flag(lambda o: setattr(o, "help", True))),
    _Option(("-V", "--version"), False, _flag(lambda o: setattr(o, "version", True))),
]
_BY_NAME = {name: option for option in _OPTIONS for name in option.names}

#: GNU parallel's options that ``ferroproc jobs`` does not have (an error
#: naming the option, rather than a run that quietly differs).
_GNU_ONLY = frozenset(
    """
    --basefile --bf --bg --bin --block --block-size --blocksize --block-timeout --blocktimeout --bt --cat --cleanup
    --color --colour --color-failed --colour-failed --cf --compress --compress-program --decompress-program --csv
    --ctag --ctagstring --ctag-string --delay --embed --env --eof -e -E --exit -x --fg --fifo --filter
    --filter-hosts --gnu --group-by --groupby --header --hostgroups --hgrp -i --replace --interactive -p -L
    --max-lines -l --limit --latest-line --ll --load -M --controlmaster -m -X --xargs --memsuspend --minversion
    --max-args -n --max-replace-args -N --nonall --onall --open-tty -o --output-as-files --outputasfiles --files
    --pipe --spreadstdin --pipe-part --pipepart --plain --plus --process-slot-var --max-line-length-allowed
    --number-of-cpus --number-of-cores --number-of-sockets --number-of-threads --nice --parens --profile -J
    --noswap --record-env --recstart --recend --regexp --remove-rec-sep --removerecsep --rrs --retry-failed
    --retryfailed --return --round-robin --round --rpl --rsync-opts --max-chars -s --show-limits --semaphore
    --semaphore-name --id --semaphore-timeout --st --session --shard --shebang --hashbang --shebang-wrap
    --shell-completion --shell-quote --shuf --skip-first-line --sql --sql-master --sql-and-worker --sql-worker
    --ssh --ssh-delay --sshlogin -S --sshloginfile --slf --slotreplace --silent --template --tmpl --tty --tee
    --term-seq --termseq --total-jobs --total --tmpdir --tempdir --tmux --tmuxpane --tmux-pane --verbose -t
    --transfer --transferfile --transfer-file --tf --trc --trim --use-sockets-instead-of-threads
    --use-cores-instead-of-threads --use-cpus-instead-of-cores -v --workdir --work-dir --wd --wait -T -H
    --citation --bibtex --tollef --xapplyinputsource --linkinputsource --ctrl-c --no-ctrl-c -D --debug -B -W -Y
    -g --kill --seconds --bug --threads --run --silence
    """.split()
)

#: What to say instead for some of them.
_INSTEAD = {
    "--term-seq": "use --kill-grace SECONDS (SIGTERM, then SIGKILL that much later)",
    "--termseq": "use --kill-grace SECONDS (SIGTERM, then SIGKILL that much later)",
    "--slotreplace": "the job slot number is not supported",
    "--retry-failed": "use --resume-failed with the same command and input",
    "--verbose": "--dry-run shows each job's command line",
    "-t": "--dry-run shows each job's command line",
    "-v": "--dry-run shows each job's command line",
}

_SEPARATORS = (":::", ":::+", "::::", "::::+")


def _unsupported(name: str) -> UsageError:
    hint = _INSTEAD.get(name)
    text = f"{name} is a GNU parallel option that ferroproc jobs does not support"
    return UsageError(f"{text} ({hint})" if hint else text)


def parseArgs(argv: Sequence[str]) -> CliOptions:
    """Read a ``ferroproc jobs`` command line (without ``jobs`` itself).
    Raises :class:`UsageError` naming what is wrong."""
    o = CliOptions(jobs=_cpus())
    args = list(argv)
    argSep, fileSep = ":::", "::::"
    i = 0
    # Options, up to the command.
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in (argSep, argSep + "+", fileSep, fileSep + "+") or not a.startswith("-") or a == "-":
            break
        i += 1
        if a.startswith("--"):
            name, eq, attached = a.partition("=")
            option = _BY_NAME.get(name)
            if option is None:
                if name in _GNU_ONLY:
                    raise _unsupported(name)
                raise UsageError(f"unknown option {name} (see --help)")
            if option.takesValue:
                if eq:
                    value = attached
                elif i < len(args):
                    value = args[i]
                    i += 1
                else:
                    raise UsageError(f"{name} needs a value")
            elif eq:
                raise UsageError(f"{name} takes no value")
            else:
                value = ""
            if name in ("--arg-sep", "--argsep"):
                argSep = _separator(name, value)
            elif name in ("--arg-file-sep", "--argfilesep"):
                fileSep = _separator(name, value)
            option.set(o, value)
            continue
        # Short options, bundled: -kj4, -j 4.
        j = 1
        while j < len(a):
            name = "-" + a[j]
            option = _BY_NAME.get(name)
            if option is None:
                if name in _GNU_ONLY:
                    raise _unsupported(name)
                raise UsageError(f"unknown option {name} (see --help)")
            j += 1
            if option.takesValue:
                if j < len(a):
                    value = a[j:]
                elif i < len(args):
                    value = args[i]
                    i += 1
                else:
                    raise UsageError(f"{name} needs a value")
                option.set(o, value)
                break
            option.set(o, "")
    if o.help or o.version:
        return o
    # The command, up to the first input separator.
    seps = {
        argSep: (":::", False),
        argSep + "+": (":::", True),
        fileSep: ("::::", False),
        fileSep + "+": ("::::", True),
    }
    while i < len(args) and args[i] not in seps:
        o.command.append(args[i])
        i += 1
    # The input sources.
    while i < len(args):
        kind, linked = seps[args[i]]
        i += 1
        values: list[str] = []
        while i < len(args) and args[i] not in seps:
            values.append(args[i])
            i += 1
        if kind == ":::":
            o.sources.append((kind, linked, values))
        else:
            if not values:
                raise UsageError(f"{fileSep}{'+' if linked else ''} needs a file name")
            for n, name in enumerate(values):
                o.sources.append((kind, linked and n == 0, name))
    _check(o)
    return o


def _separator(name: str, value: str) -> str:
    if not value:
        raise UsageError(f"{name}: the separator cannot be empty")
    return value


def _check(o: CliOptions) -> None:
    """Options that cannot go together."""
    if o.resume and o.joblog is None:
        raise UsageError(
            f"--{'resume-failed' if o.resume == 'failed' else 'resume'} needs --joblog "
            "(resuming from --results is GNU parallel's)"
        )
    if o.output == "ungroup":
        for flag, name in ((o.keepOrder, "-k"), (o.tag or o.tagString is not None, "--tag"),
                           (o.results is not None, "--results")):  # fmt: skip
            if flag:
                raise UsageError(f"-u (output straight from the jobs) cannot be used with {name}")
    if o.results is not None and (o.tag or o.tagString is not None):
        raise UsageError("--tag: with --results the output goes to files, not tagged to stdout")
    if o.link and any(linked for _, linked, _ in o.sources):
        raise UsageError("--link links every input source already: do not also use :::+ or ::::+")


HELP = """\
Usage: {prog} [OPTIONS] [COMMAND [ARG...]] [INPUT...]
  INPUT: ::: VALUE... or :::: FILE..., as many as you like; without any,
  the lines of stdin.

Run COMMAND once for each input value, many at a time: GNU parallel's
command line on ferroproc's engine. Each job runs in its own process group,
which a timeout, --halt now, Ctrl-C or SIGTERM stops as a whole (SIGTERM,
then SIGKILL after --kill-grace); a runner killed outright takes its jobs'
programs with it.

  {prog} gzip -9 ::: *.log
  find . -name '*.png' | {prog} -j4 convert {{}} {{.}}.jpg
  {prog} echo {{1}}-{{2}} ::: a b ::: 1 2 3
  {prog} --joblog j.log --resume ./test.sh ::: a b c

Input (values; without ::: or ::::, lines read from stdin, as xargs):
  ::: VALUE...          these values
  :::: FILE...          the lines of each FILE ("-" is stdin); each FILE
                        is one input source
  :::+ / ::::+          link to the source before: values go in step (the
                        shorter source ends them); otherwise sources
                        combine in every way (a cartesian product)
  -a, --arg-file FILE   the lines of FILE (sources given with -a come first)
  -0, --null            values end with NUL, not newline
  -d, --delimiter DELIM values end with DELIM (\\n, \\t, \\0, \\xHH escapes)
  -C, --colsep REGEX    split each value into columns {{1}} {{2}} ...
  --link                link every source (the shorter ones wrap around)
  -r, --no-run-if-empty skip values that are empty or blank

Replacement strings (in COMMAND; without any, the value is appended):
  {{}}    the value (with several sources: all of them, as separate words)
  {{.}}   without its extension      {{/}}   without its directory
  {{//}}  its directory              {{/.}}  without directory and extension
  {{#}}   the job's number (1, 2, ...)
  {{n}} {{n.}} {{n/}} {{n//}} {{n/.}}
        the same for input source (or column) n; a negative n counts from
        the last
  -I STR, --er STR, --bnr STR, --dnr STR, --bner STR, --seqreplace STR
        use STR instead of {{}}, {{.}}, {{/}}, {{//}}, {{/.}}, {{#}}

How a command runs: COMMAND's words are joined with spaces into one command
line, as GNU parallel does. When that line uses nothing of the shell (only
letters, digits, spaces and _@%+=:,./- outside the replacement strings, and
its first word is neither a shell builtin nor a variable assignment), each
job's program is started directly, and every value stays one argument;
otherwise the job runs /bin/sh -c LINE, each value shell-quoted. When the
first word itself contains a replacement string (or there is no COMMAND),
the values are commands: inserted unquoted. -q: every word of COMMAND is one
argument as written, and no shell is ever used. A job's stdin is /dev/null.

Running:
  -j, --jobs N          run N jobs at once (default: one per CPU); also N%
                        of the CPUs, +N / -N more or fewer than the CPUs,
                        0: as many as the open-file limit allows
  --timeout DURATION    stop a job after DURATION (seconds; or 30s, 5m, 2h,
                        1d, 1h30m)
  --retries N           try a failing job up to N times in all
  --halt WHEN,WHY=N     stop early: WHEN is now (stop running jobs) or soon
                        (let them finish); WHY is fail, success or done; N a
                        count or a percentage (e.g. now,fail=1, soon,fail=10%)
  --memfree SIZE        start a job only while this much memory is available
                        (e.g. 2G; running jobs are not stopped)
  --kill-grace SECONDS  from SIGTERM to SIGKILL when a job is stopped
                        (default 1)
  --dry-run             print each job's command line; run nothing

Logs and results:
  --joblog FILE         GNU parallel's job log (TSV: Seq Host Starttime
                        JobRuntime Send Receive Exitval Signal Command);
                        +FILE appends
  --resume              skip the jobs the job log lists (give the same command
                        and input)
  --resume-failed       skip the jobs the job log lists as succeeded
  --results DIR         each job's stdout, stderr and number go to files under
                        DIR/1/VALUE1/2/VALUE2/ (as GNU parallel's), not to
                        ours; with a replacement string in DIR, to the files
                        it names

Output:
  --group               each job's output whole, when it ends: stdout, then
                        stderr (the default)
  --line-buffer, --lb   each line as soon as it is complete
  -u, --ungroup         the jobs write to our stdout and stderr themselves
  -k, --keep-order      output in input order (not as jobs end)
  --tag                 start each line with the job's values and a TAB
  --tagstring STR       start each line with STR (replacement strings work)
  --progress, --eta     show progress (done, failed, running, rate, ETA) even
                        when stderr is not a terminal
  --bar                 the same, with a bar
  --no-progress         no progress (by default shown when stderr is a
                        terminal)

  -h, --help            this text      -V, --version   the version

Exit status: the number of failed jobs, at most 101 (0: all succeeded); with
--halt, as GNU parallel decides it (fail=1: the failing job's own status; a
percentage: the percentage that failed); 255 for a bad command line. Stopped
by SIGINT, SIGTERM or SIGHUP, it stops every job (SIGTERM, SIGKILL after
--kill-grace; a second signal kills them at once), writes the job log, then
ends by that same signal (a shell shows 130, 143 or 129).

GNU parallel options this command does not have (remote hosts, --pipe,
-n/-N/-X, {{%}}, {{= =}}, --plus ...) are errors, never ignored.
"""
