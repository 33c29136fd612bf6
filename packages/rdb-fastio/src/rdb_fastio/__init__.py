"""Many small files read, written and copied per C call, with the GIL released (see
:mod:`rdb_fastio.batch_io`)."""

from rdb_fastio.batch_io import (
    Copied,
    CopyStatus,
    FileCopy,
    NewFile,
    SmallRead,
    copy_files,
    read_small_files,
    write_new_files,
)

__all__ = [
    "Copied",
    "CopyStatus",
    "FileCopy",
    "NewFile",
    "SmallRead",
    "copy_files",
    "read_small_files",
    "write_new_files",
]
