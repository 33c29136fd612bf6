"""Fault injection for the crash tests: SIGKILL this process at a chosen point.

``RDB_MIRROR_TEST_KILL_AFTER=N`` kills after the N-th processed entry;
``RDB_MIRROR_TEST_KILL_AT=<point>`` kills when the session reaches a named point (see
``POINTS``). Both are read once, at import; unset (the normal case) they cost nothing.
"""

from __future__ import annotations

from rdb_increment.testhooks import KillSwitch

POINTS = (
    "marker-written",  # incremental: the new current_mirror marker is on disk
    "walked",  # every entry processed and its files written; the early writeback still runs
    "metadata-written",  # the new snapshot, EA/ACL files and error log are in place
    "diff-written",  # the previous snapshot's diff is written, the snapshot not yet removed
    "converted",  # the previous snapshot is now a diff
    "before-commit",  # everything synced, the old marker not yet removed
    "committed",  # the old marker is removed, statistics not yet written
    "regress-walked",  # regress: the mirror is restored, the failed marker not yet removed
)

_switch = KillSwitch("RDB_MIRROR_TEST")
#: One more entry processed.
file_done = _switch.step
#: The session reached a named point (one of ``POINTS``).
point = _switch.point
