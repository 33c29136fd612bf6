"""File selection exactly as rdiff-backup 2.2.7 does it (``--include``/``--exclude`` and friends).

A :class:`Selection` is built from the selection options in command-line order
(:meth:`Selection.from_options`; :func:`extract_selection_args` pulls them out of an argv list
without losing their interleaved order). During a depth-first walk it is asked about every
entry below the source root; the first option that has an opinion decides, and an entry no
option decides is included. See docs/selection.md for the rules, which were pinned by
experiments against rdiff-backup 2.2.7.

The walk of :mod:`rdb_mirror.source` calls ``decide(index, path, st)`` (its ``Selection``
protocol, answering True / False / None); other callers may use the bytes-path form
``decide(rel_path, st, is_dir=...)``, which answers a :class:`Decision`.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, overload

from rdb_format.errors import UsageError

__all__ = [
    "SELECTION_FLAGS",
    "SELECTION_OPTIONS",
    "Decision",
    "Selection",
    "extract_selection_args",
]

Index = tuple[bytes, ...]
_DATA_DIR = b"rdiff-backup-data"


class Decision(enum.Enum):
    """What the selection says about one entry."""

    INCLUDE = "include"
    """Back it up (a directory is descended)."""
    EXCLUDE = "exclude"
    """Leave it out (a directory with everything below it)."""
    SCAN = "scan"
    """A directory that is included only if something below it is (never for non-directories)."""


#: Selection options that take a value, as spelled on the command line.
SELECTION_OPTIONS: frozenset[str] = frozenset(
    {
        "--include",
        "--exclude",
        "--include-regexp",
        "--exclude-regexp",
        "--include-filelist",
        "--exclude-filelist",
        "--include-globbing-filelist",
        "--exclude-globbing-filelist",
        "--include-if-present",
        "--exclude-if-present",
        "--max-file-size",
        "--min-file-size",
    }
)

#: Selection options without a value (``--null-separator`` only changes how lists are split).
SELECTION_FLAGS: frozenset[str] = frozenset(
    {
        "--include-filelist-stdin",
        "--exclude-filelist-stdin",
        "--include-globbing-filelist-stdin",
        "--exclude-globbing-filelist-stdin",
        "--exclude-device-files",
        "--exclude-fifos",
        "--exclude-sockets",
        "--exclude-symbolic-links",
        "--include-symbolic-links",
        "--exclude-special-files",
        "--include-special-files",
        "--exclude-other-filesystems",
        "--null-separator",
        # listed by rdiff-backup 2.2.7's --help but refused by it ("Bad selection option"):
        "--include-device-files",
        "--include-fifos",
        "--include-sockets",
        "--include-other-filesystems",
    }
)

_REFUSED = frozenset(
    {
        "--include-device-files",
        "--include-fifos",
        "--include-sockets",
        "--include-other-filesystems",
    }
)


@dataclass(frozen=True)
class _Entry:
    """One entry as the selectors see it."""

    index: Index
    full: bytes  # the path as rdiff-backup forms it from the source argument (globs, regexps)
    fs_path: bytes  # a path to reach it on disk (presence files)
    st: os.stat_result
    is_dir: bool


_Selector = Callable[[_Entry], Decision | None]


@dataclass(frozen=True)
class _Rule:
    """One selection function, in command-line order."""

    describe: str  # for messages (the redundancy check)
    include: bool  # an include-kind function: it can never exclude
    decide: _Selector


# --------------------------------------------------------------------------------------------
# Globs


_GLOB_CHARS = re.compile(rb"[*?\[\\]")


def _translate(glob: bytes) -> bytes:
    """The regular expression (bytes) of a shell glob, as rdiff-backup reads globs.

    ``**`` is any string (``/`` included), ``*`` and ``?`` stop at ``/``, ``[...]`` is a
    class (``!`` or ``^`` negates; a negated class can match ``/``), ``\\`` quotes the next
    character, an unclosed ``[`` is literal.
    """
    out: list[bytes] = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i : i + 1]
        i += 1
        if c == b"*":
            if glob[i : i + 1] == b"*":
                out.append(b".*")
                i += 1
            else:
                out.append(b"[^/]*")
        elif c == b"?":
            out.append(b"[^/]")
        elif c == b"\\":
            if i < n:
                out.append(re.escape(glob[i : i + 1]))
                i += 1
            else:
                out.append(re.escape(c))
        elif c == b"[":
            j = i
            if glob[j : j + 1] in (b"!", b"^"):
                j += 1
            if glob[j : j + 1] == b"]":
                j += 1
            while j < n and glob[j : j + 1] != b"]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = glob[i:j]
            i = j + 1
            negate = body[:1] in (b"!", b"^")
            if negate:
                body = body[1:]
            escaped = body.replace(b"\\", b"\\\\").replace(b"[", b"\\[")
            escaped = escaped.replace(b"]", b"\\]") if escaped.startswith(b"]") else escaped
            out.append(b"[" + (b"^" if negate else b"") + escaped + b"]")
        else:
            out.append(re.escape(c))
    return b"".join(out)


def _components(path: bytes) -> list[bytes]:
    return [part for part in path.split(b"/") if part]


class _Base:
    """The source root as rdiff-backup names it: the argument, normalised."""

    def __init__(self, root: bytes) -> None:
        self.fs_root = root
        self.name = os.path.normpath(root) if root else b"."
        self.components = _components(self.name)

    def full(self, index: Index) -> bytes:
        if not index:
            return self.name
        rel = b"/".join(index)
        return self.name + rel if self.name.endswith(b"/") else self.name + b"/" + rel


def _cannot_match(spec: bytes, base: _Base) -> UsageError:
    return UsageError(
        f"the file specification {_show(spec)!r} cannot match any file in the source "
        f"{_show(base.name)!r}; begin it with the source path or a pattern such as '**'"
    )


def _show(data: bytes) -> str:
    return os.fsdecode(data).encode("utf-8", "backslashreplace").decode("utf-8")


def _glob_rule(spec: bytes, include: bool, base: _Base, origin: str) -> _Rule:
    """``--include``/``--exclude`` GLOB (and one line of a globbing filelist)."""
    describe = f"{origin} {'include' if include else 'exclude'} glob {_show(spec)!r}"
    glob = spec
    flags = re.DOTALL
    ignorecase = glob.startswith(b"ignorecase:")
    if ignorecase:
        glob = glob[len(b"ignorecase:") :]
        flags |= re.IGNORECASE
    if not ignorecase and not _GLOB_CHARS.search(glob):
        return _literal_rule(glob, include, base, describe, spec)
    # A trailing "/" is kept, as rdiff-backup keeps it: full paths never end with "/", so such
    # a glob matches nothing itself (its include still scans the directories leading to it).
    parts = glob.split(b"/")
    if glob == b"**":
        matcher = re.compile(rb".*", flags)
        scans: list[re.Pattern[bytes]] = []
    else:
        matcher = re.compile(_translate(glob) + rb"(?:/.*)?", flags)
        scans = []
        for count in range(1, len(parts) + 1):
            part = parts[count - 1]
            head = b"/".join(parts[: count - 1])
            if b"**" in part:
                before = part[: part.index(b"**")]
                prefix = (head + b"/" if count > 1 else b"") + before
                scans.append(re.compile(_translate(prefix) + rb".*", flags))
                break
            if count < len(parts):
                # rdiff-backup finds "//" only here: before the first "**", not at the end
                if count > 1 and not part:
                    raise UsageError(f"consecutive '/'s in the glob {_show(spec)!r}")
                scans.append(re.compile(_translate(b"/".join(parts[:count])), flags))
    if not (matcher.fullmatch(base.name) or any(scan.fullmatch(base.name) for scan in scans)):
        raise _cannot_match(spec, base)
    verdict = Decision.INCLUDE if include else Decision.EXCLUDE

    def decide(entry: _Entry) -> Decision | None:
        if matcher.fullmatch(entry.full):
            return verdict
        if include and entry.is_dir and any(scan.fullmatch(entry.full) for scan in scans):
            return Decision.SCAN
        return None

    return _Rule(describe, include, decide)


def _literal_rule(glob: bytes, include: bool, base: _Base, describe: str, spec: bytes) -> _Rule:
    """A glob without glob characters: compared component by component."""
    parts = _components(glob)
    if parts[: len(base.components)] != base.components:
        raise _cannot_match(spec, base)
    target = tuple(parts[len(base.components) :])
    size = len(target)

    if include:

        def decide(entry: _Entry) -> Decision | None:
            index = entry.index
            if index[:size] == target or target[: len(index)] == index:
                return Decision.INCLUDE  # itself, below it, or one of its parents
            return None

    else:

        def decide(entry: _Entry) -> Decision | None:
            return Decision.EXCLUDE if entry.index[:size] == target else None

    return _Rule(describe, include, decide)


# --------------------------------------------------------------------------------------------
# Regular expressions, file lists, presence files, file types, sizes


def _regexp_rule(pattern: str, include: bool) -> _Rule:
    option = "--include-regexp" if include else "--exclude-regexp"
    try:
        compiled = re.compile(os.fsencode(pattern))
    except re.error as error:
        raise UsageError(f"{option} {pattern!r}: bad regular expression: {error}") from None
    verdict = Decision.INCLUDE if include else Decision.EXCLUDE

    def decide(entry: _Entry) -> Decision | None:
        return verdict if compiled.search(entry.full) else None

    return _Rule(f"{option} {pattern!r}", include, decide)


def _split_list(data: bytes, null_separator: bool) -> list[bytes]:
    """The lines of a file list: split on NUL or newline, trailing CRs dropped, blanks skipped."""
    lines = data.split(b"\0" if null_separator else b"\n")
    return [stripped for line in lines if (stripped := line.rstrip(b"\r"))]


def _signed(line: bytes, include: bool) -> tuple[bytes, bool]:
    if line.startswith(b"+ "):
        return line[2:], True
    if line.startswith(b"- "):
        return line[2:], False
    return line, include


def _filelist_rule(
    data: bytes,
    include: bool,
    name: str,
    base: _Base,
    null_separator: bool,
    strict: bool,
    warnings: list[str],
) -> _Rule:
    """``--include-filelist``/``--exclude-filelist``: literal paths, ``+ ``/``- `` lines.

    rdiff-backup sorts the list and walks it alongside the tree; for an entry P that walk
    amounts to: excluded if P or one of its parents is a ``-`` line; otherwise the first line
    sorted at or after P decides: a ``+`` line that is P or below it includes P, anything
    else has no opinion. (So a ``-`` line sorted between a directory and a ``+`` line below
    it hides that ``+`` line's parents, as in rdiff-backup.)
    """
    entries: list[tuple[Index, int]] = []
    excluded: set[Index] = set()
    for line in _split_list(data, null_separator):
        path, line_include = _signed(line, include)
        parts = _components(path)
        if parts[: len(base.components)] != base.components:
            message = (
                f"{name}: the entry {_show(path)!r} is not under the source {_show(base.name)!r}"
            )
            if strict:
                raise UsageError(message)
            warnings.append(message + "; ignored")
            continue
        index = tuple(parts[len(base.components) :])
        entries.append((index, 1 if line_include else 0))
        if not line_include:
            excluded.add(index)
    entries.sort()

    def decide(entry: _Entry) -> Decision | None:
        index = entry.index
        if excluded and any(index[:depth] in excluded for depth in range(len(index) + 1)):
            return Decision.EXCLUDE
        position = bisect_left(entries, (index, 0))
        if position < len(entries):
            line_index, line_include = entries[position]
            if line_include and line_index[: len(index)] == index:
                return Decision.INCLUDE
        return None

    # an --include-filelist with a "- " line can exclude, so it may come last (an
    # --exclude-filelist of "+ " lines only may too): rdiff-backup's redundancy check
    return _Rule(f"filelist {name}", include and not excluded, decide)


def _presence_rule(name_text: str, include: bool) -> _Rule:
    name = os.fsencode(name_text)

    def present(directory: bytes) -> bool:
        try:
            os.lstat(os.path.join(directory, name))
        except OSError:
            return False
        return True

    if include:

        def decide(entry: _Entry) -> Decision | None:
            # a directory by its own contents, anything else by its directory's
            where = entry.fs_path if entry.is_dir else os.path.dirname(entry.fs_path)
            return Decision.INCLUDE if present(where) else None

    else:

        def decide(entry: _Entry) -> Decision | None:
            return Decision.EXCLUDE if entry.is_dir and present(entry.fs_path) else None

    kind = "include" if include else "exclude"
    return _Rule(f"--{kind}-if-present {name_text!r}", include, decide)


def _type_rule(describe: str, test: Callable[[int], bool], include: bool) -> _Rule:
    verdict = Decision.INCLUDE if include else Decision.EXCLUDE

    def decide(entry: _Entry) -> Decision | None:
        return verdict if test(entry.st.st_mode) else None

    return _Rule(describe, include, decide)


def _is_device(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _is_special(mode: int) -> bool:
    return _is_device(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISLNK(mode)


def _size(option: str, value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not an integer") from None
    if size <= 0:
        raise UsageError(f"{option}: the size must be a positive integer, not {value!r}")
    return size


def _size_rule(option: str, value: str) -> _Rule:
    limit = _size(option, value)
    if option == "--max-file-size":

        def decide(entry: _Entry) -> Decision | None:
            st = entry.st
            too_big = stat.S_ISREG(st.st_mode) and st.st_size > limit
            return Decision.EXCLUDE if too_big else None

    else:

        def decide(entry: _Entry) -> Decision | None:
            st = entry.st
            too_small = stat.S_ISREG(st.st_mode) and st.st_size < limit
            return Decision.EXCLUDE if too_small else None

    return _Rule(f"{option} {limit}", False, decide)


def _other_filesystems_rule(root: bytes) -> _Rule:
    try:
        device = os.stat(root).st_dev
    except OSError as error:
        raise UsageError(
            f"--exclude-other-filesystems: cannot stat the source: {error.strerror}"
        ) from None

    def decide(entry: _Entry) -> Decision | None:
        return Decision.EXCLUDE if entry.st.st_dev != device else None

    return _Rule("--exclude-other-filesystems", False, decide)


def _read_list(
    option: str,
    value: str | None,
    stdin: IO[bytes] | None,
    lists: Mapping[str, bytes] | None = None,
) -> tuple[bytes, str]:
    """The bytes of a file list (a file, or standard input for the -stdin forms); ``lists``
    holds lists already read (on another host: see :func:`read_file_lists`)."""
    if lists is not None and value is not None and value in lists:
        return lists[value], value
    if option.endswith("-stdin"):
        if stdin is None:
            raise UsageError(f"{option}: standard input is not available (or already read)")
        try:
            return stdin.read(), "standard input"
        except OSError as error:
            raise UsageError(f"{option}: cannot read standard input: {error}") from None
    if value is None:
        raise UsageError(f"{option} needs a file name")
    try:
        with open(value, "rb") as handle:
            return handle.read(), value
    except OSError as error:
        raise UsageError(
            f"{option}: cannot read the file list: {error.strerror or error}", path=value
        ) from None


def read_file_lists(
    options: Sequence[tuple[str, str | None]], stdin: IO[bytes] | None
) -> tuple[dict[str, bytes], bytes | None]:
    """The file lists the options name, read here, and standard input if a ``-stdin`` option
    reads it: what a selection applied on another host needs (a remote source)."""
    lists: dict[str, bytes] = {}
    stdin_data: bytes | None = None
    for raw_option, value in options:
        option = _normalise(raw_option)
        if "filelist" not in option:
            continue
        if option.endswith("-stdin"):
            if stdin_data is None:
                stdin_data, _ = _read_list(option, None, stdin)
        elif value is not None and value not in lists:
            lists[value], _ = _read_list(option, value, None)
    return lists, stdin_data


# --------------------------------------------------------------------------------------------
# The selection


def _normalise(option: str) -> str:
    option = option.strip()
    return option if option.startswith("--") else "--" + option.lstrip("-")


class Selection:
    """An ordered list of selection functions; the first with an opinion decides."""

    def __init__(self, root: bytes, rules: Sequence[_Rule], warnings: Sequence[str] = ()) -> None:
        self._base = _Base(root)
        self._rules: tuple[_Rule, ...] = tuple(rules)
        #: Messages about ignored file-list entries (only with ``strict=False``).
        self.warnings: tuple[str, ...] = tuple(warnings)

    @property
    def root(self) -> bytes:
        return self._base.fs_root

    @property
    def trivial(self) -> bool:
        """True when no option was given: everything is included."""
        return not self._rules

    @classmethod
    def from_options(
        cls,
        options: Sequence[tuple[str, str | None]],
        *,
        root: bytes | str,
        stdin: IO[bytes] | None = None,
        null_separator: bool = False,
        strict: bool = True,
        lists: Mapping[str, bytes] | None = None,
    ) -> Selection:
        """Build the selection of ``root`` from ``(option, value)`` pairs in command-line order.

        Option names are spelled as on the command line (``"--include"``); ``value`` is None
        for flags. ``("--null-separator", None)`` anywhere in the list (or
        ``null_separator=True``) splits file lists on NUL. ``stdin`` (binary) is read by the
        first ``-stdin`` option. With ``strict`` (the default) a file-list entry outside the
        source is an error; without it, it is ignored with a warning (rdiff-backup's way).
        ``lists``: file lists already read (by name), for a selection built on another host.
        Raises :class:`UsageError` (one line naming the option or file) on any bad option.
        """
        root_bytes = os.fsencode(root)
        base = _Base(root_bytes)
        normalised = [(_normalise(option), value) for option, value in options]
        separator = null_separator or any(opt == "--null-separator" for opt, _ in normalised)
        rules: list[_Rule] = []
        warnings: list[str] = []
        stdin_left = stdin
        for option, value in normalised:
            if option == "--null-separator":
                continue
            if option in _REFUSED:
                raise UsageError(f"{option}: bad selection option (rdiff-backup 2.2.7 refuses it)")
            if option not in SELECTION_OPTIONS and option not in SELECTION_FLAGS:
                raise UsageError(f"{option}: not a selection option")
            if option in SELECTION_OPTIONS and value is None:
                raise UsageError(f"{option} needs a value")
            include = option.startswith("--include")
            if option in ("--include", "--exclude"):
                assert value is not None
                rules.append(_glob_rule(os.fsencode(value), include, base, "command-line"))
            elif option in ("--include-regexp", "--exclude-regexp"):
                assert value is not None
                rules.append(_regexp_rule(value, include))
            elif option.startswith(("--include-filelist", "--exclude-filelist")):
                data, name = _read_list(option, value, stdin_left, lists)
                if option.endswith("-stdin"):
                    stdin_left = None
                rules.append(_filelist_rule(data, include, name, base, separator, strict, warnings))
            elif "-globbing-filelist" in option:
                data, name = _read_list(option, value, stdin_left, lists)
                if option.endswith("-stdin"):
                    stdin_left = None
                for line in _split_list(data, separator):
                    glob, line_include = _signed(line, include)
                    try:
                        rules.append(_glob_rule(glob, line_include, base, f"{name}:"))
                    except UsageError as error:
                        raise UsageError(f"{option} {name}: {error}") from None
            elif option in ("--include-if-present", "--exclude-if-present"):
                assert value is not None
                rules.append(_presence_rule(value, include))
            elif option in ("--max-file-size", "--min-file-size"):
                assert value is not None
                rules.append(_size_rule(option, value))
            elif option == "--exclude-device-files":
                rules.append(_type_rule(option, _is_device, False))
            elif option == "--exclude-fifos":
                rules.append(_type_rule(option, stat.S_ISFIFO, False))
            elif option == "--exclude-sockets":
                rules.append(_type_rule(option, stat.S_ISSOCK, False))
            elif option in ("--exclude-symbolic-links", "--include-symbolic-links"):
                rules.append(_type_rule(option, stat.S_ISLNK, include))
            elif option in ("--exclude-special-files", "--include-special-files"):
                rules.append(_type_rule(option, _is_special, include))
            elif option == "--exclude-other-filesystems":
                rules.append(_other_filesystems_rule(root_bytes))
            else:  # pragma: no cover - every option above is handled
                raise UsageError(f"{option}: not a selection option")
        if rules and rules[-1].include:
            raise UsageError(
                f"the last selection option ({rules[-1].describe}) only includes files; "
                "everything is included by default, so it is redundant"
            )
        return cls(root_bytes, rules, warnings)

    # ---- asking about one entry

    def _decide(self, index: Index, st: os.stat_result, is_dir: bool) -> Decision:
        if index == (_DATA_DIR,):
            return Decision.EXCLUDE
        if not self._rules:
            return Decision.INCLUDE
        base = self._base
        entry = _Entry(
            index,
            base.full(index),
            os.path.join(base.fs_root, *index) if index else base.fs_root,
            st,
            is_dir,
        )
        scanned = False
        for rule in self._rules:
            verdict = rule.decide(entry)
            if verdict is None:
                continue
            if verdict is Decision.SCAN:
                # rdiff-backup keeps a scanned directory that nothing below is included from
                # when the later options (or the default) include it: that is an inclusion
                scanned = True
                continue
            if scanned and verdict is not Decision.INCLUDE:
                return Decision.SCAN
            return verdict
        return Decision.INCLUDE

    @overload
    def decide(self, rel_path: bytes, st: os.stat_result, *, is_dir: bool) -> Decision: ...

    @overload
    def decide(self, index: Index, path: bytes, st: os.stat_result) -> bool | None: ...

    def decide(self, *args: Any, **kwargs: Any) -> Decision | bool | None:
        """Decide one entry below the root (the root itself is always in).

        ``decide(rel_path, st, is_dir=...)``: ``rel_path`` is the path relative to the
        source root (``b"a/b"``, never empty); answers a :class:`Decision`.

        ``decide(index, path, st)``: the walk's form (rdb_mirror.source.Selection); ``index``
        is the tuple of components, ``path`` is ignored (the selection joins the root it was
        built with), directories are recognised from ``st``; answers True (include), False
        (exclude) or None (a directory included only if something below it is).

        Call it in walk order (a parent before its contents, siblings sorted), never for
        anything below an excluded directory.
        """
        if args and isinstance(args[0], tuple):
            index, _path, st = _walk_args(*args, **kwargs)
            verdict = self._decide(index, st, stat.S_ISDIR(st.st_mode))
            if verdict is Decision.SCAN:
                return None
            return verdict is Decision.INCLUDE
        rel_path, st, is_dir = _path_args(*args, **kwargs)
        return self._decide(tuple(_components(rel_path)), st, is_dir)

    def walk(self) -> list[bytes]:
        """The relative paths this selection backs up, in walk order (root not listed).

        A reference walk (lstat, no symlink following, ``rdiff-backup-data`` skipped at the
        top), used by tests; unreadable directories are treated as empty.
        """
        found: list[bytes] = []

        def rec(index: Index, held: list[bytes]) -> None:
            directory = os.path.join(self.root, *index) if index else self.root
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                return
            for name in names:
                child = (*index, name)
                try:
                    st = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                verdict = self._decide(child, st, is_dir)
                rel = b"/".join(child)
                if verdict is Decision.INCLUDE:
                    found.extend(held)
                    held.clear()
                    found.append(rel)
                    if is_dir:
                        rec(child, held)
                elif verdict is Decision.SCAN and is_dir:
                    held.append(rel)
                    rec(child, held)
                    if held and held[-1] == rel:
                        held.pop()

        rec((), [])
        return found


def _walk_args(
    index: Index, path: bytes, st: os.stat_result
) -> tuple[Index, bytes, os.stat_result]:
    return index, path, st


def _path_args(
    rel_path: bytes, st: os.stat_result, *, is_dir: bool
) -> tuple[bytes, os.stat_result, bool]:
    return rel_path, st, is_dir


# --------------------------------------------------------------------------------------------
# argv


def extract_selection_args(
    argv: Sequence[str],
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Split ``argv`` into the selection options (in order) and everything else.

    Accepts ``--opt VALUE`` and ``--opt=VALUE``; a value is taken as is, even if it starts
    with ``-``. Stops at ``--`` (it and what follows are left in the remaining argv).
    Raises :class:`UsageError` for a value-taking option at the end of ``argv`` or a flag
    given a value.
    """
    options: list[tuple[str, str | None]] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rest.extend(argv[i - 1 :])
            break
        name, equals, inline = arg.partition("=")
        if name in SELECTION_OPTIONS:
            if equals:
                options.append((name, inline))
            elif i < len(argv):
                options.append((name, argv[i]))
                i += 1
            else:
                raise UsageError(f"{name} needs a value")
        elif name in SELECTION_FLAGS:
            if equals:
                raise UsageError(f"{name} takes no value")
            options.append((name, None))
        else:
            rest.append(arg)
    return options, rest
