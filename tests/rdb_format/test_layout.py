"""Repository names and the "is this a repository" check."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdb_format import layout
from rdb_format.errors import RepositoryNotFound
from rdb_format.exitcodes import ExitCode
from rdb_format.layout import Layout, is_repository, open_repository, split_repository_path


def make_repo(root: Path) -> Path:
    (root / "rdiff-backup-data" / "increments").mkdir(parents=True)
    return root


def test_names() -> None:
    assert layout.DATA_DIR == "rdiff-backup-data"
    assert layout.INCREMENTS == "increments"
    assert layout.MIRROR_METADATA == "mirror_metadata"
    assert layout.EXTENDED_ATTRIBUTES == "extended_attributes"
    assert layout.ACCESS_CONTROL_LISTS == "access_control_lists"
    assert layout.SESSION_STATISTICS == "session_statistics"
    assert layout.FILE_STATISTICS == "file_statistics"
    assert layout.ERROR_LOG == "error_log"
    assert layout.BACKUP_LOG == "backup.log"
    assert layout.CURRENT_MIRROR == "current_mirror"
    assert layout.CHARS_TO_QUOTE == "chars_to_quote"
    assert layout.SPECIAL_ESCAPES == "special_escapes"
    assert layout.LONG_FILENAME_DATA == "long_filename_data"


def test_paths(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    data = tmp_path / "rdiff-backup-data"
    assert lay.data_dir == data
    assert lay.increments_dir == data / "increments"
    assert lay.long_filename_dir == data / "long_filename_data"
    assert lay.next_free_file == data / "long_filename_data" / "next_free"
    assert lay.chars_to_quote_file == data / "chars_to_quote"
    assert lay.special_escapes_file == data / "special_escapes"
    assert lay.backup_log == data / "backup.log"
    assert lay.rdiff_backup_lock == data / "lock.yml"
    assert lay.writer_lock.parent == data
    assert lay.data_file(b"error_log.x.data") == data / "error_log.x.data"


def test_is_repository(tmp_path: Path) -> None:
    assert not is_repository(tmp_path)
    make_repo(tmp_path)
    assert is_repository(tmp_path)
    assert open_repository(tmp_path) == Layout(tmp_path)


@pytest.mark.parametrize("case", ["missing", "file", "plain", "inside"])
def test_not_a_repository(tmp_path: Path, case: str) -> None:
    target = tmp_path / "target"
    if case == "file":
        target.write_bytes(b"")
    elif case == "plain":
        target.mkdir()
    elif case == "inside":
        make_repo(tmp_path)
        target.mkdir()
    with pytest.raises(RepositoryNotFound) as info:
        open_repository(target)
    message = str(info.value)
    assert message.startswith(f"{target}: ")
    assert "\n" not in message
    assert "give" in message  # always says what to do next
    assert info.value.exit_code == ExitCode.NOT_A_REPOSITORY


def test_split_repository_path(tmp_path: Path) -> None:
    make_repo(tmp_path)
    assert split_repository_path(tmp_path) == (Layout(tmp_path), Path())
    lay, sub = split_repository_path(tmp_path / "a" / "b")
    assert lay == Layout(tmp_path)
    assert sub == Path("a/b")
    with pytest.raises(RepositoryNotFound, match="inside rdiff-backup-data"):
        split_repository_path(tmp_path / "rdiff-backup-data" / "increments")


def test_split_outside(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound, match="not in a backup repository"):
        split_repository_path(tmp_path / "nothing")
