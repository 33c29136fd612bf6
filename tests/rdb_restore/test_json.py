"""Local restore with --json, like rdb-mirror: progress events then a summary, one JSON
object per line on stdout; with TARGET '-' they go to stderr and stdout is only the file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.interop import trees
from tests.rdb_restore.conftest import MirrorRepo
from tests.rdb_restore.helpers import run_restore


def test_json_events_and_summary(mirror_repo_master: MirrorRepo, tmp_path: Path) -> None:
    repo, when = mirror_repo_master, mirror_repo_master.times[0]
    target = tmp_path / "t"
    proc = run_restore("--json", "--at", when, repo.path, target)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    documents = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    events = [d["event"] for d in documents[:-1]]
    assert events[0] == "start" and events[-1] == "finish"
    summary = documents[-1]["summary"]
    scan = repo.scans[0]
    regular = [e for e in scan.values() if e.type == "reg"]
    assert summary["time"] == when and summary["time_string"] == "2023-11-14T22:13:20Z"
    assert summary["target"] == str(target) and summary["warnings"] == []
    contents = {e.inode: e.size or 0 for e in regular}  # a hard-linked file is written once
    assert summary["entries"] == len(scan)  # the root included
    assert (summary["files"], summary["bytes"]) == (len(contents), sum(contents.values()))
    assert trees.scan(target).keys() == scan.keys()


def test_json_with_stdout_target(mirror_repo_master: MirrorRepo) -> None:
    repo = mirror_repo_master
    name, entry = next(
        (i, e) for i, e in repo.scans[-1].items() if len(i) == 1 and e.type == "reg" and e.size
    )
    proc = run_restore("--json", repo.path / os.fsdecode(name[0]), "-")
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha1(proc.stdout).hexdigest() == entry.sha1
    documents = [json.loads(line) for line in proc.stderr.decode().splitlines()]
    assert documents[-1]["summary"]["files"] == 1
    assert documents[-1]["summary"]["bytes"] == entry.size
