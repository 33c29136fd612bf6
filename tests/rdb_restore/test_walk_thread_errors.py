"""A batch of small files is written on the walk's thread (rdb_restore.writer.INLINE_BYTES),
so a write error or a Ctrl-C there comes out of ``flush`` in the middle of the walk: the
restore stops with that error, leaves no TARGET, and keeps no descriptor open. Files rebuilt
(TreeWriter._write) and files copied as they are (rdb_fastio, in runs across directories,
here on the pool) alike."""

from __future__ import annotations

import errno
import gc
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.rdb_restore.helpers import one_by_one, plan_class, take_way

import rdb_mirror as mirror
from rdb_fastio import Copied, CopyStatus, FileCopy, copy_files
from rdb_restore import writer as writer_module
from rdb_restore.restore import restore
from rdb_restore.writer import RestoreOptions


def _no_space() -> BaseException:
    return OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("way", ["copied", "rebuilt"])
@pytest.mark.parametrize("failure", [_no_space, KeyboardInterrupt], ids=["ENOSPC", "Ctrl-C"])
def test_an_error_writing_on_the_walks_thread_stops_the_restore_cleanly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[], BaseException],
    way: str,
) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    for d in range(6):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for f in range(10):
            (src / f"d{d}" / f"f{f:02d}").write_bytes(b"%d %d\n" % (d, f))
    mirror.backup(src, repo, mirror.BackupOptions(current_time=1_700_000_000))
    real_write = writer_module.TreeWriter._write
    written = [0]
    copied = [0]  # the files that went to copy_files

    def fifteenth_fails(self: writer_module.TreeWriter, parent: object, item: object) -> int:
        written[0] += 1
        if written[0] == 15:  # in d1, whose batch is written when d1/sub is made
            raise failure()
        return real_write(self, parent, item)  # type: ignore[arg-type]

    real_copy = copy_files

    def copy_fifteenth_fails(
        src_dir: int, dst_dir: int, copies: Sequence[FileCopy]
    ) -> list[Copied]:
        results = []
        for copy in copies:
            written[0] += 1
            copied[0] += 1
            if written[0] != 15:
                results.extend(real_copy(src_dir, dst_dir, [copy]))
            elif failure is _no_space:
                results.append(Copied(CopyStatus.WRITE, errno.ENOSPC, 0, ""))
            else:
                raise failure()
        return results

    take_way(monkeypatch, way)
    monkeypatch.setattr(writer_module.TreeWriter, "_write", fifteenth_fails)
    monkeypatch.setattr(writer_module, "copy_files", copy_fifteenth_fails)
    monkeypatch.setattr(writer_module, "CopyPlan", plan_class(one_by_one(copy_fifteenth_fails)))
    out = tmp_path / "out"
    out.mkdir()
    gc.collect()
    open_before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError if failure is _no_space else KeyboardInterrupt) as raised:
        restore(str(repo), str(out / "target"), options=RestoreOptions(workers=2))
    if isinstance(raised.value, OSError):
        assert raised.value.errno == errno.ENOSPC
    assert copied[0] == (written[0] if way == "copied" else 0)  # the way under test was taken
    del raised
    gc.collect()  # the traceback's frames hold the metadata reader until collected
    assert sorted(os.listdir("/proc/self/fd")) == open_before
    assert os.listdir(out) == []
