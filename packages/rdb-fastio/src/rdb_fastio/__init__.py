"""Many small files read, written and copied per C call, with the GIL released (see
:mod:`rdb_fastio.batch_io`)."""

from rdb_fastio.batch_io import (
    Copied,
    CopyStatus,
    FileCopy,
    NewFile,
    SmallRead,
    copy_files,
    copy_files_between,
    read_small_files,
    write_new_files,
)
from rdb_fastio.scan import ScanEntry, scan_directory

__all__ = [
    "Copied",
    "CopyStatus",
    "FileCopy",
    "NewFile",
    "ScanEntry",
    "SmallRead",
    "copy_files",
    "copy_files_between",
    "read_small_files",
    "scan_directory",
    "write_new_files",
]
