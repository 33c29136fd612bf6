"""Many small files read, written and copied per C call, with the GIL released (see
:mod:`rdb_fastio.batch_io`)."""

from rdb_fastio.batch_io import (
    Copied,
    CopyPlan,
    CopyStatus,
    FileCopy,
    NewFile,
    PlanCopied,
    SmallRead,
    copy_files,
    copy_files_between,
    read_small_files,
    write_new_files,
)
from rdb_fastio.scan import ScanAhead, ScanEntry, list_names, scan_ahead_threads, scan_directory

__all__ = [
    "Copied",
    "CopyPlan",
    "CopyStatus",
    "FileCopy",
    "NewFile",
    "PlanCopied",
    "ScanAhead",
    "ScanEntry",
    "SmallRead",
    "copy_files",
    "copy_files_between",
    "list_names",
    "read_small_files",
    "scan_ahead_threads",
    "scan_directory",
    "write_new_files",
]
