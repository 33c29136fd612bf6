"""Names and paths inside a repository (rdiff-backup 2.2 layout)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rdb_format.atomic import TEMP_PREFIX
from rdb_format.errors import RepositoryNotFound

DATA_DIR = "rdiff-backup-data"
INCREMENTS = "increments"  # the increment tree, and the root's `increments.T.dir` markers
LONG_FILENAME_DATA = "long_filename_data"
NEXT_FREE = "next_free"  # inside long_filename_data
CHARS_TO_QUOTE = "chars_to_quote"
SPECIAL_ESCAPES = "special_escapes"
BACKUP_LOG = "backup.log"
RESTORE_LOG = "restore.log"
REGRESS_LOG = "regress.log"
REMOVE_LOG = "remove.log"
RDIFF_BACKUP_LOCK = "lock.yml"  # rdiff-backup API 201's flock file
WRITER_LOCK = "rdb-writer.lock"  # ours: host/PID lock; rdiff-backup ignores unknown names

# Bases of the increment-style names directly in rdiff-backup-data (`<base>.<T>.<type>[.gz]`).
CURRENT_MIRROR = "current_mirror"
MIRROR_METADATA = "mirror_metadata"
EXTENDED_ATTRIBUTES = "extended_attributes"
ACCESS_CONTROL_LISTS = "access_control_lists"
WIN_ACCESS_CONTROL_LISTS = "win_access_control_lists"
SESSION_STATISTICS = "session_statistics"
FILE_STATISTICS = "file_statistics"
ERROR_LOG = "error_log"

TEMP_FILE_PREFIX = TEMP_PREFIX


@dataclass(frozen=True)
class Layout:
    """The fixed paths of one repository rooted at ``root`` (the mirror's top directory)."""

    root: Path

    @cached_property  # asked for per file by the writers
    def data_dir(self) -> Path:
        return self.root / DATA_DIR

    @cached_property  # asked for per file by the writers
    def increments_dir(self) -> Path:
        return self.data_dir / INCREMENTS

    @cached_property  # asked for per file by the writers
    def long_filename_dir(self) -> Path:
        return self.data_dir / LONG_FILENAME_DATA

    @property
    def next_free_file(self) -> Path:
        return self.long_filename_dir / NEXT_FREE

    @property
    def chars_to_quote_file(self) -> Path:
        return self.data_dir / CHARS_TO_QUOTE

    @property
    def special_escapes_file(self) -> Path:
        return self.data_dir / SPECIAL_ESCAPES

    @property
    def backup_log(self) -> Path:
        return self.data_dir / BACKUP_LOG

    @property
    def rdiff_backup_lock(self) -> Path:
        return self.data_dir / RDIFF_BACKUP_LOCK

    @property
    def writer_lock(self) -> Path:
        return self.data_dir / WRITER_LOCK

    def data_file(self, quoted_name: bytes | str) -> Path:
        """A file directly in rdiff-backup-data, by its on-disk (already quoted) name."""
        return self.data_dir / os.fsdecode(quoted_name)


def is_repository(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding an ``rdiff-backup-data`` directory."""
    return (Path(path) / DATA_DIR).is_dir()


def open_repository(path: str | os.PathLike[str]) -> Layout:
    """The layout of the repository at ``path``; RepositoryNotFound with a next step if not."""
    root = Path(path)
    if not root.exists():
        raise RepositoryNotFound(
            "does not exist; give the directory that was the backup destination", path=root
        )
    if not root.is_dir():
        raise RepositoryNotFound(
            "is not a directory; give the directory that was the backup destination", path=root
        )
    if not (root / DATA_DIR).is_dir():
        for parent in root.resolve().parents:
            if (parent / DATA_DIR).is_dir():
                raise RepositoryNotFound(
                    f"is inside the repository {os.fsdecode(parent)!r}, not its top; "
                    "give the repository and select the sub-path separately",
                    path=root,
                )
        raise RepositoryNotFound(
            f"is not a backup repository (no {DATA_DIR} directory); "
            "give the backup destination directory, or make a first backup into it",
            path=root,
        )
    return Layout(root)


def split_repository_path(path: str | os.PathLike[str]) -> tuple[Layout, Path]:
    """Split ``REPO/sub/path`` into the repository and the relative sub-path (``.`` for none).

    The sub-path need not exist in the mirror (it may only exist in older sessions).
    """
    given = Path(os.path.normpath(Path(path).absolute()))
    for candidate in (given, *given.parents):
        if (candidate / DATA_DIR).is_dir():
            relative = given.relative_to(candidate)
            if relative.parts and relative.parts[0] == DATA_DIR:
                raise RepositoryNotFound(
                    f"is inside {DATA_DIR}; give the repository or a path in its mirror",
                    path=path,
                )
            return Layout(candidate), relative
    raise RepositoryNotFound(
        f"is not in a backup repository (no {DATA_DIR} directory above it); "
        "give the backup destination directory",
        path=path,
    )
