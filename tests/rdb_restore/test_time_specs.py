"""Every time spec form of rdb-format picks the session a restore uses (the newest at or
before the time; before the first session, the first)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_restore.conftest import MirrorRepo
from tests.rdb_restore.helpers import run_restore

from rdb_format.errors import TimeSpecError
from rdb_restore import restore

HALF_HOUR = 1_800  # sessions are an hour apart: a spec half-way survives seconds of delay


def _a_file(repo: MirrorRepo) -> tuple[str, list[str | None]]:
    """A regular file present in every session (the one whose content changed most often),
    as a path relative to the repository, and its SHA1 in each session."""
    candidates = []
    for index, entry in repo.scans[0].items():
        if entry.type == "reg" and entry.nlink == 1 and all(index in s for s in repo.scans):
            sha1s = [scan[index].sha1 for scan in repo.scans]
            candidates.append((len(set(sha1s)), os.fsdecode(b"/".join(index)), sha1s))
    assert candidates
    _, name, sha1s = max(candidates)
    return name, sha1s


def _specs(times: list[int]) -> list[tuple[str, int]]:
    """(spec, expected session) for every form, the relative ones computed from the clock."""
    middle = times[1] + HALF_HOUR  # between the second and the third session
    back = int(time.time()) - middle  # seconds from "now" back to ``middle``
    before_all = (int(time.time()) - times[0]) // 86_400 + 2  # days back, before the first
    return [
        ("now", times[-1]),
        (str(times[1]), times[1]),  # epoch seconds, exactly a session
        (str(middle), times[1]),  # epoch seconds between sessions: rounds down
        ("2023-11-14", times[0]),  # a date before the first session's time: the first
        ("2023-11-14T23:43:20Z", times[1]),  # ISO with Z, half an hour after the second
        ("2023-11-15T00:43:20+01:00", times[1]),  # the same instant with an offset
        ("2023-11-15 00:13:20", times[2]),  # local time (TZ=UTC here), space separator
        (f"{back}s", times[1]),
        (f"{back // 60}m", times[1]),
        (f"{back // 3600}h{(back % 3600) // 60}m", times[1]),  # a combined interval
        (f"{before_all}D", times[0]),
        ("2W", times[-1]),
        ("1M", times[-1]),
        ("1Y", times[-1]),
        ("0B", times[-1]),
        ("1B", times[1]),
        ("2B", times[0]),
        ("5B", times[0]),  # more sessions back than there are: the oldest
    ]


def test_every_time_spec_form(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    repo = mirror_repo_master
    name, sha1s = _a_file(repo)
    assert repo.times[1] + HALF_HOUR == 1_700_005_400  # 2023-11-14T23:43:20Z
    for n, (spec, expected) in enumerate(_specs(repo.times)):
        target = tmp_path / f"t{n}"
        result = restore(str(repo.path / name), str(target), at=spec)
        assert result.time == expected, spec
        assert trees.stat_entry(target).sha1 == sha1s[repo.times.index(expected)], spec


def test_time_specs_on_the_command_line(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    """The same specs through ``--at``; a bad one is one line and exit 2, nothing written."""
    repo = mirror_repo_master
    name, sha1s = _a_file(repo)
    for spec, expected in (("2B", repo.times[0]), ("2023-11-15T00:43:20+01:00", repo.times[1])):
        proc = run_restore("--at", spec, repo.path / name, "-")
        assert proc.returncode == 0, proc.stderr
        assert hashlib.sha1(proc.stdout).hexdigest() == sha1s[repo.times.index(expected)]
    bad = run_restore("--at", "3 days ago", repo.path, tmp_path / "bad")
    assert bad.returncode == 2
    assert bad.stderr.decode().count("\n") == 1 and "3 days ago" in bad.stderr.decode()
    assert not (tmp_path / "bad").exists()
    with pytest.raises(TimeSpecError):
        restore(str(repo.path), str(tmp_path / "bad"), at="3X")
