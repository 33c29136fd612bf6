"""rdb-mirror: one rdiff-backup 2.2 compatible backup session (library core, no CLI imports).

``backup(src, dest, BackupOptions(...), progress)`` makes or continues a repository;
``regress(dest)`` rolls back an interrupted session. See docs/rdb-mirror.md.
"""

from rdb_mirror.regress import RegressResult, regress
from rdb_mirror.session import BackupOptions, BackupResult, backup
from rdb_mirror.source import IncludeAll, Selection

__version__ = "0.1.0"

__all__ = [
    "BackupOptions",
    "BackupResult",
    "IncludeAll",
    "RegressResult",
    "Selection",
    "backup",
    "regress",
]
