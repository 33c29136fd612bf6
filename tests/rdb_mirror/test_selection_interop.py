"""Our Selection picks exactly the files rdiff-backup 2.2.7 backs up, for many option sets.

Each case builds a source tree, runs ``rdiff-backup backup`` with selection options, lists the
mirror (everything outside ``rdiff-backup-data``) and compares it with the paths our
:class:`~rdb_mirror.selection.Selection` includes over the same tree. Fatal option sets are
compared too: rdiff-backup must fail, and we must raise UsageError.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rdb_format.errors import UsageError
from rdb_mirror.selection import Selection, extract_selection_args

pytestmark = pytest.mark.interop

IS_ROOT = os.geteuid() == 0


def _touch(path: Path, size: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def build_tree(src: Path) -> None:
    """A tree with every file type, hostile names, nested and empty directories."""
    b = os.fsencode(src)
    for rel, size in [
        ("a/b/c/f.txt", 10),
        ("a/b/g.py", 2000),
        ("a/x.txt", 5),
        ("a/X.TXT", 5),
        ("a/cache/big.bin", 5000),
        ("d/y", 1),
        ("d/.nobackup", 0),
        ("d/sub/z.txt", 3),
        ("Foo/Bar.TXT", 7),
        ("Foo/baz/Qux.py", 1024),
        ("keep/one/.keep", 0),
        ("keep/one/two/data", 100),
        ("top.txt", 1023),
        ("top.py", 1025),
        ("star*name", 1),
        ("br[ack]et", 1),
        ("back\\slash", 1),
        ("spa ce/file", 1),
        ("new\nline/f\r", 2),
    ]:
        _touch(src / rel, size)
    (src / "empty").mkdir()
    (src / "a/e").mkdir()
    (src / "deep/empty/dirs").mkdir(parents=True)
    os.makedirs(b + b"/latin\xe9", exist_ok=True)
    with open(b + b"/latin\xe9/caf\xe9.txt", "wb") as handle:
        handle.write(b"cafe")
    with open(b + b"/\xff\xfe", "wb") as handle:
        handle.write(b"raw")
    os.symlink("a", src / "link")
    os.symlink("nowhere", src / "dangling")
    os.symlink("../top.txt", src / "d/toplink")
    os.mkfifo(src / "fifo")
    os.mkfifo(src / "d/pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fsdecode(src / "sock"))
    finally:
        sock.close()
    if IS_ROOT:
        os.mknod(src / "chr", 0o600 | 0o020000, os.makedev(1, 3))
        os.mknod(src / "blk", 0o600 | 0o060000, os.makedev(7, 0))


def mirror_listing(repo: Path) -> set[bytes]:
    """Relative paths of the mirror (symlinks not followed), rdiff-backup-data skipped."""
    root = os.fsencode(repo)
    found: set[bytes] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == b".":
            dirnames[:] = [n for n in dirnames if n != b"rdiff-backup-data"]
        for name in dirnames + filenames:
            found.add(os.path.normpath(os.path.join(rel_dir, name)))
    return found


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # backup options; {src} is the source argument, {dir} the work directory
    files: dict[str, bytes] = field(default_factory=dict)  # lists written under {dir}
    stdin: bytes | None = None
    generic: list[str] = field(default_factory=list)  # options before "backup"
    absolute: bool = False  # give the source as an absolute path
    fatal: bool = False  # rdiff-backup refuses the options, we raise UsageError
    source: str | None = None  # the source argument as typed (default "src")
    lenient: bool = False  # file-list entries outside the source: rdiff-backup ignores them


CASES = [
    Case("glob-doublestar", ["--include", "{src}/**/*.txt", "--exclude", "**"]),
    Case("glob-doublestar-suffix", ["--include", "{src}/**.py", "--exclude", "**"]),
    Case(
        "glob-exclude-then-include",
        ["--exclude", "**/cache", "--include", "{src}/a", "--exclude", "**"],
    ),
    Case(
        "glob-star-question-class",
        ["--include", "{src}/?/[bx]*", "--exclude", "{src}/[!d]*", "--exclude", "**/*.txt"],
    ),
    Case("glob-ignorecase", ["--include", "ignorecase:{src}/foo/**", "--exclude", "**"]),
    Case(
        "glob-ignorecase-files",
        ["--include", "ignorecase:**/*.TXT", "--exclude", "ignorecase:{src}/A/*"],
    ),
    Case(
        "glob-hostile-names",
        ["--include", "{src}/star\\*name", "--include", "{src}/br[[]ack]et", "--exclude", "**"],
    ),
    Case("literal-parents", ["--include", "{src}/a/b/nothing/here", "--exclude", "**"]),
    Case("literal-deep-file", ["--include", "{src}/keep/one/two/data", "--exclude", "**"]),
    Case(
        "scan-drops-empty",
        ["--include", "{src}/**/.keep", "--include", "{src}/deep/*/nothing", "--exclude", "**"],
    ),
    Case("scan-then-regexp", ["--include", "{src}/*/zzz", "--exclude-regexp", "^{src}/[ad]$"]),
    Case(
        "regexps",
        [
            "--exclude-regexp",
            "\\.py$",
            "--include-regexp",
            "/b$",
            "--include-regexp",
            "(?i)bar",
            "--exclude-regexp",
            "/[a-f]",
        ],
    ),
    Case(
        "filelist",
        ["--include-filelist", "{dir}/list", "--exclude", "**"],
        files={
            "list": b"{src}/a/b\n- {src}/a/cache\n{src}/a/cache/big.bin\n"
            b"{src}/d/y\r\n\n{src}/latin\xe9/caf\xe9.txt\n{src}/spa ce/file  \n"
        },
    ),
    Case(
        "filelist-exclude-quirk",
        ["--include-filelist", "{dir}/list", "--exclude", "**"],
        files={"list": b"{src}/a/b/g.py\n- {src}/a/b\n{src}/d\n{src}/Foo/baz/Qux.py\n"},
    ),
    Case(
        "filelist-outside-entries",
        ["--include-filelist", "{dir}/list", "--exclude", "**"],
        files={"list": b"{src}/d\n# comment\nsrcx/a\n/elsewhere/src/a\n{src}/../src/a\n"},
        lenient=True,
    ),
    Case(
        "exclude-filelist-with-plus",
        ["--exclude-filelist", "{dir}/list"],
        files={"list": b"{src}/a\n+ {src}/a/x.txt\n{src}/spa ce\n+ {src}/d\n{src}/d/y\n"},
    ),
    Case(
        "filelist-null-stdin",
        ["--include-filelist-stdin", "--exclude", "**"],
        generic=["--null-separator"],
        stdin=b"{src}/new\nline/f\r\0{src}/\xff\xfe\0{src}/back\\slash\0- {src}/a/x.txt\0{src}/a\0",
    ),
    Case(
        "globbing-filelist",
        ["--include-globbing-filelist", "{dir}/globs", "--exclude", "**"],
        files={"globs": b"- {src}/a/cache\n{src}/a/**\nignorecase:{src}/foo/*.txt\n- **.py\n"},
    ),
    Case(
        "globbing-filelist-null-stdin-exclude",
        ["--exclude-globbing-filelist-stdin"],
        generic=["--null-separator"],
        stdin=b"{src}/new?line\0+ {src}/a/b\0{src}/a\0**/*.py\0",
    ),
    Case(
        "presence",
        ["--exclude-if-present", ".nobackup", "--exclude-if-present", ".keep"],
    ),
    Case(
        "presence-order",
        ["--include", "{src}/d/sub", "--exclude-if-present", ".nobackup", "--exclude", "**/*.py"],
    ),
    Case("include-if-present", ["--include-if-present", ".keep", "--exclude", "**"]),
    Case("size-limits", ["--max-file-size", "1024", "--min-file-size", "5"]),
    Case(
        "size-order",
        ["--include", "{src}/top.py", "--max-file-size", "1000", "--min-file-size", "2"],
    ),
    Case(
        "special-files",
        ["--exclude-fifos", "--exclude-sockets", "--exclude-device-files"],
    ),
    Case(
        "symlinks-and-special",
        ["--include-symbolic-links", "--exclude-special-files", "--exclude", "**/*.txt"],
    ),
    Case("other-filesystems", ["--exclude-other-filesystems", "--exclude-symbolic-links"]),
    Case(
        "absolute-source",
        ["--include", "{src}/a/b", "--exclude", "{src}/**x*", "--exclude-regexp", "^/.*/d$"],
        absolute=True,
    ),
    Case(
        "scan-twice-then-include",
        [
            "--include",
            "{src}/a*/q",
            "--include",
            "{src}/**/nothing",
            "--include-regexp",
            "^{src}/(a|d|a/e)$",
            "--exclude",
            "**",
        ],
    ),
    Case("scan-prefix-on-a-file", ["--include", "{src}/top.tx?/x", "--exclude-regexp", "zzz"]),
    Case("literal-file-as-parent", ["--include", "{src}/top.txt/x", "--exclude", "**"]),
    Case("literal-ignorecase", ["--exclude", "ignorecase:SRC/A", "--exclude", "ignorecase:**/f*"]),
    Case("literal-dot-components", ["--exclude", "{src}/./a", "--exclude", "{src}/d/../Foo"]),
    Case(
        "source-spelled-differently",
        ["--include", "src/a/b", "--exclude", "src/**"],
        source="./src/",
    ),
    Case(
        "negated-class-spans-slash",
        ["--include", "{src}/**[!x]g.py", "--exclude", "{src}/a[!x]b", "--exclude", "**"],
    ),
    Case("negated-class-alone", ["--exclude", "{src}/a[!x]b", "--exclude", "{src}/a?c"]),
    # found by test_selection_fuzz.py, shrunk by hand
    Case(
        "glob-trailing-slash-matches-nothing",
        ["--exclude", "{src}/*/", "--exclude", "**/cache/", "--exclude", "ignorecase:{src}/a/"],
    ),
    Case(
        "glob-trailing-slash-include-only-scans",
        ["--include", "{src}/a/*/", "--include-regexp", "^{src}/a/e$", "--exclude", "**"],
    ),
    Case("glob-double-slash-after-doublestar", ["--exclude", "**//b", "--exclude", "{src}/**//"]),
    Case(
        "include-filelist-with-exclude-line-last",
        ["--exclude", "{src}/top.py", "--include-filelist", "{dir}/list"],
        files={"list": b"{src}/a/b\n- {src}/a/cache\n"},
    ),
    Case(
        "exclude-filelist-of-plus-lines-last",
        ["--exclude-filelist", "{dir}/list"],
        files={"list": b"+ {src}/a\n"},
    ),
    # fatal option sets (both refuse)
    Case("fatal-redundant-include", ["--exclude", "**/a", "--include", "{src}/d"], fatal=True),
    Case("fatal-outside-glob", ["--exclude", "/nonexistent/**"], fatal=True),
    Case("fatal-double-slash", ["--exclude", "{src}//a/*"], fatal=True),
    Case("fatal-double-slash-before-end", ["--exclude", "{src}/*//"], fatal=True),
    Case(
        "fatal-include-filelist-last",
        ["--include-filelist", "{dir}/list"],
        files={"list": b"{src}/a\n+ {src}/d\n"},
        fatal=True,
    ),
    Case("fatal-size", ["--max-file-size", "0"], fatal=True),
    Case("fatal-bad-regexp", ["--exclude-regexp", "("], fatal=True),
    Case("fatal-include-fifos", ["--include-fifos", "--exclude", "**"], fatal=True),
]


def _fill(template: bytes, src: str, workdir: Path) -> bytes:
    return template.replace(b"{src}", os.fsencode(src)).replace(b"{dir}", os.fsencode(workdir))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("selection")
    build_tree(base / "src")
    return base


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_same_files_as_rdiff_backup(
    case: Case,
    tree: Path,
    rdiff_backup: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tree)
    src = str(tree / "src") if case.absolute else "src"
    src = case.source or src

    def fill(text: str) -> str:
        return os.fsdecode(_fill(os.fsencode(text), src, tmp_path))

    for name, content in case.files.items():
        (tmp_path / name).write_bytes(_fill(content, src, tmp_path))
    args = [fill(arg) for arg in case.args]
    stdin = _fill(case.stdin, src, tmp_path) if case.stdin is not None else None
    repo = tmp_path / "repo"
    proc = subprocess.run(
        [rdiff_backup, *case.generic, "backup", *args, src, str(repo)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    options, rest = extract_selection_args([*case.generic, *args])
    assert rest == []
    stdin_file = None
    if stdin is not None:
        stdin_file = tmp_path / "stdin"
        stdin_file.write_bytes(stdin)
    if case.fatal:
        assert proc.returncode != 0, proc.stdout + proc.stderr
        with pytest.raises(UsageError):
            Selection.from_options(options, root=src)
        return
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")
    if case.lenient:
        with pytest.raises(UsageError, match="not under the source"):
            Selection.from_options(options, root=src)
    if stdin_file is not None:
        with stdin_file.open("rb") as handle:
            selection = Selection.from_options(
                options, root=src, stdin=handle, strict=not case.lenient
            )
    else:
        selection = Selection.from_options(options, root=src, strict=not case.lenient)
    assert bool(selection.warnings) == case.lenient
    ours = set(selection.walk())
    theirs = mirror_listing(repo)
    assert sorted(ours - theirs) == [], "we include, rdiff-backup does not"
    assert sorted(theirs - ours) == [], "rdiff-backup includes, we do not"
