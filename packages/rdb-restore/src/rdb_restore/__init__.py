"""Restore any session of an rdiff-backup 2.2 repository, fast and safely; list, compare, verify.

The core never prints, exits or imports typer/rich; errors are ``rdb_format.errors.RdbError``
subclasses carrying exit codes. Main entry points::

    restore("REPO/sub/path", "TARGET", at="3D", options=RestoreOptions(force=False))
    list_sessions(repo) / list_files(repo, when) / list_changed(repo, since)
    compare(source, repo, when, method="meta") / verify(repo, when)
"""

from rdb_restore.restore import (
    RestoreOptions,
    RestoreResult,
    default_workers,
    limit_heap_growth,
    restore,
)

__version__ = "0.1.0"
__all__ = [
    "RestoreOptions",
    "RestoreResult",
    "default_workers",
    "limit_heap_growth",
    "restore",
]
