"""GNU parallel's input forms and replacement strings, for ``ferroproc jobs``.

Input: every source (a ``:::`` list, a ``::::``/``-a`` file, stdin) is a
sequence of values; sources linked with ``:::+``/``::::+`` (or all of them,
with ``--link``) advance together, and the groups they form are combined as
a cartesian product, the first source varying slowest. The first group is read
lazily (a stdin of millions of lines is fine); the others are read whole,
since every value of the first meets each of theirs.

Commands: the command's words are joined with spaces into a shell command
line, as GNU parallel does, and each job's line is that text with the
replacement strings substituted (``{}``, ``{.}``, ``{/}``, ``{//}``, ``{/.}``,
``{#}``, and ``{n}``, ``{n.}`` ... for the n-th source). A command with none
gets the input appended, as ``{}``. The job then runs:

- **directly** (no shell) when the command's own text has no character
  special to ``sh`` (only letters, digits, spaces and ``_@%+=:,./-``), its
  first word assigns no variable and is no shell builtin or keyword: the
  words become the argv, and each substituted value stays inside its word
  (as the shell would keep a quoted value), so the job behaves exactly as
  GNU parallel's shell line would, one process cheaper;
- with ``/bin/sh -c LINE`` otherwise, each substituted value shell-quoted
  (GNU parallel's quoting), so its text is never read as shell syntax.

When the command's first word contains a replacement string (``{}``,
``{1} {2}``, no command at all...), the values *are* the command: they are
inserted unquoted, as GNU parallel does, and the line runs directly when it
has no special character, with ``sh -c`` otherwise. With ``-q`` (``--quote``)
every word of the command is one argument, as written: always run directly.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ferroproc.jobs._job import Job

__all__ = [
    "FileSource",
    "Inputs",
    "JobInput",
    "ListSource",
    "Replacements",
    "Template",
    "TemplateError",
    "TextTemplate",
    "basename",
    "dirname",
    "gnuQuote",
    "noExtension",
    "parseDelimiter",
]

#: The shell that runs commands which need one.
SHELL = "/bin/sh"


class TemplateError(ValueError):
    """A command or input that ``ferroproc jobs`` cannot use (the message
    says which and why)."""


# -- values ------------------------------------------------------------------------


def noExtension(value: str) -> str:
    """``{.}``: the value without its extension (the last ``.`` after the
    last ``/`` and what follows it), GNU parallel's ``s:\\.[^/.]*$::``."""
    return _EXTENSION.sub("", value, count=1)


def basename(value: str) -> str:
    """``{/}``: the value without its directory part (``s:.*/::``)."""
    return value.rpartition("/")[2]


def dirname(value: str) -> str:
    """``{//}``: the directory part, as dirname(1) gives it (``a`` → ``.``,
    ``a/b/`` → ``a``, ``/a`` → ``/``)."""
    stripped = value.rstrip("/")
    if not stripped:
        return "/" if value else "."
    head, sep, _ = stripped.rpartition("/")
    if not sep:
        return "."
    return head.rstrip("/") or "/"


def gnuQuote(value: str) -> str:
    """Shell-quote ``value`` exactly as GNU parallel does for Bourne shells:
    unchanged when it has only ``-_.+/``, letters and digits; otherwise in
    single quotes (a ``'`` as ``'"'"'``)."""
    if not value:
        return "''"
    if _GNU_SAFE.fullmatch(value):
        return value
    quoted = "'" + value.replace("'", "'\"'\"'") + "'"
    if quoted.startswith("''"):
        quoted = quoted[2:]
    if quoted.endswith("''"):
        quoted = quoted[:-2]
    return quoted


_EXTENSION = re.compile(r"\.[^/.]*\Z")
_GNU_SAFE = re.compile(r"[-_.+a-zA-Z0-9/]+", re.ASCII)
#: Text the shell reads as itself: words of these characters, spaces and tabs.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./ \t-]*", re.ASCII)
#: Shell builtins and keywords with no program of the same name to exec
#: (``echo``, ``test``, ``true``, ``kill``... have one and run directly).
_SHELL_WORDS = frozenset(
    "! { } [[ ]] . : alias bg break case cd command continue do done elif else esac eval exec exit export fc fg "
    "fi for function getopts hash if in jobs let local read readonly return select set shift source then "
    "times trap type typeset ulimit umask unalias unset until wait while".split()
)


def _plainCommand(words: Sequence[str]) -> bool:
    """Whether a command line split into ``words`` means to ``sh`` just
    what its words say (so it can be exec'd directly)."""
    return bool(words) and words[0] not in _SHELL_WORDS and "=" not in words[0]


# -- replacement strings ---------------------------------------------------------------


@dataclass(frozen=True)
class Replacements:
    """The replacement strings in use (``-I`` and its kin rename them)."""

    whole: str = "{}"
    noExtension: str = "{.}"
    basename: str = "{/}"
    dirname: str = "{//}"
    basenameNoExtension: str = "{/.}"
    seq: str = "{#}"
    slot: str = "{%}"


#: What a replacement string stands for: the transformation of each value
#: (None for ``{#}``), and the input source (1-based, negative from the end;
#: None for all of them).
@dataclass(frozen=True)
class _Ref:
    kind: str  # "", ".", "/", "//", "/." or "#"
    source: int | None = None


def _same(value: str) -> str:
    return value


def _basenameNoExtension(value: str) -> str:
    return noExtension(basename(value))


_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "": _same,
    ".": noExtension,
    "/": basename,
    "//": dirname,
    "/.": _basenameNoExtension,
}
_POSITIONAL = r"\{(-?[0-9]+)(\.|//|/\.|/)?\}"


def _refPattern(strings: Replacements) -> re.Pattern[str]:
    named = [
        (strings.whole, "w"),
        (strings.noExtension, "x"),
        (strings.basename, "b"),
        (strings.dirname, "d"),
        (strings.basenameNoExtension, "bx"),
        (strings.seq, "s"),
        (strings.slot, "slot"),
    ]
    for text, _ in named:
        if not text:
            raise TemplateError("a replacement string cannot be empty")
    # The longest first, so that {//} is not read as {/} and a stray '/}'.
    named.sort(key=lambda item: -len(item[0]))
    alternatives = [f"(?P<{group}>{re.escape(text)})" for text, group in named]
    alternatives.append(f"(?P<pos>{_POSITIONAL})")
    alternatives.append(r"(?P<perl>\{=.*?=\})")
    return re.compile("|".join(alternatives), re.DOTALL)


_KINDS = {"w": "", "x": ".", "b": "/", "d": "//", "bx": "/.", "s": "#"}
_POS_KINDS = {None: "", ".": ".", "/": "/", "//": "//", "/.": "/."}

_Piece = str | _Ref


def _pieces(text: str, pattern: re.Pattern[str]) -> list[_Piece]:
    """``text`` split into literal text and replacement strings."""
    out: list[_Piece] = []
    at = 0
    for m in pattern.finditer(text):
        if m.start() > at:
            out.append(text[at : m.start()])
        group = m.lastgroup
        if group == "perl":
            raise TemplateError(
                f"{m.group()!r}: perl expressions ({{= ... =}}) are GNU parallel's; ferroproc jobs has none"
            )
        if group == "slot":
            raise TemplateError(
                f"{m.group()!r}: the job slot number is not supported by ferroproc jobs (use {{#}}, the job number)"
            )
        if group == "pos" or group is None:
            inner = re.fullmatch(_POSITIONAL, m.group())
            assert inner is not None
            number = int(inner.group(1))
            if number == 0:
                raise TemplateError(f"{m.group()!r}: input sources are numbered from 1")
            out.append(_Ref(_POS_KINDS[inner.group(2)], number))
        else:
            out.append(_Ref(_KINDS[group]))
        at = m.end()
    if at < len(text):
        out.append(text[at:])
    return out


def _values(ref: _Ref, args: tuple[str, ...], seq: int) -> list[str]:
    """The values ``ref`` stands for in the job numbered ``seq`` with input ``args``."""
    if ref.kind == "#":
        return [str(seq)]
    transform = _TRANSFORMS[ref.kind]
    if ref.source is None:
        return [transform(a) for a in args]
    index = ref.source - 1 if ref.source > 0 else ref.source
    if -len(args) <= index < len(args):
        return [transform(args[index])]
    return [""]  # a column this line does not have (--colsep), as GNU parallel


def _checkSources(refs: Iterable[_Ref], sources: int | None) -> None:
    if sources is None:
        return
    for ref in refs:
        if ref.source is not None and not 1 <= abs(ref.source) <= sources:
            have = "is 1 input source" if sources == 1 else f"are {sources} input sources"
            raise TemplateError(f"{{{ref.source}{ref.kind}}}: there {have}")


# -- jobs --------------------------------------------------------------------------------


class JobInput(NamedTuple):
    """What a job was made of: its input values and its number (for
    ``--tag``, ``--tagstring`` and ``--results``)."""

    args: tuple[str, ...]
    number: int


@dataclass
class Template:
    """A command with replacement strings, made into one :class:`Job` per
    input combination (see the module's documentation for the rules).

    ``words``: the command as given (empty: each input is a command).
    ``quoteAll``: ``-q``, every word is one argument. ``sources``: how many
    input sources there are (None when unknown, with ``--colsep``).
    """

    words: Sequence[str]
    strings: Replacements = field(default_factory=Replacements)
    quoteAll: bool = False
    sources: int | None = None

    def __post_init__(self) -> None:
        pattern = _refPattern(self.strings)
        if self.quoteAll:
            self._wordPieces = [_pieces(w, pattern) for w in self.words]
            if not any(isinstance(p, _Ref) for ps in self._wordPieces for p in ps):
                self._wordPieces.append([_Ref("")])
            self._refs = [p for ps in self._wordPieces for p in ps if isinstance(p, _Ref)]
            self.mode = "argv"
            self.unquoted = False
            _checkSources(self._refs, self.sources)
            return
        text = " ".join(self.words)
        pieces = _pieces(text, pattern)
        if not any(isinstance(p, _Ref) for p in pieces):
            pieces += [" ", _Ref("")] if text else [_Ref("")]
        self._pieces = pieces
        self._refs = [p for p in pieces if isinstance(p, _Ref)]
        _checkSources(self._refs, self.sources)
        # GNU parallel: a replacement string in the first word (before any
        # space or '=') is (part of) the command itself: values unquoted.
        first = pieces[0]
        self.unquoted = isinstance(first, _Ref) or (
            len(pieces) > 1 and isinstance(pieces[1], _Ref) and not re.search(r"[ \t\n=]", first)
        )
        literal = "".join(p if isinstance(p, str) else "x" for p in pieces)
        if self.unquoted:
            self.mode = "line"
        elif _PLAIN.fullmatch(literal) and _plainCommand(literal.split()):
            self.mode = "argv"
            self._wordPieces = _splitWords(pieces)
        else:
            self.mode = "shell"

    @property
    def usesSeq(self) -> bool:
        """Whether the command uses ``{#}``."""
        return any(ref.kind == "#" for ref in self._refs)

    def line(self, args: tuple[str, ...], seq: int) -> str:
        """The job's command line as GNU parallel builds it (and shows it
        with ``--dry-run``)."""
        if self.mode == "argv" and self.quoteAll:
            return " ".join(gnuQuote(a) for a in self._argv(args, seq))
        quote = (lambda v: v) if self.unquoted else gnuQuote
        out = []
        for p in self._pieces:
            out.append(p if isinstance(p, str) else " ".join(quote(v) for v in _values(p, args, seq)))
        return "".join(out)

    def _argv(self, args: tuple[str, ...], seq: int) -> tuple[str, ...]:
        argv: list[str] = []
        for pieces in self._wordPieces:
            word = ""
            for p in pieces:
                if isinstance(p, str):
                    word += p
                    continue
                values = _values(p, args, seq)
                # Several values (every source's, for {}) are several words,
                # as the shell splits GNU parallel's "'v1' 'v2'".
                for v in values[:-1]:
                    argv.append(word + v)
                    word = ""
                word += values[-1] if values else ""
            argv.append(word)
        return tuple(argv)

    def job(self, args: tuple[str, ...], seq: int) -> Job:
        """The job for input values ``args``, numbered ``seq``."""
        line = self.line(args, seq)
        if self.mode == "argv":
            return Job(self._argv(args, seq))
        if self.mode == "line" and _PLAIN.fullmatch(line):
            words = line.split()
            if _plainCommand(words):
                return Job(tuple(words))
        return Job((SHELL, "-c", line))


class TextTemplate:
    """Text with replacement strings, substituted as they are (no quoting,
    nothing appended): ``--tagstring``, a ``--results`` name."""

    def __init__(self, text: str, strings: Replacements, sources: int | None = None) -> None:
        self._pieces = _pieces(text, _refPattern(strings))
        refs = [p for p in self._pieces if isinstance(p, _Ref)]
        _checkSources(refs, sources)
        #: Whether the text has a replacement string.
        self.hasRefs = bool(refs)

    def __call__(self, args: tuple[str, ...], seq: int) -> str:
        return "".join(p if isinstance(p, str) else " ".join(_values(p, args, seq)) for p in self._pieces)


def _splitWords(pieces: list[_Piece]) -> list[list[_Piece]]:
    """Plain command text with replacement strings, split into words at
    spaces and tabs (a replacement string never splits a word)."""
    words: list[list[_Piece]] = [[]]
    for p in pieces:
        if isinstance(p, _Ref):
            words[-1].append(p)
            continue
        parts = re.split(r"[ \t]+", p)
        for i, part in enumerate(parts):
            if i:
                words.append([])
            if part:
                words[-1].append(part)
    return [w for w in words if w]


# -- input sources -------------------------------------------------------------------------


def parseDelimiter(text: str) -> bytes:
    r"""``-d``'s delimiter: characters, with C escapes (``\n``, ``\t``,
    ``\0``, ``\\``, octal ``\NNN`` and hex ``\xHH``) as printf reads them."""
    out = bytearray()
    i = 0
    raw = os.fsencode(text)
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("v"): 11}
    simple[ord("\\")] = ord("\\")
    while i < len(raw):
        c = raw[i]
        if c != ord("\\") or i + 1 == len(raw):
            out.append(c)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == ord("x"):
            m = re.match(rb"[0-9a-fA-F]{1,2}", raw[i + 2 :])
            if m is None:
                raise TemplateError(f"-d: {text!r}: \\x needs hex digits")
            out.append(int(m.group(), 16))
            i += 2 + m.end()
        elif ord("0") <= nxt <= ord("7"):
            m = re.match(rb"[0-7]{1,3}", raw[i + 1 :])
            assert m is not None
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + m.end()
        else:
            out.append(c)
            i += 1
    if not out:
        raise TemplateError("-d: the delimiter cannot be empty")
    return bytes(out)


class ListSource:
    """The values given after ``:::``."""

    def __init__(self, values: Sequence[str]) -> None:
        self.values = list(values)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)


class FileSource:
    """The values in a file (``::::``, ``-a``) or stdin, one per record
    (a line, or what ``-0``/``-d`` delimit), read as they are needed: each
    read returns what the file has, so values from a slow pipe start jobs
    as they come. (While such a read waits, so does the runner's loop: the
    jobs run on, but their results are reported once the next value comes
    or the input ends; the runner's API has no way yet to be told "nothing
    yet, I will call back".) The file is opened at once (a missing one is an
    error before any job runs) and closed once read or by :meth:`close`."""

    def __init__(self, name: str, delimiter: bytes = b"\n") -> None:
        self.name = name
        self.delimiter = delimiter
        self.fd: int | None
        if name == "-":
            self.fd = 0
            self._own = False
        else:
            try:
                self.fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise TemplateError(f"cannot open input file {name!r}: {e.strerror}") from None
            self._own = True

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None and self._own:
            os.close(fd)

    def __iter__(self) -> Iterator[str]:
        fd = self.fd
        if fd is None:
            return
        delim = self.delimiter
        buf = bytearray()
        scan = 0
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError as e:
                    raise TemplateError(f"cannot read input {self._label()}: {e.strerror}") from None
                if not chunk:
                    break
                buf += chunk
                start = 0
                while True:
                    i = buf.find(delim, scan)
                    if i < 0:
                        break
                    yield os.fsdecode(bytes(buf[start:i]))
                    start = scan = i + len(delim)
                del buf[:start]
                scan = max(0, len(buf) - len(delim) + 1)
            if buf:
                yield os.fsdecode(bytes(buf))
        finally:
            self.close()

    def _label(self) -> str:
        return "from stdin" if self.name == "-" else f"file {self.name!r}"


Source = ListSource | FileSource


class Inputs:
    """Every input combination, as tuples of values in source order.

    ``groups``: the sources, each group those linked together (``:::+``).
    ``link``: ``--link``: every source in one group, the shorter ones
    wrapping around to the length of the longest (otherwise a group ends
    with its shortest source). ``colsep``: ``--colsep``: each value is split
    into columns, which are the job's input values."""

    def __init__(self, groups: Sequence[Sequence[Source]], link: bool = False, colsep: str | None = None) -> None:
        self.groups = [list(g) for g in groups if g]
        self.link = link
        self.colsep = re.compile(colsep) if colsep is not None else None

    @property
    def sourceCount(self) -> int | None:
        """How many values each combination has (None with ``--colsep``)."""
        if self.colsep is not None:
            return None
        return sum(len(g) for g in self.groups)

    def count(self) -> int | None:
        """How many combinations there are, when every source is a ``:::``
        list (None otherwise)."""
        if not all(isinstance(s, ListSource) for g in self.groups for s in g):
            return None
        if not self.groups:
            return 0
        lengths = [[len(s.values) for s in g if isinstance(s, ListSource)] for g in self.groups]
        if self.link:
            every = [n for group in lengths for n in group]
            return max(every) if min(every) else 0
        total = 1
        for group in lengths:
            total *= min(group)
        return total

    def close(self) -> None:
        """Close the files not read to their end."""
        for g in self.groups:
            for s in g:
                if isinstance(s, FileSource):
                    s.close()

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        combos = self._combinations()
        if self.colsep is None:
            return combos
        split = self.colsep.split
        return (tuple(col for v in combo for col in split(v)) for combo in combos)

    def _combinations(self) -> Iterator[tuple[str, ...]]:
        if not self.groups:
            return iter(())
        if self.link:
            sources = [list(s) for g in self.groups for s in g]
            if not all(sources):
                return iter(())
            longest = max(len(s) for s in sources)
            return (tuple(s[i % len(s)] for s in sources) for i in range(longest))
        first, rest = self.groups[0], self.groups[1:]
        # Every later group is needed whole for each value of the first.
        others = [list(_zipped(g)) for g in rest]
        if not all(others):
            self.close()
            return iter(())
        return _product(_zipped(first), others)


def _zipped(group: Sequence[Source]) -> Iterator[tuple[str, ...]]:
    if len(group) == 1:
        return ((v,) for v in group[0])
    return zip(*group, strict=False)  # a group ends with its shortest source


def _product(first: Iterable[tuple[str, ...]], others: list[list[tuple[str, ...]]]) -> Iterator[tuple[str, ...]]:
    if not others:
        yield from first
        return
    for head in first:
        for tail in itertools.product(*others):
            yield head + tuple(v for part in tail for v in part)


def shellLine(argv: Sequence[str]) -> str:
    """A direct job's argv as one shell line (for messages)."""
    return shlex.join(argv)
