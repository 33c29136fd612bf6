"""Differential test: our Selection against rdiff-backup 2.2.7 on generated trees and options.

Hypothesis builds a small source tree (nested directories, files of a few sizes, symlinks,
fifos, names with glob characters, dots, both cases, spaces, newlines and non-UTF-8 bytes,
``.nobackup`` markers) and a list of 2 to 5 selection options (globs in many spellings,
regexps, file lists from files or standard input, newline- or NUL-separated, presence
files, sizes, symlink and special-file options), with the source spelled several ways.
``rdiff-backup backup`` runs over the tree and the mirror's listing must equal the paths
:meth:`Selection.walk` includes; an option set that rdiff-backup refuses must raise
:class:`UsageError` here, and the other way round.

Deterministic in CI (``derandomize``, a bounded example count). To hunt for differences,
raise the count: ``RDB_SELECTION_FUZZ_EXAMPLES=1000`` (which also makes the run random, so
every hunt explores new cases). A difference found is shrunk into a hand-written case of
``test_selection_interop.CASES`` so that it stays pinned.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.rdb_mirror.test_selection_interop import mirror_listing

from rdb_format.errors import UsageError
from rdb_format.exitcodes import ExitCode
from rdb_mirror.selection import Selection

pytestmark = pytest.mark.interop

RDB_MIRROR = Path(sys.executable).parent / "rdb-mirror"

_HUNT = os.environ.get("RDB_SELECTION_FUZZ_EXAMPLES")
EXAMPLES = int(_HUNT) if _HUNT else 60

# names that glob and regexp characters meet: brackets, stars, braces, backslashes, dots, case
NAME_POOL = [
    "a",
    "A",
    "b",
    "ab",
    "x.txt",
    "X.TXT",
    "c.py",
    ".hidden",
    ".nobackup",
    "d*",
    "q?",
    "[ab]",
    "br[a]ce",
    "{a,b}",
    "back\\s",
    "dot.",
    "..x",
    "!x",
    "^",
    "sp ace",
    "new\nline",
    "caf\udce9",  # not UTF-8 on disk: b"caf\xe9"
    "\u00e9t\u00e9",
    "\u00c9T\u00c9",
]
SIZES = [0, 1, 4, 5, 6, 100, 1024, 1025, 2000]
LINK_TARGETS = ["a", "nowhere", "../a", ".", "x.txt"]
GLOB_PIECES = [
    "*",
    "**",
    "?",
    "*.txt",
    "*.py",
    "[ab]*",
    "[!a]*",
    "[^.]*",
    "a*",
    "*a",
    "?.*",
    "**.txt",
    "[A-Z]*",
    "\\*",
    "{a,b}",
    ".*",
    "[]a]",
    "[!]]*",
    "[",
    "a**b",
    "**a",
    "d\\*",
    "[[]ab]",
    "[\\]*",
    "[a\\]]",
    "[!/]",
    "[a/b]",
    "[^]",
    "[]",
    "[-a]*",
    "[a-c]",
    "[.]*",
    "[*?]*",
    "a\\",
    "***",
    "**/**",
    "*/**/*",
    "ignorecase:",
]
GLOB_PREFIXES = ["{src}/"] * 5 + ["**/", "**/", "*/", "{SRC}/", "", "{src}//", "/elsewhere/"]
SIZE_VALUES = ["1", "5", "6", "100", "1024", "1025", "0", " 5", "1_0", "5k", "-1", "1.5", "+5"]

names = st.one_of(
    st.sampled_from(NAME_POOL),
    st.text(alphabet="aAb.*?[]{}\\!", min_size=1, max_size=3).filter(
        lambda name: name not in (".", "..")
    ),
)


@dataclass(frozen=True)
class Node:
    path: str  # relative to the source root
    kind: str  # "file", "dir", "link" or "fifo"
    size: int = 0
    target: str = ""


@st.composite
def trees(draw: st.DrawFn, depth: int = 0, prefix: str = "") -> list[Node]:
    """A directory's entries (depth first), at most three levels deep."""
    nodes: list[Node] = []
    for name in draw(st.lists(names, min_size=1 if depth == 0 else 0, max_size=4, unique=True)):
        path = prefix + name
        kinds = ["file", "dir", "dir", "link", "fifo"] if depth < 2 else ["file", "link", "fifo"]
        kind = draw(st.sampled_from(kinds))
        if kind == "file":
            nodes.append(Node(path, "file", size=draw(st.sampled_from(SIZES))))
        elif kind == "link":
            nodes.append(Node(path, "link", target=draw(st.sampled_from(LINK_TARGETS))))
        elif kind == "fifo":
            nodes.append(Node(path, "fifo"))
        else:
            nodes.append(Node(path, "dir"))
            nodes.extend(draw(trees(depth + 1, path + "/")))
    return nodes


@dataclass(frozen=True)
class Scenario:
    tree: list[Node]
    source: str  # as typed ("src", "./src/", ...); ABS stands for the work directory
    options: list[tuple[str, str | None]]  # {src}/{SRC} filled in later; lists named by key
    lists: dict[str, list[str]]  # file-list name ("stdin": standard input) -> lines
    null_separator: bool  # lists split on NUL (rdiff-backup's global --null-separator)


# ways to blur one component of a real path into a glob component
BLURS = [
    lambda name: name,
    lambda name: name,
    lambda name: "*",
    lambda name: "**",
    lambda name: "?" * len(name),
    lambda name: name[:1] + "*",
    lambda name: "*" + name[-1:],
    lambda name: "[" + name[:1] + "]" + name[1:],
    lambda name: "[!" + name[:1] + "]" + name[1:],
    lambda name: name[:-1] + "?",
    str.swapcase,
]


@st.composite
def path_parts(draw: st.DrawFn, paths: list[str]) -> list[str]:
    """A real path's leading components, some of them blurred into globs."""
    parts = draw(st.sampled_from(paths)).split("/")
    parts = parts[: draw(st.integers(1, len(parts)))]
    return [draw(st.sampled_from(BLURS))(part) for part in parts]


@st.composite
def globs(draw: st.DrawFn, tree_names: list[str], paths: list[str]) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["**", "{src}", "ignorecase:{SRC}"]))
    component = st.one_of(
        st.sampled_from(tree_names),
        st.sampled_from(tree_names).map(str.swapcase),
        st.sampled_from(GLOB_PIECES),
        st.sampled_from(tree_names).map(lambda name: name[:1] + "*"),
        st.text(alphabet="aAb*?[]!^\\-.", min_size=1, max_size=5),
    )
    if draw(st.booleans()):
        parts = draw(path_parts(paths))
    else:
        parts = draw(st.lists(component, min_size=1, max_size=3))
    prefix = draw(st.sampled_from(GLOB_PREFIXES))
    glob = prefix + "/".join(parts) + draw(st.sampled_from(["", "", "", "/"]))
    if prefix == "{SRC}/" or draw(st.integers(0, 5)) == 0:
        glob = "ignorecase:" + glob
    return glob


@st.composite
def regexps(draw: st.DrawFn, tree_names: list[str], paths: list[str]) -> str:
    return draw(
        st.one_of(
            st.sampled_from(tree_names).map(lambda name: re.escape(name) + "$"),
            st.sampled_from(tree_names).map(lambda name: "/" + re.escape(name)),
            st.sampled_from(paths).map(lambda path: "^{src}/" + re.escape(path) + "$"),
            st.sampled_from(
                [
                    r"\.txt$",
                    "(?i)a",
                    "^{src}/[^/]*$",
                    "[*?]",
                    r"\\",
                    r"/\.",
                    "a",
                    "^{src}$",
                    "^{src}/.*/",
                    "(",
                ]
            ),
        )
    )


@st.composite
def filelists(
    draw: st.DrawFn, paths: list[str], tree_names: list[str], globbing: bool
) -> list[str]:
    if globbing:
        entry = globs(tree_names, paths)
    else:
        entry = st.one_of(
            st.sampled_from(paths).map(lambda path: "{src}/" + path),
            st.sampled_from(paths).map(lambda path: "{src}/" + path + "/"),
            st.sampled_from(["{src}/missing", "{src}/a/missing", "{src}", "elsewhere/a"]),
            st.tuples(
                st.sampled_from(["{src}/./", "{src}//", "./{src}/", " {src}/", "{SRC}/"]),
                st.sampled_from(paths),
                st.sampled_from(["", "/", "/.", "/..", "//", "\r", " "]),
            ).map("".join),
        )
    lines = draw(st.lists(st.tuples(st.sampled_from(["", "+ ", "- "]), entry), max_size=4))
    return [sign + line for sign, line in lines]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    tree = draw(trees())
    paths = [node.path for node in tree]
    tree_names = sorted({path.rsplit("/", 1)[-1] for path in paths})
    lists: dict[str, list[str]] = {}
    options: list[tuple[str, str | None]] = []
    count = draw(st.integers(2, 5))
    # mostly end with --exclude '**', so that the includes before it count (an include last
    # is refused by both)
    closing = draw(st.integers(0, 3)) < 3
    for _ in range(count - 1 if closing else count):
        kind = draw(st.integers(0, 9))
        option: tuple[str, str | None]
        if kind <= 3:
            flavour = draw(st.sampled_from(["--include", "--exclude"]))
            option = (flavour, draw(globs(tree_names, paths)))
        elif kind == 4:
            flavour = draw(st.sampled_from(["--include-regexp", "--exclude-regexp"]))
            option = (flavour, draw(regexps(tree_names, paths)))
        elif kind == 5:
            option = (
                draw(st.sampled_from(["--exclude-if-present", "--include-if-present"])),
                draw(st.sampled_from([".nobackup", ".nobackup", *tree_names, "a/b", ".", ""])),
            )
        elif kind == 6:
            flavour = draw(st.sampled_from(["--max-file-size", "--min-file-size"]))
            option = (flavour, draw(st.sampled_from(SIZE_VALUES)))
        elif kind == 7:
            flags = [
                "--exclude-symbolic-links",
                "--include-symbolic-links",
                "--exclude-fifos",
                "--exclude-special-files",
                "--include-special-files",
            ]
            option = (draw(st.sampled_from(flags)), None)
        else:
            globbing = kind == 9
            stdin = "stdin" not in lists and draw(st.integers(0, 3)) == 0
            name = "stdin" if stdin else f"list{len(lists)}"
            lists[name] = draw(filelists(paths, tree_names, globbing))
            flavour = "globbing-filelist" if globbing else "filelist"
            kind_name = draw(st.sampled_from(["include", "exclude"]))
            option = (
                (f"--{kind_name}-{flavour}-stdin", None)
                if stdin
                else (f"--{kind_name}-{flavour}", name)
            )
        options.append(option)
    if closing:
        options.append(("--exclude", "**"))
    source = draw(st.sampled_from(["src"] * 4 + ["./src/", "src/", "ABS/src", "ABS/src/", "UP"]))
    null_separator = bool(lists) and draw(st.integers(0, 3)) == 0
    return Scenario(tree, source, options, lists, null_separator)


def build(root: Path, tree: list[Node]) -> None:
    root.mkdir()
    for node in tree:
        path = root / node.path
        if node.kind == "dir":
            path.mkdir()
        elif node.kind == "file":
            path.write_bytes(b"x" * node.size)
        elif node.kind == "link":
            os.symlink(node.target, path)
        else:
            os.mkfifo(path)


def run_scenario(scenario: Scenario, rdiff_backup: str) -> None:
    with tempfile.TemporaryDirectory(prefix="selfuzz-") as tmp:
        work = Path(tmp)
        build(work / "src", scenario.tree)
        # UP: the source spelled through its parent, "../selfuzz-XXX/src"
        up = os.path.join("..", work.name, "src")
        src = scenario.source.replace("ABS", str(work)).replace("UP", up)
        norm = os.path.normpath(src)

        def fill(text: str) -> str:
            return text.replace("{src}", norm).replace("{SRC}", norm.swapcase())

        separator = "\0" if scenario.null_separator else "\n"
        contents = {
            name: os.fsencode(fill("".join(line + separator for line in lines)))
            for name, lines in scenario.lists.items()
        }
        for name, content in contents.items():
            (work / name).write_bytes(content)
        options = [
            (option, None if value is None else fill(value)) for option, value in scenario.options
        ]
        options = [
            (option, str(work / value) if value and "filelist" in option else value)
            for option, value in options
        ]
        argv = [part for option, value in options for part in (option, value) if part is not None]
        generic = ["--null-separator"] if scenario.null_separator else []
        stdin = contents.get("stdin") or b""

        def backup(command: list[str], repo: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [*command, *argv, src, str(work / repo)],
                cwd=work,
                input=stdin,
                capture_output=True,
                timeout=60,
                check=False,
            )

        theirs_run = backup([rdiff_backup, *generic, "backup"], "repo")
        output = (theirs_run.stdout + theirs_run.stderr).decode(errors="replace")
        # the real command too: its walk, not only the reference walk, must agree
        ours_run = backup([str(RDB_MIRROR), *generic], "ours")
        ours_output = ours_run.stderr.decode(errors="replace")
        assert "Traceback" not in ours_output, ours_output
        with contextlib.chdir(work):
            try:
                selection = Selection.from_options(
                    options,
                    root=src,
                    stdin=io.BytesIO(stdin),
                    null_separator=scenario.null_separator,
                    strict=False,
                )
            except UsageError as error:
                assert theirs_run.returncode != 0, f"we refuse ({error}), rdiff-backup does not"
                assert ours_run.returncode == ExitCode.USAGE, ours_output
                event("refused by both: " + re.sub(r"'.*", "", str(error))[:40])
                return
            assert theirs_run.returncode == 0, f"rdiff-backup refuses, we do not:\n{output}"
            ours = set(selection.walk())
        theirs = mirror_listing(work / "repo")
        event("backed up: " + ("everything" if len(theirs) == len(scenario.tree) else "a part"))
        assert sorted(ours - theirs) == [], "we include, rdiff-backup does not"
        assert sorted(theirs - ours) == [], "rdiff-backup includes, we do not"
        if selection.warnings:  # a file-list entry outside the source: an error for rdb-mirror
            assert ours_run.returncode == ExitCode.USAGE, ours_output
            assert "not under the source" in ours_output
        else:
            assert ours_run.returncode == ExitCode.OK, ours_output
            assert mirror_listing(work / "ours") == theirs, "rdb-mirror's mirror differs"


@settings(
    max_examples=EXAMPLES,
    derandomize=not _HUNT,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_selection_matches_rdiff_backup(scenario: Scenario, rdiff_backup: str) -> None:
    run_scenario(scenario, rdiff_backup)
