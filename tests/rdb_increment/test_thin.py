"""Thinning: removing sessions between kept ones merges their increments into the session
before them, so that the result is what a backup made of the kept sessions alone would hold."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.interop import trees
from tests.rdb_increment.removal import (
    DAY,
    HOUR,
    T0,
    History,
    assert_sessions_restore,
    assert_tidy,
    build_history,
    mirror_module,
    restore_module,
    run_increment,
    session_records,
)
from tests.rdb_increment.removal import utc_zone as utc_zone  # the fixture

from rdb_format.increments import parse_increment_name
from rdb_format.layout import Layout
from rdb_format.metadata_diff import list_metadata_files
from rdb_format.repository import read_state
from rdb_increment import RemoveOptions, RetentionPolicy, remove_sessions
from rdb_increment.tree import root_increments, walk_increments

# ---- an oracle: the repository a backup of the kept sessions alone would be --------------


def increments_by_path(repo: Path) -> dict[tuple[str, bytes, int], tuple[str, bool, bytes]]:
    """(directory relative to the data dir, base, time) -> (kind, compressed, content).

    Content is uncompressed; symlink snapshots give their target; long_filename_data is left
    out (its numbers are allocated per repository)."""
    layout = Layout(repo)
    quoting = read_state(layout).quoting
    groups = [root_increments(layout, quoting)]
    groups += [g for d in walk_increments(layout) for g in d.groups(quoting)]
    out: dict[tuple[str, bytes, int], tuple[str, bool, bytes]] = {}
    for group in groups:
        if group.directory == layout.long_filename_dir:
            continue
        where = os.path.relpath(group.directory, layout.data_dir)
        for inc in group.files:
            if inc.path.is_symlink():
                content = b"-> " + os.readlink(os.fsencode(inc.path))
            elif not inc.path.is_file():
                content = b"<special>"
            elif inc.name.compressed:
                content = gzip.decompress(inc.path.read_bytes())
            else:
                content = inc.path.read_bytes()
            out[(where, group.base, inc.time)] = (inc.kind, inc.name.compressed, content)
    return out


def direct_repository(history: History, kept: list[int], work: Path) -> Path:
    """Back up each kept session's tree (restored from ``history``) into a new repository."""
    mirror, restore = mirror_module(), restore_module()
    repo = work / "direct"
    for when in kept:
        tree = work / f"tree-{when}"
        restore.restore(str(history.repo), str(tree), at=str(when))
        mirror.backup(tree, repo, mirror.BackupOptions(current_time=when))
        shutil.rmtree(tree)
    return repo


def assert_like_direct(thinned: Path, direct: Path) -> None:
    """Every increment the direct backups wrote, the thinned repository holds with the same
    kind, compression and (uncompressed) bytes. Beyond them it may only hold increments that
    change nothing (a .dir, or a diff of identical contents, when a path changed and changed
    back between the kept sessions)."""
    ours, theirs = increments_by_path(thinned), increments_by_path(direct)
    for key, want in theirs.items():
        assert ours.get(key) == want, (key, ours.get(key, ("none",))[:2], want[:2])
    for key in set(ours) - set(theirs):
        assert ours[key][0] in ("dir", "diff"), (key, ours[key][:2])


# ---- every kind of transition, merged --------------------------------------------------

State = tuple[str, bytes] | None
REG_A, REG_B, REG_C, REG_D = (("reg", b"a" * n) for n in (10, 2000, 3000, 4000))
BIG = bytes(random.Random(5).randbytes(300_000))
# 20 kB versions sharing most blocks, so a real delta copies and a literal one does not
MID_A, MID_B, MID_C = (("reg", BIG[:20_000] + tail) for tail in (b"", b"b" * 99, b"c" * 999))

TRANSITIONS: dict[str, list[State]] = {
    # name: its state at P, S1, S2, N (S1 and S2 are removed)
    "modified": [REG_A, REG_B, REG_C, REG_D],
    "deleted-in-between": [REG_A, REG_B, None, None],
    "deleted-and-back": [REG_A, None, None, REG_B],
    "created-in-between": [None, REG_A, REG_B, REG_C],
    "came-and-went": [None, REG_A, None, None],
    "file-to-dir": [REG_A, REG_B, ("dir", b"x"), ("dir", b"y")],
    "dir-to-file": [("dir", b"x"), ("dir", b"xy"), REG_A, REG_B],
    "link-to-file": [("sym", b"t1"), ("sym", b"t2"), REG_A, REG_B],
    "file-to-link": [REG_A, REG_B, REG_C, ("sym", b"t")],
    "changed-last": [REG_A, REG_A, REG_A, REG_B],
    "changed-first": [REG_A, REG_B, REG_B, REG_B],
    "big": [
        ("reg", BIG),
        ("reg", BIG[:1000] + b"x" * 50 + BIG[1050:]),
        ("reg", BIG[:200_000] + b"y" * 500 + BIG[200_000:]),
        ("reg", b"z" * 300 + BIG[300:]),
    ],
    "stored-plain.gz": [REG_A, REG_B, REG_C, REG_D],
    "changed-and-back": [REG_A, REG_B, REG_C, REG_A],
    "changed-late-twice": [MID_A, MID_A, MID_B, MID_C],
    "deleted-late": [MID_A, MID_A, MID_B, None],
    "deleted-late-and-back": [MID_A, MID_A, None, MID_B],
}


def set_state(root: Path, name: str, state: State, session: int) -> None:
    path = root / name
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if state is None:
        return
    kind, payload = state
    if kind == "reg":
        path.write_bytes(payload)
    elif kind == "dir":
        path.mkdir()
        (path / "inner").write_bytes(payload)
        os.utime(path / "inner", (T0 + session, T0 + session))
    else:
        os.symlink(payload, path)
        return
    os.utime(path, (T0 + session, T0 + session))


@pytest.fixture(scope="module")
def transitions(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, list[int]]:
    mirror = mirror_module()
    work = tmp_path_factory.mktemp("transitions")
    history = History(work / "src", work / "repo")
    history.source.mkdir()
    times = [T0 + n * HOUR for n in range(4)]
    for session, when in enumerate(times):
        for name, states in TRANSITIONS.items():
            if session == 0 or states[session] != states[session - 1]:
                set_state(history.source, name, states[session], session)
        history.scans[when] = trees.scan(history.source)
        mirror.backup(history.source, history.repo, mirror.BackupOptions(current_time=when))
        history.metadata[when] = session_records(history.repo, when)
    return history, times


EXPECTED_AT_P = {
    "modified": "diff",
    "deleted-in-between": "snapshot",
    "deleted-and-back": "diff",
    "created-in-between": "missing",
    "came-and-went": None,
    "file-to-dir": "snapshot",
    "dir-to-file": "dir",
    "link-to-file": "snapshot",
    "file-to-link": "snapshot",
    "changed-last": "diff",
    "changed-first": "diff",
    "big": "diff",
    "stored-plain.gz": "diff",
    "changed-and-back": "diff",
    "changed-late-twice": "diff",
    "deleted-late": "snapshot",
    "deleted-late-and-back": "diff",
}


def test_each_transition_becomes_what_a_direct_backup_writes(
    transitions: tuple[History, list[int]], tmp_path: Path
) -> None:
    master, times = transitions
    history = master.copy(tmp_path / "repo")
    kept = [times[0], times[3]]
    direct = direct_repository(history, kept, tmp_path)
    proc = run_increment("remove", history.repo, "--session", "1B", "--session", "2B", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 sessions" in proc.stdout
    assert history.sessions() == tuple(kept)
    assert_sessions_restore(history, kept, tmp_path / "restored")
    assert_tidy(history.repo)
    found = increments_by_path(history.repo)
    for name, kind in EXPECTED_AT_P.items():
        at_p = [v for (where, base, t), v in found.items() if base == name.encode()]
        assert [v[0] for v in at_p] == ([kind] if kind else []), name
    assert found[("increments", b"stored-plain.gz", times[0])][1] is False  # kept uncompressed
    assert found[("increments", b"big", times[0])][1] is True
    assert_like_direct(history.repo, direct)


def test_merging_into_a_session_keeps_its_metadata_diff_small(
    transitions: tuple[History, list[int]], tmp_path: Path
) -> None:
    history = transitions[0].copy(tmp_path / "repo")
    times = transitions[1]
    remove_sessions(
        history.repo,
        RetentionPolicy(sessions=(str(times[1]), str(times[2]))),
        RemoveOptions(force=True),
    )
    files = list_metadata_files(Layout(history.repo).data_dir)
    assert [(f.time, f.kind) for f in files] == [(times[0], "diff"), (times[3], "snapshot")]
    # a diff against N: only the paths whose record differs between P and N
    paths = {r.path for r in files[0].records()}
    assert b"changed-first" in paths and b"came-and-went" not in paths


# ---- random histories ------------------------------------------------------------------


MIDNIGHT = 1_699_920_000  # 2023-11-14T00:00:00Z


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Twelve sessions: four a day (UTC) for three days."""
    times = [MIDNIGHT + day * DAY + n * 5 * HOUR for day in range(3) for n in range(4)]
    return build_history(tmp_path_factory.mktemp("daily"), times, seed=33)


def test_keep_daily_thins_to_one_session_a_day(daily: History, tmp_path: Path) -> None:
    history = daily.copy(tmp_path / "repo")
    kept = [t for t in daily.times if (t - MIDNIGHT) % DAY == 15 * HOUR]  # each day's last
    direct = direct_repository(history, kept, tmp_path)
    result = remove_sessions(history.repo, RetentionPolicy(keep_daily=3), RemoveOptions(force=True))
    assert result.kept == tuple(kept)
    assert result.paths_merged > 0 and result.files_deleted > 0
    assert_sessions_restore(history, kept, tmp_path / "restored")
    assert_tidy(history.repo)
    assert_like_direct(history.repo, direct)


@pytest.mark.parametrize("seed", range(4))
def test_random_sequences_of_backups_removals_and_thinnings(seed: int, tmp_path: Path) -> None:
    """Backups, --older-than, --keep, calendar rules and --session in random order; after
    each removal every kept session restores bit-exact with its metadata unchanged."""
    rng = random.Random(seed)
    times = iter(random_session_times(rng))
    history = build_history(tmp_path / "h", [next(times) for _ in range(3)], seed=100 + seed)
    for step in range(10):
        action = rng.choice(["backup", "backup", "older", "keep", "calendar", "session"])
        sessions = history.sessions()
        if action == "backup" or len(sessions) < 3:
            history.backup(next(times), mutate_seed=seed * 100 + step)
            continue
        if action == "older":
            policy = RetentionPolicy(older_than=rng.choice(sessions[1:]))
        elif action == "keep":
            policy = RetentionPolicy(keep_last=rng.randint(1, len(sessions) - 1))
        elif action == "calendar":
            policy = RetentionPolicy(
                keep_daily=rng.randint(1, 3), keep_weekly=rng.choice([None, 1, 2])
            )
        else:
            doomed = rng.sample(sessions[:-1], rng.randint(1, len(sessions) - 1))
            policy = RetentionPolicy(sessions=tuple(str(t) for t in doomed))
        result = remove_sessions(history.repo, policy, RemoveOptions(force=True))
        assert history.sessions() == result.kept
        assert_sessions_restore(history, result.kept, tmp_path / f"restored-{step}")
        assert_tidy(history.repo)


def random_session_times(rng: random.Random) -> Iterator[int]:
    when = T0
    while True:
        yield when
        when += rng.choice([HOUR, 7 * HOUR, DAY, 2 * DAY + 1, 9 * DAY])


def test_merged_increments_use_each_sessions_time_string(
    transitions: tuple[History, list[int]], tmp_path: Path
) -> None:
    """An increment renamed to session P is written with P's own time string."""
    history = transitions[0].copy(tmp_path / "repo")
    times = transitions[1]
    remove_sessions(history.repo, RetentionPolicy(sessions=(str(times[2]),)))
    increments = Layout(history.repo).increments_dir
    for name in os.listdir(increments):
        parsed = parse_increment_name(os.fsencode(name))
        if parsed is not None:
            assert parsed.time in times and parsed.time != times[2]
            assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(parsed.time)) in name
