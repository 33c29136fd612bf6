"""The README's main job (``./dev demo`` runs scripts/demo.py) does what issue 4 says: backs
up the sample tree twice with a change in between, lists the sessions, shows what changed,
and the first session comes back bit for bit with rdb-restore and with rdiff-backup 2.2.7."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]


def test_the_main_job(rdiff_backup: str) -> None:
    assert "scripts/demo.py" in (ROOT / "dev").read_text()
    # stdout a pipe and PYTHONUNBUFFERED unset, as in CI (./dev test): the demo's own lines
    # must still come before the output of the commands it runs after them
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env={**environ, "RDB_RDIFF_BACKUP": rdiff_backup, "TZ": "UTC"},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    listing = lines[lines.index("$ rdb-restore list backup") + 1 :]
    assert listing[0].split() == ["Session", "Size", "Cumulative"]
    assert listing[1].startswith("2023-11-14T22:13:20Z")
    assert listing[2].startswith("2023-11-15T22:13:20Z") and "(current mirror)" in listing[2]
    changed = lines[lines.index("$ rdb-restore list changed --since 1700000000 backup") + 1 :]
    for line in ("changed docs/chapter2.txt", "deleted empty.txt", "new     notes/todo.txt"):
        assert line in changed, line
    assert "first session restored by rdb-restore: identical to the original: True" in lines
    assert "first session restored by rdiff-backup 2.2.7: identical to the original: True" in lines
    assert lines[-1] == "OK"
