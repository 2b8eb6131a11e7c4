"""``ferroproc jobs``: its command line read into options, GNU parallel's
input forms and replacement strings, and the rule that decides whether a
job runs directly or through ``sh -c`` (no children: see test_jobs_cli.py
for the command run end to end)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ferroproc.jobs._options import UsageError, parseArgs, parseDuration, parseJobs
from ferroproc.jobs._template import (
    FileSource,
    Inputs,
    ListSource,
    Replacements,
    Template,
    TemplateError,
    TextTemplate,
    basename,
    dirname,
    gnuQuote,
    noExtension,
    parseDelimiter,
)

PARALLEL = shutil.which("parallel")


# -- values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ext", "base", "dir_"),
    [
        ("dir.x/a.b.tar.gz", "dir.x/a.b.tar", "a.b.tar.gz", "dir.x"),
        ("dir.x/a", "dir.x/a", "a", "dir.x"),
        ("plain", "plain", "plain", "."),
        (".bashrc", "", ".bashrc", "."),
        ("a.", "a", "a.", "."),
        ("a/", "a/", "", "."),
        ("a/b/", "a/b/", "", "a"),
        ("/", "/", "", "/"),
        ("/a", "/a", "a", "/"),
        ("//x", "//x", "x", "/"),
        ("a//b", "a//b", "b", "a"),
        ("", "", "", "."),
    ],
)
def test_the_value_transforms_are_gnu_parallels(value: str, ext: str, base: str, dir_: str) -> None:
    assert (noExtension(value), basename(value), dirname(value)) == (ext, base, dir_)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain-file_1.txt", "plain-file_1.txt"),
        ("a/b+c", "a/b+c"),
        ("", "''"),
        ("a b", "'a b'"),
        ("it's", "'it'\"'\"'s'"),
        ("'x", "\"'\"'x'"),
        ("x'", "'x'\"'\""),
        ("a$b", "'a$b'"),
        ("a=b", "'a=b'"),
    ],
)
def test_gnu_quote(value: str, quoted: str) -> None:
    assert gnuQuote(value) == quoted
    assert subprocess.run(["sh", "-c", f"printf %s {quoted}"], capture_output=True, text=True).stdout == value


# -- templates ----------------------------------------------------------------------------


def test_a_plain_command_runs_directly_and_each_value_stays_one_argument() -> None:
    t = Template(["convert", "{}", "-resize", "50%", "out/{/.}.jpg"], sources=1)
    job = t.job(("in dir/a b.png",), 3)
    assert job.argv == ("convert", "in dir/a b.png", "-resize", "50%", "out/a b.jpg")
    assert t.line(("in dir/a b.png",), 3) == "convert 'in dir/a b.png' -resize 50% out/'a b'.jpg"


def test_a_command_without_replacement_strings_gets_the_values_appended() -> None:
    t = Template(["gzip", "-9"], sources=2)
    assert t.job(("a b", "c"), 1).argv == ("gzip", "-9", "a b", "c")
    # {#} is a replacement string: nothing is appended.
    assert Template(["echo", "{#}"], sources=1).job(("x",), 7).argv == ("echo", "7")


def test_several_values_in_one_word_split_it_as_the_shell_would() -> None:
    # GNU parallel's line is "echo x'a b'  'c'y": the words "xa b" and "cy".
    t = Template(["echo", "x{}y"], sources=2)
    assert t.job(("a b", "c"), 1).argv == ("echo", "xa b", "cy")


@pytest.mark.parametrize(
    "words",
    [
        ["echo {}; echo done"],
        ["echo", "{}", ">", "out.txt"],
        ["echo", "$HOME", "{}"],
        ["exit", "{}"],
        ["cd", "/tmp", "&&", "ls", "{}"],
        ["FOO=1", "env", "{}"],
        ["echo", "~", "{}"],
        ["echo", "*.c", "{}"],
        ["echo", "{a,b}", "{}"],
        ["echo 'quoted' {}"],
    ],
)
def test_a_command_that_uses_the_shell_runs_with_sh_c_and_values_quoted(words: list[str]) -> None:
    t = Template(words, sources=1)
    job = t.job(("x y;z",), 1)
    assert job.argv[:2] == ("/bin/sh", "-c")
    assert job.argv[2] == t.line(("x y;z",), 1)
    assert "'x y;z'" in job.argv[2]


def test_a_replacement_string_in_the_first_word_makes_the_values_the_command() -> None:
    t = Template([], sources=1)
    assert t.job(("echo a b",), 1).argv == ("echo", "a", "b")
    assert t.job(("echo a; echo b",), 1).argv == ("/bin/sh", "-c", "echo a; echo b")
    assert t.job(("exit 3",), 1).argv == ("/bin/sh", "-c", "exit 3")
    t2 = Template(["{1}", "x", "{2}"], sources=2)
    assert t2.job(("echo", "c d"), 1).argv == ("echo", "x", "c", "d")
    # Only the first word counts: " {}" (a leading space) and "V={}" quote.
    assert Template([" {} x"], sources=1).line(("a;b",), 1) == " 'a;b' x"
    assert Template(["x{}", "{}"], sources=1).line(("a;b",), 1) == "xa;b a;b"


def test_quote_all_keeps_every_word_whole_and_never_uses_a_shell() -> None:
    t = Template(["printf", "%s|", "a b", "{}"], quoteAll=True, sources=1)
    assert t.job(("$x;y",), 1).argv == ("printf", "%s|", "a b", "$x;y")
    assert t.line(("$x;y",), 1) == "printf '%s|' 'a b' '$x;y'"


def test_positional_replacement_strings_and_their_checks() -> None:
    t = Template(["cp", "{1}", "{2//}/{-1/.}.bak"], sources=2)
    assert t.job(("a.txt", "dir/sub/b.c"), 1).argv == ("cp", "a.txt", "dir/sub/b.bak")
    with pytest.raises(TemplateError, match=r"\{3\}: there are 2 input sources"):
        Template(["echo", "{3}"], sources=2)
    with pytest.raises(TemplateError, match="numbered from 1"):
        Template(["echo", "{0}"], sources=2)
    # With --colsep the number of columns is the line's: a missing one is empty.
    assert Template(["echo", "{3}"], sources=None).job(("a",), 1).argv == ("echo", "")


@pytest.mark.parametrize(
    ("words", "match"), [(["echo", "{= $_++ =}"], "perl expressions"), (["echo", "{%}"], "slot number")]
)
def test_gnu_parallels_replacement_strings_we_do_not_have_are_errors(words: list[str], match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        Template(words, sources=1)


def test_renamed_replacement_strings() -> None:
    strings = Replacements(whole=",,", noExtension=",.", seq="%n")
    t = Template(["mv", ",,", ",..old", "%n", "{}"], strings, sources=1)
    # {} is no replacement string any more: literal, so the shell sees it.
    assert t.line(("f.txt",), 2) == "mv f.txt f.old 2 {}"
    assert TextTemplate("<,,>", strings)(("v",), 1) == "<v>"


# -- input ----------------------------------------------------------------------------------


def _combos(groups: list[list[list[str]]], link: bool = False) -> list[tuple[str, ...]]:
    return list(Inputs([[ListSource(s) for s in g] for g in groups], link=link))


def test_sources_combine_as_a_cartesian_product_the_first_varying_slowest() -> None:
    assert _combos([[["1", "2"]], [["a", "b", "c"]]]) == [
        ("1", "a"),
        ("1", "b"),
        ("1", "c"),
        ("2", "a"),
        ("2", "b"),
        ("2", "c"),
    ]
    assert _combos([[["1"]], [[]]]) == []


def test_linked_sources_go_in_step_and_the_shortest_ends_them() -> None:
    groups = [[["a", "b", "c"], ["1", "2", "3"]], [["X", "Y"], ["11", "22"]]]
    assert _combos(groups)[:3] == [("a", "1", "X", "11"), ("a", "1", "Y", "22"), ("b", "2", "X", "11")]
    assert len(_combos(groups)) == 6
    assert _combos([[["a", "b", "c"], ["1", "2"]]]) == [("a", "1"), ("b", "2")]
    # --link: every source linked, the shorter ones wrapping around.
    assert _combos([[["a", "b", "c"]], [["1", "2"]]], link=True) == [("a", "1"), ("b", "2"), ("c", "1")]


def test_inputs_count_when_every_source_is_a_list() -> None:
    assert Inputs([[ListSource(["a", "b"])], [ListSource(["1", "2", "3"])]]).count() == 6
    assert Inputs([[ListSource(["a", "b"]), ListSource(["1"])]]).count() == 1
    assert Inputs([]).count() == 0


def test_colsep_splits_each_value_into_columns() -> None:
    inputs = Inputs([[ListSource(["a b\tc", "d\te"])]], colsep="\t")
    assert list(inputs) == [("a b", "c"), ("d", "e")]
    assert inputs.sourceCount is None


def test_a_file_source_is_read_as_values_come(tmp_path: Path) -> None:
    r, w = os.pipe()
    fifo_path = f"/proc/self/fd/{r}"
    source = FileSource(fifo_path)
    os.close(r)
    try:
        it = iter(source)
        os.write(w, b"first\nsec")
        assert next(it) == "first"  # before the writer is done
        os.write(w, b"ond\n\nlast")
        os.close(w)
        w = -1
        assert list(it) == ["second", "", "last"]
        assert source.fd is None, "closed once read"
    finally:
        if w >= 0:
            os.close(w)
        source.close()


@pytest.mark.parametrize("delimiter", [b"\0", b"::", b"\n"])
def test_a_file_source_with_a_delimiter_across_reads(tmp_path: Path, delimiter: bytes) -> None:
    values = ["a" * 70000, "b", "", "c" * 3]
    path = tmp_path / "in"
    path.write_bytes(delimiter.join(v.encode() for v in values) + delimiter)
    assert list(FileSource(str(path), delimiter)) == values


def test_a_missing_input_file_is_named() -> None:
    with pytest.raises(TemplateError, match="cannot open input file '/nonexistent/x'"):
        FileSource("/nonexistent/x")


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("\\n", b"\n"), ("\\t", b"\t"), ("\\0", b"\0"), ("\\x41", b"A"), ("\\101", b"A"), (",", b","), ("ab", b"ab")],
)
def test_delimiter_escapes(text: str, delimiter: bytes) -> None:
    assert parseDelimiter(text) == delimiter


# -- the command line --------------------------------------------------------------------------


def test_options_end_at_the_command_and_sources_at_each_separator() -> None:
    o = parseArgs(["-kj3", "--timeout=1m30s", "grep", "-v", "x", ":::", "a", "b", ":::+", "c", "::::", "f", "g"])
    assert (o.keepOrder, o.jobs, o.timeout) == (True, 3, 90.0)
    assert o.command == ["grep", "-v", "x"]
    assert o.sources == [(":::", False, ["a", "b"]), (":::", True, ["c"]), ("::::", False, "f"), ("::::", False, "g")]


def test_a_double_dash_ends_the_options_and_separators_can_be_renamed() -> None:
    o = parseArgs(["--", "-weird-program", "{}", ":::", "a"])
    assert o.command == ["-weird-program", "{}"]
    o = parseArgs(["--arg-sep", ",,", "echo", ":::", ",,", "a"])
    assert o.command == ["echo", ":::"]
    assert o.sources == [(":::", False, ["a"])]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pipe", "wc"], "--pipe is a GNU parallel option that ferroproc jobs does not support"),
        (["-N2", "echo"], "-N is a GNU parallel option"),
        (["--term-seq", "TERM,100,KILL,25", "x"], "use --kill-grace"),
        (["--sshlogin", "host", "x"], "--sshlogin is a GNU parallel option"),
        (["--frobnicate", "x"], "unknown option --frobnicate"),
        (["-j"], "-j needs a value"),
        (["-j", "x", "echo"], "-j: 'x' is not a number of jobs"),
        (["--timeout", "200%", "x"], "percentage of the median runtime"),
        (["--timeout", "soon", "x"], "not a duration"),
        (["--retries", "0", "x"], "retry forever"),
        (["--halt", "sometimes", "x"], "--halt: 'sometimes' is not a halt policy"),
        (["--resume", "x"], "--resume needs --joblog"),
        (["-u", "-k", "x"], "cannot be used with -k"),
        (["-u", "--tag", "x"], "cannot be used with --tag"),
        (["--results", "out.csv", "x"], "CSV, TSV and JSON"),
        (["--link", "echo", ":::", "a", ":::+", "b"], "--link links every input source"),
        (["--group=yes", "x"], "--group takes no value"),
        (["--memfree", "lots", "x"], "--memfree: 'lots' is not a size"),
    ],
)
def test_what_cannot_be_run_is_named(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parseArgs(argv)


def test_jobs_counts() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert parseJobs("4") == 4
    assert parseJobs("+2") == cpus + 2
    assert parseJobs("-100") == 1
    assert parseJobs("50%") == max(1, cpus // 2)
    assert parseJobs("0") >= 1


def test_durations() -> None:
    assert parseDuration("1d3.5h16.6m4s", "--timeout") == pytest.approx(100000)
    assert parseDuration("0.5", "--timeout") == 0.5


def test_gnu_option_list_is_not_shadowing_ours() -> None:
    # Every option we have must parse (none is listed as GNU-only by mistake).
    from ferroproc.jobs._options import _GNU_ONLY, _OPTIONS

    ours = {name for option in _OPTIONS for name in option.names}
    assert not ours & _GNU_ONLY


# -- the same command lines as GNU parallel's ---------------------------------------------------


@pytest.mark.skipif(PARALLEL is None, reason="GNU parallel (Debian's 'parallel') is not installed")
@pytest.mark.parametrize(
    "argv",
    [
        ["echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", ":::", "dir.x/a.b.tar.gz", "plain", ".bashrc"],
        ["echo", ":::", "a", "b", ":::+", "1", "2", "3", ":::", "X", "Y", ":::+", "11", "22"],
        ["--link", "echo", ":::", "a", "b", "c", ":::", "1", "2"],
        ["{1} x {2}", ":::", "echo a;b", ":::", "c d"],
        ["x{} {}", ":::", "a;b"],
        [" {} x", ":::", "echo a;b"],
        ["echo", "x", ":::", "a", ":::", "b c"],
        ["-q", "echo", "a b", "{}", ":::", "c d"],
        ["echo", "{-1}", "{1}", ":::", "a", ":::", "b"],
        ["echo", ":::", "--x=1", "a@b", "a,b", "a:b", "a%b", "~x", "it's", "a$b", ""],
        ["-I", ",,", "mv", ",,", ",,.bak", ":::", "a b"],
        ["--colsep", ",", "echo", "{2}", "{1}", ":::", "a,b", "c,d"],
    ],
)
def test_dry_run_lines_match_gnu_parallel(argv: list[str]) -> None:
    ours = subprocess.run(
        [sys.executable, "-m", "ferroproc.jobs", "--dry-run", "-k", *argv], capture_output=True, text=True, timeout=60
    )
    gnu = subprocess.run(
        [PARALLEL or "parallel", "--will-cite", "--dry-run", "-k", *argv], capture_output=True, text=True, timeout=60
    )
    assert ours.returncode == gnu.returncode == 0, (ours.stderr, gnu.stderr)
    assert ours.stdout == gnu.stdout


# -- the progress line ----------------------------------------------------------------------------


def test_progress_line() -> None:
    from ferroproc.jobs._progress import Counts, formatDuration, progressLine

    assert formatDuration(7.4) == "0:07" and formatDuration(750) == "12:30" and formatDuration(7500) == "2:05:00"
    assert progressLine(Counts(0, 0, 3, None, 0.1)) == "0 done, 0 failed, 3 running"
    line = progressLine(Counts(40, 2, 8, 100, 4.0))
    assert line == "40/100 done, 2 failed, 8 running, 10.0/s, ETA 0:06"
    assert progressLine(Counts(1200, 0, 0, 1200, 2.0)) == "1,200/1,200 done, 0 failed, 0 running, 600/s, in 0:02"
    bars = [progressLine(Counts(n, 0, 1, 100, 1.0 + n), 80, bar=True) for n in (1, 50, 100)]
    assert [b.index("]") for b in bars] == [bars[0].index("]")] * 3, "the bar keeps its width"
    assert bars[1].startswith(" 50% [##########..........] ")
    assert len(progressLine(Counts(10**9, 10**8, 10**4, 2 * 10**9, 3.0), 40)) <= 40
    skipping = progressLine(Counts(0, 0, 1, 10, 0.1, skipped=1200))
    assert skipping == "0/10 done, 0 failed, 1 running, 1,200 skipped"
