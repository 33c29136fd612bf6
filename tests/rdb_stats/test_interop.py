"""rdb-stats on repositories written by rdiff-backup 2.2.7 from generated trees.

Expected numbers come from the trees (scanned before each backup) and from rdiff-backup's own
``calculate`` and ``list increments --size``, never from rdb-stats.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.interop import trees
from tests.interop.conftest import (
    UNCHANGED_SESSION,
    VARIANTS,
    Repo,
    Variant,
    build_repo,
    run_rdiff_backup,
)

from rdb_stats.core import SUMMED_FIELDS, collect

pytestmark = pytest.mark.interop

BY_NAME = {v.name: v for v in VARIANTS}
OURS = (
    BY_NAME["default"],
    BY_NAME["quote-upper"],
    Variant("null-separator", ("--null-separator",), tz="Europe/Berlin", seed=5),
)


@pytest.fixture(scope="module")
def repos(rdiff_backup: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Repo]:
    base = tmp_path_factory.mktemp("rdb-stats-interop")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {v.name: pool.submit(build_repo, rdiff_backup, base / v.name, v) for v in OURS}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(params=[v.name for v in OURS])
def repo(request: pytest.FixtureRequest, repos: dict[str, Repo]) -> Repo:
    return repos[request.param]


def null_separated(repo: Repo) -> bool:
    return "--null-separator" in repo.variant.global_opts


def test_averages_agree_with_rdiff_backup_calculate(repo: Repo) -> None:
    from rdb_stats.core import StatsOptions

    report = collect(repo.path, StatsOptions(null_separator=null_separated(repo)))
    assert report.warnings == ()
    files = sorted(str(p) for p in (repo.path / "rdiff-backup-data").glob("session_statistics.*"))
    assert len(files) == len(repo.sessions)
    out = run_rdiff_backup(repo.exe, ["calculate", "--method", "average", *files]).stdout.decode()
    assert f"Average of {len(files)} stat files" in out
    expected = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\w+) (-?[0-9.e+]+)", out, re.MULTILINE)
    }
    compared = [name for name in SUMMED_FIELDS if name in expected]
    assert len(compared) == len(SUMMED_FIELDS) - 1  # all but our LoggedErrors
    for name in compared:
        average = report.averages[name]
        assert average is not None
        tolerance = 0.006 if name == "ElapsedTime" else 1e-9 * max(1.0, abs(average))
        assert average == pytest.approx(expected[name], abs=tolerance), name


def test_sessions_match_the_trees_that_were_backed_up(repo: Repo) -> None:
    from rdb_stats.core import StatsOptions

    report = collect(repo.path, StatsOptions(null_separator=null_separated(repo)))
    assert [s.time for s in report.sessions] == repo.times
    for session, backed_up in zip(report.sessions, repo.sessions, strict=True):
        regular = [e.size or 0 for e in backed_up.source.values() if e.type == "reg"]
        assert session.statistics["SourceFiles"] == len(backed_up.source)
        assert session.statistics["SourceFileSize"] == sum(regular)
        assert session.logged_errors == 0
    first = report.sessions[0].statistics
    assert first["NewFiles"] == len(repo.sessions[0].source) - 1  # all but the root
    quiet = report.sessions[UNCHANGED_SESSION].statistics
    assert (quiet["NewFiles"], quiet["ChangedFiles"], quiet["DeletedFiles"]) == (0, 0, 0)
    assert quiet["IncrementFileSize"] == 0
    previous = report.sessions[UNCHANGED_SESSION - 1]
    assert previous.increment_bytes == 0  # nothing had to be kept to restore it
    last = repo.sessions[-1].source.values()
    assert report.mirror_bytes == sum(e.size or 0 for e in last if e.type == "reg")
    assert report.mirror_entries == len(repo.sessions[-1].source)


def test_increment_sizes_agree_with_list_increments_size(repo: Repo) -> None:
    from rdb_stats.core import StatsOptions

    report = collect(repo.path, StatsOptions(null_separator=null_separated(repo)))
    out = repo.run("--parsable-output", "list", "increments", "--size").stdout.decode()
    listed = {
        int(m.group(2)): int(m.group(1)) for m in re.finditer(r"- size: (\d+)\n\s+time: (\d+)", out)
    }
    current = repo.times[-1]
    # rdiff-backup sums only increments/; long names keep theirs in long_filename_data.
    long_dir = repo.path / "rdiff-backup-data" / "long_filename_data"
    for session in report.sessions:
        if session.time == current:
            continue
        extra = 0
        for path in long_dir.iterdir():
            parts = path.name.split(".")
            if len(parts) >= 3 and collect_time(parts) == session.time:
                extra += path.lstat().st_size
        assert session.increment_bytes == listed.get(session.time, 0) + extra, session.time


def collect_time(parts: list[str]) -> int | None:
    from rdb_format.timestamps import try_parse_timestring

    stamp = parts[-3] if parts[-1] == "gz" else parts[-2]
    return try_parse_timestring(
        stamp.replace(";058", ":").replace(";084", "T").replace(";090", "Z")
    )


def test_top_entries_name_the_changed_files(repos: dict[str, Repo]) -> None:
    """The largest source file the trees hold is at the top by source size."""
    repo = repos["default"]
    report = collect(repo.path)
    assert report.top is not None
    sizes: dict[bytes, int] = {}
    for backed_up in repo.sessions:
        for index, entry in backed_up.source.items():
            if entry.type == "reg":
                sizes[b"/".join(index)] = sizes.get(b"/".join(index), 0) + (entry.size or 0)
    biggest = max(sizes, key=lambda k: sizes[k])
    top = report.top["source_size"][0]
    assert top.path == biggest.decode()
    assert top.value == sizes[biggest]


def test_cli_json_on_a_real_repository(repos: dict[str, Repo], tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    repo = repos["quote-upper"]
    picture = tmp_path / "p.svg"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "rdb-stats"),
            "--json",
            "--plot",
            str(picture),
            str(repo.path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["time"] for s in doc["sessions"]] == repo.times
    assert picture.read_text().count('class="changed"') == len(repo.times)
    _ = trees  # the generator module these repositories come from
