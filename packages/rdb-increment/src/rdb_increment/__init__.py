"""Reverse increments in rdiff-backup 2.2's forms: write them, rebuild from them, list them.

The library never prints, exits or imports typer/rich; errors are ``rdb_format.errors.RdbError``
subclasses carrying exit codes. Main entry points::

    writer = IncrementWriter(layout, previous_time, quoting=quoting)
    writer.write((b"dir", b"file"), old=mirror_copy, new=new_version)   # one increment
    for outcome in writer.write_many(jobs): ...                          # a thread pool
    writer.sync()                                                        # before the marker

    rebuild_at(layout, index, time, out)          # a regular file as of a session time
    list_increments(repo, path) / increment_sizes(repo, path)

    remove_sessions(repo, RetentionPolicy(older_than="1Y"), RemoveOptions(force=True))
    remove_sessions(repo, RetentionPolicy(keep_daily=7, keep_weekly=5), RemoveOptions(force=True))
"""

from typing import TYPE_CHECKING

from rdb_format.lazy import lazy_exports

# eager: 'rebuild' is also a submodule's name (see rdb_format.lazy); restore needs it anyway
from rdb_increment.rebuild import (
    IncrementFile,
    RebuildPlan,
    find_increments,
    iter_rebuild,
    plan_rebuild,
    rebuild,
    rebuild_at,
)

if TYPE_CHECKING:
    from rdb_increment.deltas import DeltaSummary, read_delta
    from rdb_increment.listing import (
        IncrementListing,
        ListedIncrement,
        SessionSize,
        byte_summary,
        format_listing,
        format_parsable,
        format_sizes,
        increment_sizes,
        list_increments,
        parse_index,
    )
    from rdb_increment.remove import JOURNAL, RemoveOptions, RemoveResult, remove_sessions
    from rdb_increment.sessions import RemovalPlan, RetentionPolicy, Window, plan_removal
    from rdb_increment.tree import LongNameMirrors, PathIncrements, root_increments, walk_increments
    from rdb_increment.writer import (
        DEFAULT_NO_COMPRESSION_REGEXP,
        IncrementError,
        IncrementExists,
        IncrementJob,
        IncrementOptions,
        IncrementOutcome,
        IncrementProgress,
        IncrementWriter,
        NullProgress,
        Plan,
        WrittenIncrement,
        block_size_for,
        choose_kind,
    )

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_NO_COMPRESSION_REGEXP",
    "JOURNAL",
    "DeltaSummary",
    "IncrementError",
    "IncrementExists",
    "IncrementFile",
    "IncrementJob",
    "IncrementListing",
    "IncrementOptions",
    "IncrementOutcome",
    "IncrementProgress",
    "IncrementWriter",
    "ListedIncrement",
    "LongNameMirrors",
    "NullProgress",
    "PathIncrements",
    "Plan",
    "RebuildPlan",
    "RemovalPlan",
    "RemoveOptions",
    "RemoveResult",
    "RetentionPolicy",
    "SessionSize",
    "Window",
    "WrittenIncrement",
    "block_size_for",
    "byte_summary",
    "choose_kind",
    "find_increments",
    "format_listing",
    "format_parsable",
    "format_sizes",
    "increment_sizes",
    "iter_rebuild",
    "list_increments",
    "parse_index",
    "plan_rebuild",
    "plan_removal",
    "read_delta",
    "rebuild",
    "rebuild_at",
    "remove_sessions",
    "root_increments",
    "walk_increments",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "rdb_increment.deltas": (
            "DeltaSummary",
            "read_delta",
        ),
        "rdb_increment.listing": (
            "IncrementListing",
            "ListedIncrement",
            "SessionSize",
            "byte_summary",
            "format_listing",
            "format_parsable",
            "format_sizes",
            "increment_sizes",
            "list_increments",
            "parse_index",
        ),
        "rdb_increment.remove": (
            "JOURNAL",
            "RemoveOptions",
            "RemoveResult",
            "remove_sessions",
        ),
        "rdb_increment.sessions": (
            "RemovalPlan",
            "RetentionPolicy",
            "Window",
            "plan_removal",
        ),
        "rdb_increment.tree": (
            "LongNameMirrors",
            "PathIncrements",
            "root_increments",
            "walk_increments",
        ),
        "rdb_increment.writer": (
            "DEFAULT_NO_COMPRESSION_REGEXP",
            "IncrementError",
            "IncrementExists",
            "IncrementJob",
            "IncrementOptions",
            "IncrementOutcome",
            "IncrementProgress",
            "IncrementWriter",
            "NullProgress",
            "Plan",
            "WrittenIncrement",
            "block_size_for",
            "choose_kind",
        ),
    },
)
