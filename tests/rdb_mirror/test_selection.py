"""Unit tests of rdb_mirror.selection: every option, first match wins, hostile names."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdb_format.errors import UsageError
from rdb_mirror.selection import Decision, Selection, extract_selection_args
from rdb_mirror.source import IncludeAll
from rdb_mirror.source import Selection as WalkSelection

ROOT = b"src"
INC, EXC, SCAN = Decision.INCLUDE, Decision.EXCLUDE, Decision.SCAN


def fake_stat(mode: int = stat.S_IFREG | 0o644, size: int = 0, dev: int = 1) -> os.stat_result:
    return os.stat_result((mode, 1, dev, 1, 0, 0, size, 0, 0, 0))


FILE = fake_stat()
DIR = fake_stat(stat.S_IFDIR | 0o755)


def sel(*options: tuple[str, str | None], root: bytes = ROOT, **kwargs: object) -> Selection:
    return Selection.from_options(list(options), root=root, **kwargs)  # type: ignore[arg-type]


def ask(selection: Selection, rel: bytes, *, is_dir: bool = False) -> Decision:
    return selection.decide(rel, DIR if is_dir else FILE, is_dir=is_dir)


# ---- globs


def test_no_options_includes_everything_but_the_data_dir() -> None:
    s = sel()
    assert s.trivial
    assert ask(s, b"a/b") is INC
    assert ask(s, b"rdiff-backup-data", is_dir=True) is EXC
    assert ask(s, b"a/rdiff-backup-data", is_dir=True) is INC


@pytest.mark.parametrize(
    ("glob", "rel", "expected"),
    [
        ("src/*.txt", b"a.txt", INC),
        ("src/*.txt", b"d/a.txt", None),  # * does not cross /
        ("src/**.txt", b"d/e/a.txt", INC),
        ("src/**/*.txt", b"d/a.txt", INC),
        ("src/**/*.txt", b"a.txt", None),  # **/ needs at least the slash
        ("**/*.txt", b"a.txt", INC),  # ** matches the source name
        ("src/?", b"x", INC),
        ("src/?", b"xy", None),
        ("src/[ab]c", b"bc", INC),
        ("src/[!ab]c", b"bc", None),
        ("src/[^ab]c", b"zc", INC),
        ("src/[]x]", b"]", INC),
        ("src/a\\*", b"a*", INC),
        ("src/a\\*", b"ab", None),
        ("src/b[", b"b[", INC),  # an unclosed [ is literal
        ("src/d", b"d/e/f", INC),  # an included directory includes its contents
        ("ignorecase:SRC/D/*.TXT", b"d/x.txt", INC),
        ("ignorecase:src/d", b"D", INC),
        ("src/d/", b"d", INC),  # a trailing slash is ignored
    ],
)
def test_include_glob(glob: str, rel: bytes, expected: Decision | None) -> None:
    s = sel(("--include", glob), ("--exclude", "src/zzz"))
    assert ask(s, rel) is INC  # a match includes, and so does the default
    # with a final exclude, a non-match falls through to it
    s = sel(("--include", glob), ("--exclude", "**"))
    assert ask(s, rel) is (expected or EXC)


def test_include_glob_scans_directories_that_could_hold_a_match() -> None:
    s = sel(("--include", "src/a*/b/*.py"), ("--exclude", "**"))
    assert ask(s, b"ab", is_dir=True) is SCAN
    assert ask(s, b"ab/b", is_dir=True) is SCAN
    assert ask(s, b"ab/c", is_dir=True) is EXC
    assert ask(s, b"x", is_dir=True) is EXC
    assert ask(s, b"ab") is EXC  # only directories are scanned
    s = sel(("--include", "src/x/**/z"), ("--exclude", "**"))
    assert ask(s, b"x/1/2/3", is_dir=True) is SCAN
    assert ask(s, b"y", is_dir=True) is EXC


def test_scanned_directory_that_later_options_include_is_included() -> None:
    s = sel(("--include", "src/a/*.py"), ("--exclude", "src/b"))
    assert ask(s, b"a", is_dir=True) is INC  # the default would include it anyway
    s = sel(("--include", "src/a/*.py"), ("--exclude-regexp", "^src/a$"))
    assert ask(s, b"a", is_dir=True) is SCAN


def test_literal_include_includes_its_parents_unconditionally() -> None:
    s = sel(("--include", "src/a/b/missing"), ("--exclude", "**"))
    assert ask(s, b"a", is_dir=True) is INC
    assert ask(s, b"a/b", is_dir=True) is INC
    assert ask(s, b"a/b/missing/x") is INC
    assert ask(s, b"a/c") is EXC
    s = sel(("--include", "src//a/./b"), ("--exclude", "**"))  # // collapses, . is a name
    assert ask(s, b"a", is_dir=True) is INC
    assert ask(s, b"a/b", is_dir=True) is EXC


def test_exclude_prunes_and_first_match_wins() -> None:
    s = sel(("--exclude", "src/a"), ("--include", "src/a/b"), ("--exclude", "**"))
    assert ask(s, b"a", is_dir=True) is EXC
    s = sel(("--include", "src/a/b"), ("--exclude", "src/a"))
    assert ask(s, b"a", is_dir=True) is INC
    assert ask(s, b"a/b/c") is INC
    assert ask(s, b"a/c") is EXC


def test_absolute_source_and_globs(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path / "src")
    s = sel(("--exclude", os.fsdecode(root) + "/a/*"), root=root)
    assert ask(s, b"a/x") is EXC
    assert ask(s, b"b/x") is INC
    with pytest.raises(UsageError, match="cannot match"):
        sel(("--exclude", "src/a/*"), root=root)
    # a literal path compares components, so the leading slash does not matter (as there)
    s = sel(("--exclude", os.fsdecode(root).lstrip("/") + "/a"), root=root)
    assert ask(s, b"a") is EXC


@pytest.mark.parametrize(
    "glob", ["/elsewhere/**", "x*", "src2/a", "./src/a", "src[!x]a/b", "ignorecase:SRCX"]
)
def test_globs_that_cannot_match_below_the_source_are_fatal(glob: str) -> None:
    with pytest.raises(UsageError, match="cannot match"):
        sel(("--exclude", glob))


def test_source_argument_is_normalised() -> None:
    s = sel(("--exclude", "src/a"), root=b"./src/")
    assert ask(s, b"a") is EXC


def test_consecutive_slashes_in_a_glob_are_fatal() -> None:
    for glob in ["src//a*", "src/*//", "src/*//**", "/*//x"]:
        with pytest.raises(UsageError, match="consecutive"):
            sel(("--exclude", glob))


def test_consecutive_slashes_at_the_end_or_after_doublestar_are_accepted() -> None:
    for glob in ["**//b", "src/**//", "src/a**b//"]:
        assert ask(sel(("--exclude", glob)), b"b") is INC


def test_a_glob_ending_in_a_slash_matches_nothing() -> None:
    for glob in ["src/*/", "**/b/", "ignorecase:SRC/B/", "src/[b]/"]:
        s = sel(("--exclude", glob))
        assert ask(s, b"b", is_dir=True) is INC
        assert ask(s, b"b/c") is INC
    # the include still scans the directories leading to it
    s = sel(("--include", "src/*/"), ("--exclude", "**"))
    assert ask(s, b"b", is_dir=True) is SCAN
    assert ask(s, b"b/c") is EXC


def test_last_option_an_include_is_fatal(tmp_path: Path) -> None:
    listing = tmp_path / "list"
    listing.write_bytes(b"src/a\n")
    for option in [
        ("--include", "src/a"),
        ("--include-regexp", "a"),
        ("--include-filelist", str(listing)),
        ("--include-globbing-filelist", str(listing)),
        ("--include-if-present", "x"),
        ("--include-symbolic-links", None),
        ("--include-special-files", None),
    ]:
        with pytest.raises(UsageError, match="redundant"):
            sel(("--exclude", "src/b"), option)


def test_an_include_filelist_with_an_exclude_line_may_come_last(tmp_path: Path) -> None:
    listing = tmp_path / "list"
    listing.write_bytes(b"src/a\n- src/b\n")
    s = sel(("--include-filelist", str(listing)))
    assert ask(s, b"a") is INC
    assert ask(s, b"b") is EXC
    assert ask(s, b"c") is INC
    plus_only = tmp_path / "plus"
    plus_only.write_bytes(b"+ src/a\n")
    assert ask(sel(("--exclude-filelist", str(plus_only))), b"a") is INC


@pytest.mark.parametrize(
    "option",
    [
        "--include-fifos",
        "--include-device-files",
        "--include-sockets",
        "--include-other-filesystems",
    ],
)
def test_options_rdiff_backup_refuses(option: str) -> None:
    with pytest.raises(UsageError, match="refuses"):
        sel((option, None), ("--exclude", "**"))


def test_unknown_option_and_missing_value() -> None:
    with pytest.raises(UsageError, match="not a selection option"):
        sel(("--frobnicate", None))
    with pytest.raises(UsageError, match="needs a value"):
        sel(("--exclude", None))


# ---- regexps


def test_regexps_search_the_full_path_without_parents_or_children() -> None:
    s = sel(("--include-regexp", "/b$"), ("--exclude", "**"))
    assert ask(s, b"a/b", is_dir=True) is INC
    assert ask(s, b"a", is_dir=True) is EXC
    assert ask(s, b"a/b/c") is EXC
    s = sel(("--exclude-regexp", "^src/a"))
    assert ask(s, b"ab") is EXC
    assert ask(s, b"b") is INC
    s = sel(("--exclude-regexp", "nl.x"))  # no DOTALL, as there
    assert ask(s, b"nl\nx") is INC
    s = sel(("--exclude-regexp", "(?i)FOO"))
    assert ask(s, b"foo") is EXC


def test_bad_regexp_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"--exclude-regexp.*bad regular expression"):
        sel(("--exclude-regexp", "("))


# ---- file lists


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_filelist_includes_parents_not_children(tmp_path: Path) -> None:
    listing = write(tmp_path / "l", b"src/a/b\n\nsrc/c\r\n")
    s = sel(("--include-filelist", listing), ("--exclude", "**"))
    assert ask(s, b"a", is_dir=True) is INC
    assert ask(s, b"a/b", is_dir=True) is INC
    assert ask(s, b"a/b/x") is EXC
    assert ask(s, b"c") is INC  # the CR of a CRLF line is dropped
    assert ask(s, b"a/z") is EXC


def test_filelist_lines_are_not_globs_and_not_stripped(tmp_path: Path) -> None:
    listing = write(tmp_path / "l", b"src/*.txt\nsrc/sp  \n")
    s = sel(("--include-filelist", listing), ("--exclude", "**"))
    assert ask(s, b"a.txt") is EXC
    assert ask(s, b"*.txt") is INC
    assert ask(s, b"sp") is EXC
    assert ask(s, b"sp  ") is INC


def test_filelist_signs_and_the_sorted_walk_quirk(tmp_path: Path) -> None:
    listing = write(tmp_path / "l", b"src/a/b/g.py\n- src/a/b\nsrc/d\n+ src/e\n- src/e\n")
    s = sel(("--include-filelist", listing), ("--exclude", "**"))
    # rdiff-backup walks the sorted list: "- src/a/b" sorts first and hides the parents
    assert ask(s, b"a", is_dir=True) is EXC
    assert ask(s, b"d", is_dir=True) is INC
    assert ask(s, b"e", is_dir=True) is EXC  # - before + for the same path
    listing = write(tmp_path / "m", b"src/a\n+ src/a/x\n")
    s = sel(("--exclude-filelist", listing))
    assert ask(s, b"a", is_dir=True) is EXC
    assert ask(s, b"b") is INC


def test_filelist_entry_outside_the_source(tmp_path: Path) -> None:
    listing = write(tmp_path / "l", b"src/a\nother/b\n")
    with pytest.raises(UsageError, match="'other/b' is not under the source"):
        sel(("--include-filelist", listing), ("--exclude", "**"))
    s = sel(("--include-filelist", listing), ("--exclude", "**"), strict=False)
    assert len(s.warnings) == 1
    assert "other/b" in s.warnings[0]
    assert ask(s, b"a") is INC


def test_unreadable_filelist_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match=r"nope: .*cannot read the file list"):
        sel(("--include-filelist", str(missing)), ("--exclude", "**"))
    with pytest.raises(UsageError) as caught:
        sel(("--exclude-globbing-filelist", str(tmp_path)))
    assert "\n" not in str(caught.value)


def test_null_separated_stdin_with_hostile_names() -> None:
    data = b"src/new\nline/f\r\0src/\xff\xfe\0- src/a/x\0src/a\0src/t\n\0"
    s = sel(
        ("--null-separator", None),
        ("--include-filelist-stdin", None),
        ("--exclude", "**"),
        stdin=io.BytesIO(data),
    )
    assert ask(s, b"new\nline", is_dir=True) is INC
    assert ask(s, b"new\nline/f") is INC  # trailing CR dropped, as there
    assert ask(s, b"\xff\xfe") is INC
    assert ask(s, b"a", is_dir=True) is INC
    assert ask(s, b"a/x") is EXC
    assert ask(s, b"t\n") is INC  # a newline is part of the name
    s = sel(("--include-filelist-stdin", None), ("--exclude", "**"), stdin=io.BytesIO(b"src/d\n"))
    assert ask(s, b"d") is INC


def test_stdin_can_be_read_once() -> None:
    with pytest.raises(UsageError, match="standard input"):
        sel(
            ("--include-filelist-stdin", None),
            ("--exclude-filelist-stdin", None),
            stdin=io.BytesIO(b"src/a\n"),
        )
    with pytest.raises(UsageError, match="standard input"):
        sel(("--exclude-filelist-stdin", None))


def test_globbing_filelist_lines_are_globs_in_order(tmp_path: Path) -> None:
    globs = write(tmp_path / "g", b"- src/a/cache\nsrc/a/**\nignorecase:src/FOO\n- **\n")
    s = sel(("--include-globbing-filelist", globs))
    assert ask(s, b"a/cache/x") is EXC
    assert ask(s, b"a/y") is INC
    assert ask(s, b"foo") is INC
    assert ask(s, b"b") is EXC
    data = b"+ src/keep\0src/**\0"
    s = sel(
        ("--exclude-globbing-filelist-stdin", None),
        null_separator=True,
        stdin=io.BytesIO(data),
    )
    assert ask(s, b"keep") is INC
    assert ask(s, b"other") is EXC
    bad = write(tmp_path / "bad", b"# comment\n")
    with pytest.raises(UsageError, match=r"--exclude-globbing-filelist .*bad.*cannot match"):
        sel(("--exclude-globbing-filelist", bad))


# ---- presence files, types, sizes, file systems


def test_exclude_if_present(tmp_path: Path) -> None:
    (tmp_path / "src/a").mkdir(parents=True)
    (tmp_path / "src/b").mkdir()
    (tmp_path / "src/a/.nobackup").symlink_to("nowhere")  # lstat: a dangling link counts
    root = os.fsencode(tmp_path / "src")
    s = sel(("--exclude-if-present", ".nobackup"), root=root)
    assert ask(s, b"a", is_dir=True) is EXC
    assert ask(s, b"b", is_dir=True) is INC
    assert ask(s, b"a/.nobackup") is INC  # files are not judged by their directory


def test_include_if_present_judges_files_by_their_directory(tmp_path: Path) -> None:
    (tmp_path / "src/p/q").mkdir(parents=True)
    (tmp_path / "src/p/MARK").touch()
    root = os.fsencode(tmp_path / "src")
    s = sel(("--include-if-present", "MARK"), ("--exclude", "**"), root=root)
    assert ask(s, b"p", is_dir=True) is INC
    assert ask(s, b"p/file") is INC
    assert ask(s, b"p/q", is_dir=True) is EXC
    assert ask(s, b"top") is EXC


@pytest.mark.parametrize(
    ("option", "mode", "expected"),
    [
        ("--exclude-device-files", stat.S_IFCHR, EXC),
        ("--exclude-device-files", stat.S_IFBLK, EXC),
        ("--exclude-device-files", stat.S_IFIFO, INC),
        ("--exclude-fifos", stat.S_IFIFO, EXC),
        ("--exclude-fifos", stat.S_IFSOCK, INC),
        ("--exclude-sockets", stat.S_IFSOCK, EXC),
        ("--exclude-symbolic-links", stat.S_IFLNK, EXC),
        ("--exclude-symbolic-links", stat.S_IFREG, INC),
        ("--exclude-special-files", stat.S_IFLNK, EXC),
        ("--exclude-special-files", stat.S_IFBLK, EXC),
        ("--exclude-special-files", stat.S_IFREG, INC),
    ],
)
def test_file_type_options(option: str, mode: int, expected: Decision) -> None:
    s = sel((option, None))
    assert s.decide(b"x", fake_stat(mode), is_dir=False) is expected


def test_include_symbolic_links_before_exclude_special_files() -> None:
    s = sel(("--include-symbolic-links", None), ("--exclude-special-files", None))
    assert s.decide(b"l", fake_stat(stat.S_IFLNK), is_dir=False) is INC
    assert s.decide(b"f", fake_stat(stat.S_IFIFO), is_dir=False) is EXC


def test_size_limits_apply_to_regular_files_in_order() -> None:
    s = sel(("--max-file-size", "1000"), ("--min-file-size", "10"))
    assert s.decide(b"a", fake_stat(size=1000), is_dir=False) is INC
    assert s.decide(b"a", fake_stat(size=1001), is_dir=False) is EXC
    assert s.decide(b"a", fake_stat(size=9), is_dir=False) is EXC
    assert s.decide(b"d", fake_stat(stat.S_IFDIR, size=4), is_dir=True) is INC
    assert s.decide(b"l", fake_stat(stat.S_IFLNK, size=5000), is_dir=False) is INC
    s = sel(("--include", "src/big"), ("--max-file-size", "1"))
    assert s.decide(b"big", fake_stat(size=5), is_dir=False) is INC
    assert sel(("--max-file-size", " 1_000 ")).decide(b"a", fake_stat(size=999), is_dir=False)


@pytest.mark.parametrize("value", ["0", "-5", "1k", "1.5", ""])
def test_bad_sizes(value: str) -> None:
    with pytest.raises(UsageError, match="--max-file-size"):
        sel(("--max-file-size", value))


def test_exclude_other_filesystems(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    device = os.stat(root).st_dev
    s = sel(("--exclude-other-filesystems", None), root=root)
    assert s.decide(b"a", fake_stat(dev=device), is_dir=False) is INC
    assert s.decide(b"m", fake_stat(stat.S_IFDIR, dev=device + 1), is_dir=True) is EXC


# ---- the walk's interface and argv


def test_walk_protocol_form() -> None:
    s = sel(("--include", "src/a/**/*.py"), ("--exclude", "**"))
    walk: WalkSelection = s
    assert walk.decide((b"a",), b"src/a", DIR) is None  # scanned
    assert walk.decide((b"a", b"b", b"x.py"), b"src/a/b/x.py", FILE) is True
    assert walk.decide((b"a", b"x.py"), b"src/a/x.py", FILE) is False
    assert walk.decide((b"b",), b"src/b", DIR) is False
    assert IncludeAll().decide((b"b",), b"src/b", DIR) is True


def test_reference_walk(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a/b").mkdir(parents=True)
    (src / "a/e").mkdir()
    (src / "a/b/x.py").touch()
    (src / "c.py").touch()
    (src / "rdiff-backup-data").mkdir()
    s = sel(("--include", os.fsdecode(src) + "/a/**.py"), ("--exclude", "**"), root=bytes(src))
    assert s.walk() == [b"a", b"a/b", b"a/b/x.py"]


def test_extract_selection_args_keeps_order() -> None:
    argv = [
        "--json",
        "--include",
        "a",
        "--current-time",
        "5",
        "--exclude=b",
        "--exclude-fifos",
        "--null-separator",
        "--max-file-size",
        "-3",
        "src",
        "--",
        "--exclude",
        "repo",
    ]
    options, rest = extract_selection_args(argv)
    assert options == [
        ("--include", "a"),
        ("--exclude", "b"),
        ("--exclude-fifos", None),
        ("--null-separator", None),
        ("--max-file-size", "-3"),
    ]
    assert rest == ["--json", "--current-time", "5", "src", "--", "--exclude", "repo"]
    with pytest.raises(UsageError, match="needs a value"):
        extract_selection_args(["--exclude"])
    with pytest.raises(UsageError, match="takes no value"):
        extract_selection_args(["--exclude-fifos=1"])


# ---- properties

NAMES = st.binary(min_size=1, max_size=6).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..")
)
PLAIN = NAMES.filter(lambda n: not any(c in n for c in b"*?[\\"))


@given(st.lists(PLAIN, min_size=1, max_size=4))
def test_literal_excludes_match_hostile_names(parts: list[bytes]) -> None:
    rel = b"/".join(parts)
    s = sel(("--exclude", os.fsdecode(b"src/" + rel)))
    assert ask(s, rel) is EXC
    assert ask(s, rel + b"/below") is EXC
    sibling = b"/".join([*parts[:-1], parts[-1] + b"x"])
    assert ask(s, sibling) is INC


@given(NAMES)
def test_escaped_globs_match_any_name_literally(name: bytes) -> None:
    escaped = b"".join(b"\\" + bytes([c]) for c in name)
    s = sel(("--exclude", os.fsdecode(b"src/" + escaped)))
    assert ask(s, name) is EXC
    assert ask(s, name + b"x") is INC


@given(st.lists(NAMES, min_size=1, max_size=4))
def test_doublestar_matches_every_name(parts: list[bytes]) -> None:
    s = sel(("--include", "src/**"), ("--exclude", "**"))
    assert ask(s, b"/".join(parts)) is INC
