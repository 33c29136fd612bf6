"""Comparing a local file's extended attributes and POSIX ACL with the recorded ones (for
``compare``). They are read as a backup of the file would record them:
:mod:`rdb_increment.fsextras`, the backup side's own reader.
"""

from __future__ import annotations

from rdb_format.eas_acls import ACLEntry


def same_acl(a: tuple[ACLEntry, ...], b: tuple[ACLEntry, ...]) -> bool:
    """Whether two ACLs hold the same entries (their order in a file does not matter)."""
    return sorted(e.format() for e in a) == sorted(e.format() for e in b)
