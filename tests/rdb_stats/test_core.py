"""rdb_stats.core on hand-made repositories whose statistics have known values."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.rdb_stats.conftest import FILE_STATS, T1, T2, T3, Synthetic, session_text, stamp

from rdb_clikit.protocol import RecordingProgress
from rdb_format.errors import RepositoryNotFound, TimeSpecError, UsageError
from rdb_format.exitcodes import ExitCode
from rdb_stats.core import StatsOptions, collect


def test_per_session_values_averages_and_totals(full_repo: Synthetic) -> None:
    report = collect(full_repo.root)
    assert [s.time for s in report.sessions] == [T1, T2, T3]
    assert [s.statistics["SourceFiles"] for s in report.sessions] == [10, 20, 30]
    assert report.averages["SourceFiles"] == 20.0
    assert report.totals["SourceFiles"] == 60
    assert report.averages["IncrementFileSize"] == 300.0
    assert report.totals["IncrementFileSize"] == 900
    assert report.averages["ElapsedTime"] == pytest.approx(2.5)
    assert report.counted["SourceFiles"] == 3
    assert "StartTime" not in report.averages
    assert report.warnings == ()
    assert report.exit_code == ExitCode.OK


def test_errors_come_from_error_log_not_the_statistics_count(full_repo: Synthetic) -> None:
    report = collect(full_repo.root)
    assert [s.statistics["Errors"] for s in report.sessions] == [0, 0, 0]
    assert [s.logged_errors for s in report.sessions] == [0, 2, 0]
    assert report.sessions[1].error_types == {"UpdateError": 1, "ListError": 1}
    assert report.totals["LoggedErrors"] == 2


def test_errors_fall_back_to_statistics_without_error_log(
    synthetic: Callable[..., Synthetic],
) -> None:
    repo = synthetic()
    for when in repo.times:
        repo.write(
            repo.data_file("session_statistics", when), session_text(when, Errors=4).encode()
        )
    report = collect(repo.root, StatsOptions(file_statistics=False))
    assert [s.logged_errors for s in report.sessions] == [4, 4, 4]


def test_disk_growth(full_repo: Synthetic) -> None:
    report = collect(full_repo.root)
    assert report.mirror_bytes == 150
    assert report.mirror_entries == 5  # root, file1, sub, sub/file2, link
    by_time = {s.time: s for s in report.sessions}
    assert (by_time[T1].increment_bytes, by_time[T1].increment_files) == (30, 3)
    assert (by_time[T2].increment_bytes, by_time[T2].increment_files) == (5, 2)
    assert (by_time[T3].increment_bytes, by_time[T3].increment_files) == (0, 0)
    assert [by_time[t].cumulative_bytes for t in (T3, T2, T1)] == [150, 155, 185]
    assert report.increment_bytes == 35


def test_top_entries_follow_rdiff_backup_statistics(full_repo: Synthetic) -> None:
    # Cutoffs are 0.05 x each session's statistics, summed over the three sessions:
    # changed 0.05 x 10 x 3 = 1.5, source 0.05 x 1000 x 3 = 150, increment
    # 0.05 x (100 + 200 + 600) = 45. The file_statistics (the same three times) give
    # source: a/big 2700 and b 270 pass, a's own 30 and the root's own 0 do not;
    # increment: a/big 270 passes, b's 30 and the root's own 30 do not;
    # changed: a/big, b, a's own and the root's own are 3 each (of 12).
    report = collect(full_repo.root)
    assert report.top is not None
    source = [(e.path, e.value, round(e.percent, 1)) for e in report.top["source_size"]]
    assert source == [("a/big", 2700, 90.0), ("b", 270, 9.0)]
    increment = [(e.path, e.value) for e in report.top["increment_size"]]
    assert increment == [("a/big", 270)]
    changed = [(e.path, e.value, e.percent) for e in report.top["changed_files"]]
    assert changed == [(".", 3, 25.0), ("a", 3, 25.0), ("a/big", 3, 25.0), ("b", 3, 25.0)]


def test_higher_ratio_keeps_fewer_entries(full_repo: Synthetic) -> None:
    report = collect(full_repo.root, StatsOptions(minimum_ratio=0.5))
    assert report.top is not None
    assert [e.path for e in report.top["source_size"]] == ["a/big"]
    assert [e.path for e in report.top["increment_size"]] == []  # cutoff 450 > all 300


def test_time_range(full_repo: Synthetic) -> None:
    report = collect(full_repo.root, StatsOptions(begin_time=str(T2)))
    assert [s.time for s in report.sessions] == [T2, T3]
    assert report.averages["SourceFiles"] == 25.0
    report = collect(full_repo.root, StatsOptions(end_time="1B"))
    assert [s.time for s in report.sessions] == [T1, T2]
    report = collect(full_repo.root, StatsOptions(begin_time="1B", end_time="1B"))
    assert [s.time for s in report.sessions] == [T2]


def test_bad_time_spec_is_a_usage_error(full_repo: Synthetic) -> None:
    with pytest.raises(TimeSpecError) as caught:
        collect(full_repo.root, StatsOptions(begin_time="yesterday"))
    assert caught.value.exit_code == ExitCode.USAGE


def test_bad_ratio_is_a_usage_error(full_repo: Synthetic) -> None:
    with pytest.raises(UsageError):
        collect(full_repo.root, StatsOptions(minimum_ratio=2.0))


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound) as caught:
        collect(tmp_path)
    assert caught.value.exit_code == 10


def test_truncated_session_statistics_warns_and_goes_on(full_repo: Synthetic) -> None:
    path = full_repo.data_file("session_statistics", T2)
    content = path.read_bytes()
    path.write_bytes(content[: content.index(b"SourceFileSize") + 8])  # cut mid-line
    progress = RecordingProgress()
    report = collect(full_repo.root, progress=progress)
    assert report.exit_code == ExitCode.WARNINGS
    assert len(report.sessions) == 3
    middle = report.sessions[1]
    assert not middle.statistics_complete
    assert middle.statistics["SourceFiles"] == 20  # what was before the cut is kept
    assert "IncrementFileSize" not in middle.statistics
    assert report.counted["IncrementFileSize"] == 2
    assert report.averages["IncrementFileSize"] == 350.0  # (100 + 600) / 2
    assert report.averages["SourceFiles"] == 20.0
    assert any("session_statistics" in w and "truncated" in w for w in report.warnings)
    assert progress.warnings == list(report.warnings)


def test_missing_statistics_files_warn(full_repo: Synthetic) -> None:
    full_repo.data_file("session_statistics", T1).unlink()
    full_repo.data_file("file_statistics", T3, gz=True).unlink()
    report = collect(full_repo.root)
    assert report.exit_code == ExitCode.WARNINGS
    assert report.sessions[0].statistics == {}
    assert report.averages["SourceFiles"] == 25.0
    assert report.sessions[2].file_statistics_lines is None
    assert report.sessions[1].file_statistics_lines == 5
    assert len(report.warnings) == 2
    # T1's file statistics are still used; its cutoff comes from the file's own totals.
    assert report.top is not None
    assert [e.value for e in report.top["source_size"]] == [1800, 180]


def test_truncated_gzip_file_statistics_warns(full_repo: Synthetic) -> None:
    path = full_repo.data_file("file_statistics", T2, gz=True)
    path.write_bytes(gzip.compress(FILE_STATS * 200)[:300])
    report = collect(full_repo.root)
    assert report.exit_code == ExitCode.WARNINGS
    assert any("file_statistics" in w and "truncated" in w for w in report.warnings)


def test_damaged_error_log_counts_what_reads_and_warns(full_repo: Synthetic) -> None:
    """A garbled entry is one warning and is not counted; a gzip cut short counts the entries
    before the cut, with one warning naming the file."""
    log = full_repo.data_file("error_log", T2, gz=True)
    log.write_bytes(
        gzip.compress(b"UpdateError: 'x' changed\nnot an entry\nListError: 'y' denied\n")
    )
    log3 = full_repo.data_file("error_log", T3)
    log3.unlink()
    cut = full_repo.data_file("error_log", T3, gz=True)
    cut.write_bytes(gzip.compress(b"ListError: 'z' Permission denied\n" * 3000)[:-20])
    report = collect(full_repo.root)
    assert report.exit_code == ExitCode.WARNINGS
    assert report.sessions[1].error_types == {"UpdateError": 1, "ListError": 1}
    assert 0 < report.sessions[2].logged_errors < 3000  # type: ignore[operator]
    assert set(report.sessions[2].error_types) == {"ListError"}
    assert len(report.warnings) == 2
    assert report.warnings[0].endswith("entry 2: not '<Type>: '<path>' <message>': b'not an entry'")
    assert cut.name in report.warnings[1] and "truncated" in report.warnings[1]


def test_bad_file_statistics_rows_are_left_out_and_counted(full_repo: Synthetic) -> None:
    """A malformed or hostile row (``..``) in file_statistics is one warning; the other rows
    still make the top report."""
    path = full_repo.data_file("file_statistics", T2, gz=True)
    path.write_bytes(gzip.compress(FILE_STATS + b"../etc 1 5 5 NA\nc 7 1 1 1\nd 1 3 3 NA\n"))
    report = collect(full_repo.root)
    assert report.sessions[1].file_statistics_lines == 8
    assert report.warnings == (f"session {stamp(T2)}: {path.name}: 2 lines do not parse",)
    assert report.top is not None
    assert [e.path for e in report.top["source_size"]][:2] == ["a/big", "b"]


def test_null_separator(synthetic: Callable[..., Synthetic]) -> None:
    repo = synthetic(times=(T1,))
    repo.write(
        repo.data_file("session_statistics", T1),
        session_text(T1, SourceFileSize=1000, IncrementFileSize=100, NewFiles=10).encode(),
    )
    repo.write(
        repo.data_file("file_statistics", T1, gz=True),
        FILE_STATS.replace(b"\n", b"\0").replace(b"a/small", b"a/new\nline"),
        gz=True,
    )
    repo.write(repo.data_file("error_log", T1), b"UpdateError: 'a\nb' x\0ListError: 'c' y\0")
    report = collect(repo.root, StatsOptions(null_separator=True))
    assert report.warnings == ()
    assert report.sessions[0].error_log_entries == 2
    assert report.sessions[0].file_statistics_lines == 5
    assert report.top is not None
    assert [e.path for e in report.top["source_size"]] == ["a/big", "b"]


def test_unfinished_session_is_left_out_with_a_warning(full_repo: Synthetic) -> None:
    later = T3 + 100
    full_repo.write(full_repo.data_file("current_mirror", later), b"PID 999999\n")
    full_repo.write(full_repo.data_file("session_statistics", later), session_text(later).encode())
    report = collect(full_repo.root)
    assert [s.time for s in report.sessions] == [T1, T2, T3]
    assert report.exit_code == ExitCode.WARNINGS
    assert any("did not finish" in w for w in report.warnings)


def test_progress_sees_every_session(full_repo: Synthetic) -> None:
    progress = RecordingProgress()
    collect(full_repo.root, progress=progress)
    assert ("start", "reading session statistics") in progress.events
    assert ("total", 3) in progress.events
    assert progress.events.count(("advance", 1)) == 3


def test_core_imports_neither_typer_nor_rich() -> None:
    code = (
        "import sys, rdb_stats.core, rdb_stats.export, rdb_stats.plot; "
        "print(sorted(m for m in ('rich', 'typer') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
