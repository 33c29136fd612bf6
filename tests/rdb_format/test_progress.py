"""rdb_format.progress: the Protocol cores depend on, shaped like rdb_clikit's."""

from __future__ import annotations

import inspect

from rdb_format.progress import NullProgress, Progress, RecordingProgress


def test_implementations_satisfy_the_protocol() -> None:
    assert isinstance(NullProgress(), Progress)
    assert isinstance(RecordingProgress(), Progress)
    assert not isinstance(object(), Progress)


def test_recording() -> None:
    progress = RecordingProgress()
    progress.start("scan", 3)
    progress.advance()
    progress.advance(2)
    progress.warning("skipped x")
    progress.finish()
    assert progress.events == [
        ("start", "scan"),
        ("total", 3),
        ("advance", 1),
        ("advance", 2),
        ("warning", "skipped x"),
        ("finish", None),
    ]
    assert progress.warnings == ["skipped x"]


def test_same_shape_as_rdb_clikit() -> None:
    """Signatures match rdb_clikit.protocol.Progress, so it can re-export ours."""
    try:
        from rdb_clikit import protocol
    except ImportError:  # rdb_clikit not installed in this environment
        return
    for method in ("start", "advance", "warning", "finish"):
        ours = inspect.signature(getattr(Progress, method))
        theirs = inspect.signature(getattr(protocol.Progress, method))
        assert str(ours) == str(theirs), method
