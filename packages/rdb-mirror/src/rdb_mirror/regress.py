"""Roll an interrupted session back (format reference §5.3), as rdiff-backup's regress does.

Two ``current_mirror`` markers mean the session F (the newer) did not finish; R (the older)
is the last complete one. Regress:

1. makes sure the metadata of R is a snapshot (rebuilding it from F's snapshot and R's diff
   if F had already converted it), and deletes every file of time F in rdiff-backup-data
   except F's marker;
2. walks the metadata of R against the mirror: entries R does not know are deleted; regular
   files that have an increment of time R (written by F before it replaced the mirror copy)
   are rebuilt from it unless the mirror copy still has R's size and SHA1; other entries
   whose type, target or device differ are recreated from their record; attributes, EAs
   and ACLs are reset to R's; then, after a sync (the rebuilt files on disk first), the
   increments of time R are deleted;
3. syncs, and removes F's marker: the commit.

Killed at any point, it can simply be run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rdb_clikit.protocol import NullProgress, Progress
from rdb_format.atomic import is_temp_name, remove_durable, sync_filesystems
from rdb_format.eas_acls import iter_acl_records, iter_ea_records
from rdb_format.errors import CorruptRepository
from rdb_format.increments import parse_increment_name
from rdb_format.layout import (
    ACCESS_CONTROL_LISTS,
    CURRENT_MIRROR,
    DATA_DIR,
    EXTENDED_ATTRIBUTES,
    INCREMENTS,
    MIRROR_METADATA,
    REGRESS_LOG,
    Layout,
    open_repository,
)
from rdb_format.locking import WriterLock
from rdb_format.metadata import Record, path_key, write_metadata_file
from rdb_format.metadata_diff import find_session_file, records_at
from rdb_format.repository import RepositoryState, read_state, remove_marker
from rdb_format.timestamps import format_timestring
from rdb_increment.rebuild import IncrementFile, iter_rebuild
from rdb_mirror import testhooks
from rdb_mirror.datafiles import BackupLog, temp_path
from rdb_mirror.fsmeta import (
    EAs,
    Index,
    apply_acl,
    apply_attributes,
    apply_eas,
    file_type,
    probe,
    read_acl,
    read_eas,
)

__all__ = ["RegressResult", "regress", "regress_locked"]


@dataclass
class RegressResult:
    """What a regress did."""

    failed_time: int
    restored_time: int
    rebuilt: int = 0
    recreated: int = 0
    deleted: int = 0
    increments_removed: int = 0
    warnings: list[str] = field(default_factory=list)


def regress(
    destination: str | os.PathLike[str], progress: Progress | None = None, *, force: bool = False
) -> RegressResult | None:
    """Regress the repository if its last session did not finish; None if nothing to do."""
    layout = open_repository(destination)
    report = progress or NullProgress()
    try:
        with WriterLock(layout, command="rdb-mirror --regress", force=force):
            state = read_state(layout, allow_duplicate_timestamps=True)
            if len(state.markers) > 2:
                state.check_finished()
            if not state.unfinished:
                return None
            return regress_locked(layout, state, report)
    finally:
        report.finish()


def _sha1(path: Path) -> str | None:
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _open_dir(path: bytes) -> None:
    """Give the owner read, write and search permission on a mirror directory that denies
    it (0555...: as a user, not root, nothing in it could be rebuilt or removed otherwise);
    :meth:`_Regress.fix_attributes` sets R's mode back on the directories R has."""
    with contextlib.suppress(OSError):  # gone, or not ours: the work in it says what failed
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & stat.S_IRWXU != stat.S_IRWXU:
            os.chmod(path, mode | stat.S_IRWXU)


def _remove(path: bytes) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for directory, _, _ in os.walk(path):  # top-down: each opened before it is listed
            _open_dir(directory)
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class _Regress:
    def __init__(self, layout: Layout, state: RepositoryState, report: Progress) -> None:
        self.layout = layout
        self.state = state
        self.quoting = state.quoting
        self.report = report
        restored, failed = state.markers[0], state.markers[1]
        self.r = restored.time
        self.f = failed.time
        self.failed_marker = failed
        self.result = RegressResult(self.f, self.r)
        caps = probe(os.fsencode(layout.root))
        self.caps = caps
        self.increments: dict[Index, list[IncrementFile]] = {}
        self.long_increments: dict[int, list[IncrementFile]] = {}
        self.root_increments: list[Path] = []
        self.link_groups: dict[tuple[int, int], bytes] = {}

    def warn(self, message: str) -> None:
        self.result.warnings.append(message)
        self.report.warning(message)

    def mirror(self, index: Index, record: Record | None = None) -> bytes:
        if record is not None and record.alternate_mirror_name is not None:
            return os.fsencode(self.layout.long_filename_dir / str(record.alternate_mirror_name))
        parts = self.quoting.quote_path(index)
        return (
            os.path.join(os.fsencode(self.layout.root), *parts)
            if parts
            else os.fsencode(self.layout.root)
        )

    # ---- step 1: rdiff-backup-data ------------------------------------------------------

    def fix_data_dir(self) -> None:
        data_dir = self.layout.data_dir
        at_r = [e for e in self.state.metadata if e.name.time == self.r]
        snapshots = [e for e in at_r if e.name.kind == "snapshot"]
        diffs = [e for e in at_r if e.name.kind == "diff"]
        if snapshots and diffs:
            for entry in diffs:
                remove_durable(entry.path, missing_ok=True)
        elif diffs:
            # F converted R's snapshot already: rebuild it from F's snapshot and R's diff.
            plain = diffs[0].path.name
            if plain.endswith(".gz"):
                plain = plain[:-3]
            target = diffs[0].path.with_name(plain[: -len("diff")] + "snapshot")
            for other in at_r[1:]:
                remove_durable(other.path, missing_ok=True)
            write_metadata_file(
                target, records_at(data_dir, self.r, quoting=self.quoting), compress=True
            )
            for entry in diffs:
                remove_durable(entry.path, missing_ok=True)
        elif not snapshots:
            raise CorruptRepository(
                f"no metadata for the session {format_timestring(self.r)}; cannot regress",
                path=data_dir,
            )
        for entry in self.state.entries:
            name = entry.name
            if name.time != self.f:
                continue
            if name.base == CURRENT_MIRROR.encode() and name.kind == "data":
                continue
            if name.base == INCREMENTS.encode() and name.kind == "dir":
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
        for raw in os.listdir(os.fsencode(data_dir)):
            if is_temp_name(raw):
                _remove(os.path.join(os.fsencode(data_dir), raw))

    # ---- step 2: the tree ----------------------------------------------------------------

    def collect_increments(self) -> None:
        """Every increment of time R (all written by the failed session) and temp files."""
        base = os.fsencode(self.layout.increments_dir)
        for directory, dirs, files in os.walk(base):
            rel = os.path.relpath(directory, base)
            parts = () if rel == b"." else tuple(rel.split(b"/"))
            parent = self.quoting.unquote_path(parts, path=directory)
            for name in [*files, *dirs]:
                full = os.path.join(directory, name)
                if is_temp_name(name):
                    _remove(full)
                    continue
                parsed = parse_increment_name(self.quoting.unquote(name, path=directory))
                if parsed is None or parsed.time != self.r or parsed.kind == "data":
                    continue
                if os.path.isdir(full) and not os.path.islink(full):
                    continue
                inc = IncrementFile(parsed, Path(os.fsdecode(full)))
                self.increments.setdefault((*parent, parsed.base), []).append(inc)
        long_dir = os.fsencode(self.layout.long_filename_dir)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(long_dir):
                # quoted as every name in the repository (the time string's T and Z too)
                parsed = parse_increment_name(self.quoting.unquote(name, path=long_dir))
                if parsed is None or parsed.time != self.r or not parsed.base.isdigit():
                    continue
                inc = IncrementFile(parsed, Path(os.fsdecode(os.path.join(long_dir, name))))
                self.long_increments.setdefault(int(parsed.base), []).append(inc)
        for entry in self.state.entries:
            parsed_name = entry.name
            if (
                parsed_name.base == INCREMENTS.encode()
                and parsed_name.kind == "dir"
                and parsed_name.time == self.r
            ):
                self.root_increments.append(entry.path)

    def increment_of(self, index: Index, record: Record) -> IncrementFile | None:
        found = list(self.increments.get(index, []))
        number = record.alternate_mirror_name or record.alternate_increment_name
        if number is not None:
            found += self.long_increments.get(number, [])
        return found[0] if found else None

    def delete_unknown(self, known: set[Index]) -> None:
        root = os.fsencode(self.layout.root)

        def walk(index: Index, path: bytes) -> None:
            _open_dir(path)
            try:
                names = os.listdir(path)
            except OSError:
                return
            for raw in names:
                if not index and raw == DATA_DIR.encode():
                    continue
                full = os.path.join(path, raw)
                if is_temp_name(raw):
                    _remove(full)
                    continue
                try:
                    name = self.quoting.unquote(raw, path=path)
                except CorruptRepository:
                    continue
                child = (*index, name)
                if child not in known:
                    _remove(full)
                    self.result.deleted += 1
                elif os.path.isdir(full) and not os.path.islink(full):
                    walk(child, full)

        walk((), root)

    def delete_unknown_long(self, known: set[int]) -> None:
        """Mirror data in ``long_filename_data`` (``N``, no time suffix) that no record of R
        names: a long-named file the failed session added."""
        long_dir = os.fsencode(self.layout.long_filename_dir)
        try:
            names = os.listdir(long_dir)
        except FileNotFoundError:
            return
        for raw in names:
            if is_temp_name(raw) or (raw.isdigit() and int(raw) not in known):
                _remove(os.path.join(long_dir, raw))
                self.result.deleted += not is_temp_name(raw)

    def restore(
        self,
        records: Iterator[Record],
        eas: dict[Index, EAs],
        acls: dict[Index, tuple[object, ...]],
        sha1s: dict[tuple[int, int], str],
    ) -> None:
        dirs: list[tuple[bytes, Record, Index]] = []
        for record in records:
            index = path_key(record.path)
            path = self.mirror(index, record)
            try:
                self.restore_one(index, path, record, sha1s)
                if record.type == "dir":
                    dirs.append((path, record, index))
                else:
                    self.fix_attributes(index, path, record, eas, acls)
            except (OSError, CorruptRepository) as error:
                self.warn(f"{os.fsdecode(path)}: cannot regress: {error}")
            self.report.advance(1)
        for path, record, index in reversed(dirs):
            try:
                self.fix_attributes(index, path, record, eas, acls)
            except OSError as error:
                self.warn(f"{os.fsdecode(path)}: cannot regress attributes: {error.strerror}")

    def restore_one(
        self, index: Index, path: bytes, record: Record, sha1s: dict[tuple[int, int], str]
    ) -> None:
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        kind = file_type(st.st_mode) if st is not None else None
        if record.type == "dir":
            if kind != "dir":
                if st is not None:
                    _remove(path)
                os.mkdir(path, 0o700)
                self.result.recreated += 1
            return
        if record.type == "reg":
            self.restore_regular(index, path, record, st, kind, sha1s)
            if record.has_hard_link_triple:
                self.relink(path, record)
            return
        same = kind == record.type
        if same and record.type == "sym":
            same = os.readlink(path) == record.sym_data
        if same and record.type == "dev" and st is not None and record.device_num is not None:
            letter = "c" if stat.S_ISCHR(st.st_mode) else "b"
            same = (letter, os.major(st.st_rdev), os.minor(st.st_rdev)) == record.device_num
        if same:
            return
        if st is not None:
            _remove(path)
        temp = os.fsencode(temp_path(Path(os.fsdecode(os.path.dirname(path)))))
        if record.type == "sym":
            assert record.sym_data is not None
            os.symlink(record.sym_data, temp)
        elif record.type == "fifo":
            os.mkfifo(temp, 0o600)
        else:
            mode = stat.S_IFSOCK
            device = 0
            if record.type == "dev" and record.device_num is not None:
                letter, major, minor = record.device_num
                mode = stat.S_IFCHR if letter == "c" else stat.S_IFBLK
                device = os.makedev(major, minor)
            try:
                os.mknod(temp, mode | 0o600, device)
            except OSError:
                with open(temp, "xb"):
                    pass
        os.replace(temp, path)
        self.result.recreated += 1

    def relink(self, path: bytes, record: Record) -> None:
        """Hard links of the same group at R share one inode in the mirror again."""
        assert record.device_loc is not None and record.inode is not None
        key = (record.device_loc, record.inode)
        first = self.link_groups.get(key)
        if first is None:
            self.link_groups[key] = path
            return
        try:
            if os.lstat(first).st_ino == os.lstat(path).st_ino:
                return
        except FileNotFoundError:
            pass
        temp = os.fsencode(temp_path(Path(os.fsdecode(os.path.dirname(path)))))
        os.link(first, temp)
        os.replace(temp, path)

    def restore_regular(
        self,
        index: Index,
        path: bytes,
        record: Record,
        st: os.stat_result | None,
        kind: str | None,
        sha1s: dict[tuple[int, int], str],
    ) -> None:
        wanted = record.sha1_digest
        if wanted is None and record.has_hard_link_triple:
            assert record.device_loc is not None and record.inode is not None
            wanted = sha1s.get((record.device_loc, record.inode))
        inc = self.increment_of(index, record)
        if kind == "reg" and st is not None and st.st_size == record.size:
            if inc is None:
                return  # never replaced without an increment first
            if wanted is not None and _sha1(Path(os.fsdecode(path))) == wanted:
                return  # the increment was written, the mirror not yet replaced
        if inc is None:
            if kind != "reg":
                self.warn(f"{os.fsdecode(path)}: no increment to rebuild it from; left as is")
            return
        mirror = Path(os.fsdecode(path))
        if inc.kind == "diff":
            if kind != "reg":
                self.warn(f"{os.fsdecode(path)}: a diff increment but no mirror copy")
                return
            pieces = iter_rebuild(mirror, [inc], tmpdir=self.layout.data_dir)
        elif inc.kind == "snapshot":
            pieces = iter_rebuild(inc, [])
        else:
            return
        temp = temp_path(mirror.parent)
        try:
            digest = hashlib.sha1()
            with open(temp, "xb") as out:
                for piece in pieces:
                    digest.update(piece)
                    out.write(piece)
            if st is not None and kind == "dir":
                _remove(path)
            os.replace(temp, mirror)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        if wanted is not None and digest.hexdigest() != wanted:
            self.warn(f"{os.fsdecode(path)}: rebuilt content does not match its SHA1")
        self.result.rebuilt += 1

    def fix_attributes(
        self,
        index: Index,
        path: bytes,
        record: Record,
        eas: dict[Index, EAs],
        acls: dict[Index, tuple[object, ...]],
    ) -> None:
        apply_attributes(path, record, ownership=self.caps.ownership)
        if record.type == "sym":
            return
        if self.caps.eas:
            wanted = eas.get(index, ())
            if read_eas(path) != wanted:
                apply_eas(path, wanted)
        if self.caps.acls:
            entries = acls.get(index, ())
            if tuple(read_acl(path, record.type == "dir")) != entries:
                apply_acl(path, entries, record.permissions or 0, record.type == "dir")  # type: ignore[arg-type]

    def remove_increments(self) -> None:
        for incs in [*self.increments.values(), *self.long_increments.values()]:
            for inc in incs:
                with contextlib.suppress(FileNotFoundError):
                    inc.path.unlink()
                    self.result.increments_removed += 1
        for path in self.root_increments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                self.result.increments_removed += 1

    def run(self) -> RegressResult:
        self.report.start("regress", None)
        self.fix_data_dir()
        self.collect_increments()
        data_dir = self.layout.data_dir
        known: set[Index] = set()
        sha1s: dict[tuple[int, int], str] = {}
        long_known: set[int] = set()
        for record in records_at(data_dir, self.r, quoting=self.quoting):
            known.add(path_key(record.path))
            if record.alternate_mirror_name is not None:
                long_known.add(record.alternate_mirror_name)
            if record.has_hard_link_triple and record.sha1_digest is not None:
                assert record.device_loc is not None and record.inode is not None
                sha1s[(record.device_loc, record.inode)] = record.sha1_digest
        eas: dict[Index, EAs] = {}
        acls: dict[Index, tuple[object, ...]] = {}
        ea_path = find_session_file(
            data_dir, EXTENDED_ATTRIBUTES, self.r, kinds=("snapshot",), quoting=self.quoting
        )
        if ea_path is not None:
            for ea in iter_ea_records(ea_path):
                eas[path_key(ea.path)] = ea.attributes
        acl_path = find_session_file(
            data_dir, ACCESS_CONTROL_LISTS, self.r, kinds=("snapshot",), quoting=self.quoting
        )
        if acl_path is not None:
            for acl in iter_acl_records(acl_path):
                acls[path_key(acl.path)] = acl.entries
        self.delete_unknown(known)
        self.delete_unknown_long(long_known)
        self.restore(records_at(data_dir, self.r, quoting=self.quoting), eas, acls, sha1s)
        # the rebuilt mirror files on disk before the increments they came from go (power loss)
        sync_filesystems(self.layout.root, data_dir)
        self.remove_increments()
        sync_filesystems(self.layout.root, data_dir)
        testhooks.point("regress-walked")
        remove_marker(self.failed_marker)
        BackupLog(data_dir / REGRESS_LOG).write(
            f"regressed the unfinished session {format_timestring(self.f)} back to "
            f"{format_timestring(self.r)}: {self.result.rebuilt} rebuilt, "
            f"{self.result.recreated} recreated, {self.result.deleted} deleted, "
            f"{self.result.increments_removed} increments removed"
        )
        return self.result


def regress_locked(layout: Layout, state: RepositoryState, progress: Progress) -> RegressResult:
    """Regress with the writer lock already held; ``state`` must show two markers."""
    if not state.unfinished:
        raise ValueError("nothing to regress")
    return _Regress(layout, state, progress).run()


_ = MIRROR_METADATA
