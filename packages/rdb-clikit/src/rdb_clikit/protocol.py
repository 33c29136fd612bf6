"""The progress interface a core calls, and the do-nothing default.

It lives in ``rdb_format.progress`` (standard library only, so a core that never imports typer
or rich depends on the format library alone); this module re-exports it for the CLI side.
"""

from __future__ import annotations

from rdb_format.progress import NullProgress, Progress, RecordingProgress

__all__ = ["NullProgress", "Progress", "RecordingProgress"]
