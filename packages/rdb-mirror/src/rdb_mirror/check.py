"""``rdb-mirror --check DEST``: does the mirror match the current session's metadata?

Checks that the last session finished (one marker), then that every entry of the current
metadata exists in the mirror with its type, and every regular file with its size and SHA1
(symlink targets too). Read-only; no lock is taken beyond reading.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.layout import open_repository
from rdb_format.metadata import path_key
from rdb_format.metadata_diff import records_at
from rdb_format.repository import read_state
from rdb_mirror.fsmeta import file_type

__all__ = ["CheckResult", "check"]


@dataclass
class CheckResult:
    time: int
    entries: int = 0
    problems: list[str] = field(default_factory=list)


def _sha1(path: bytes) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(destination: str | os.PathLike[str], progress: Progress | None = None) -> CheckResult:
    """Compare the mirror with the current metadata; problems are listed, not raised."""
    report = progress or NullProgress()
    layout = open_repository(destination)
    state = read_state(layout)
    state.check_finished()
    current = state.current_time
    result = CheckResult(current or 0)
    if current is None:
        return result
    root = os.fsencode(layout.root)
    report.start("check", None)
    sha1s: dict[tuple[int, int], str] = {}
    try:
        for record in records_at(layout.data_dir, current, quoting=state.quoting):
            result.entries += 1
            report.advance(1)
            index = state.quoting.quote_path(path_key(record.path))
            if record.alternate_mirror_name is not None:
                path = os.fsencode(layout.long_filename_dir / str(record.alternate_mirror_name))
            else:
                path = os.path.join(root, *index) if index else root
            shown = record.path.decode("utf-8", "backslashreplace")
            try:
                st = os.lstat(path)
            except OSError as error:
                result.problems.append(f"{shown}: missing from the mirror ({error.strerror})")
                continue
            kind = file_type(st.st_mode)
            if kind != record.type and not (
                record.type in ("dev", "sock", "fifo") and stat.S_ISREG(st.st_mode)
            ):
                result.problems.append(f"{shown}: is a {kind} in the mirror, not a {record.type}")
                continue
            if record.type == "sym" and os.readlink(path) != record.sym_data:
                result.problems.append(f"{shown}: symlink target differs")
            if record.type != "reg":
                continue
            if st.st_size != record.size:
                result.problems.append(f"{shown}: size {st.st_size}, metadata says {record.size}")
                continue
            wanted = record.sha1_digest
            if record.has_hard_link_triple:
                assert record.device_loc is not None and record.inode is not None
                key = (record.device_loc, record.inode)
                if wanted is not None:
                    sha1s[key] = wanted
                else:
                    wanted = sha1s.get(key)
            if wanted is not None and _sha1(path) != wanted:
                result.problems.append(f"{shown}: content differs from its SHA1")
    finally:
        report.finish()
    return result
