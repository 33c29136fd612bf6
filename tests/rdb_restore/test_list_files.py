"""``list files REPO --at TIME PATH`` and ``list files REPO/PATH``: exactly the entries the
session had under PATH, as paths relative to the repository, in the metadata's order."""

from __future__ import annotations

import os

from tests.rdb_restore.conftest import MirrorRepo
from tests.rdb_restore.helpers import run_restore


def test_list_files_under_a_path(mirror_repo_master: MirrorRepo) -> None:
    repo = mirror_repo_master
    checked = 0
    for n, when in enumerate(repo.times):
        scan = repo.scans[n]
        for top, entry in scan.items():
            if len(top) != 1 or entry.type != "dir":
                continue
            under = sorted(i for i in scan if i[:1] == top)
            if any(b"\n" in part for index in under for part in index):
                continue  # one path per line: a name with a newline would split
            expected = [b"/".join(index) for index in under]
            by_argument = run_restore("list", "files", "--at", when, repo.path, os.fsdecode(top[0]))
            assert by_argument.returncode == 0, by_argument.stderr
            assert by_argument.stdout.splitlines() == expected
            by_location = run_restore(
                "list", "files", "--at", when, repo.path / os.fsdecode(top[0])
            )
            assert by_location.stdout == by_argument.stdout
            checked += 1
    assert checked >= len(repo.times)
