"""IncrementFile made from a listing (directory + raw name) is the same value as one made
from a path: equal, ordered and hashed alike, with the same path and raw name."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdb_format.increments import parse_increment_name
from rdb_increment.rebuild import IncrementFile, plan_rebuild


class _Directory:
    """Stands for a listed directory; counts how often its path is asked for."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.asked = 0

    @property
    def path(self) -> Path:
        self.asked += 1
        return self._path


RAW = [
    b"notes.txt.2023-11-14T22:13:20Z.diff.gz",
    b"notes.txt.2023-11-15T22:13:20Z.snapshot.gz",
    b"notes.txt.2023-11-13T22:13:20Z.missing",
]


def _both(raw: bytes, where: Path) -> tuple[IncrementFile, IncrementFile, _Directory]:
    name = parse_increment_name(raw)
    assert name is not None
    directory = _Directory(where)
    listed = IncrementFile(name, directory=directory, raw_name=raw)
    return IncrementFile(name, where / raw.decode()), listed, directory


def test_listed_and_eager_forms_are_the_same_value(tmp_path: Path) -> None:
    pairs = [_both(raw, tmp_path) for raw in RAW]
    for eager, listed, directory in pairs:
        assert listed.raw_name == eager.raw_name
        assert directory.asked == 0  # the raw name needs no path
        other = IncrementFile(listed.name, tmp_path / "elsewhere" / eager.path.name)
        assert listed != other and (listed < other) == (eager < other)
        assert listed == eager and hash(listed) == hash(eager)
        assert listed.path == eager.path == tmp_path / eager.path.name
        assert (listed.time, listed.kind) == (eager.time, eager.kind)
    eager_sorted = sorted(eager for eager, _, _ in pairs)
    listed_sorted = sorted(listed for _, listed, _ in pairs)
    assert listed_sorted == eager_sorted
    assert [inc.kind for inc in listed_sorted] == ["missing", "diff", "snapshot"]


def test_a_rebuild_plan_from_listed_files_needs_no_path(tmp_path: Path) -> None:
    pairs = [_both(raw, tmp_path) for raw in RAW[:2]]
    plan = plan_rebuild([listed for _, listed, _ in pairs], 1700000000)
    assert all(directory.asked == 0 for _, _, directory in pairs)  # sorted by name alone
    assert plan.base is not None and plan.base.kind == "snapshot"
    assert [inc.kind for inc in plan.diffs_newest_first] == ["diff"]
    assert plan == plan_rebuild([eager for eager, _, _ in pairs], 1700000000)


def test_an_increment_file_needs_a_path_or_where_it_was_listed() -> None:
    name = parse_increment_name(RAW[0])
    assert name is not None
    with pytest.raises(TypeError):
        IncrementFile(name)
