"""record_from_stat: a regular file with one link and owners already named (its short way)
gets the record the general way gives, field for field, whatever its stat says."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rdb_format.metadata import Record
from rdb_mirror.fsmeta import Names, record_from_stat


class _Uncached(Names):
    """Names that never fill the caches the short way reads: every record the general way."""

    def __init__(self, users: dict[int, str | None], groups: dict[int, str | None]) -> None:
        super().__init__()
        self._known = (users, groups)

    def user(self, uid: int) -> str | None:
        return self._known[0][uid]

    def group(self, gid: int) -> str | None:
        return self._known[1][gid]


def _cached(users: dict[int, str | None], groups: dict[int, str | None]) -> Names:
    names = Names()
    names.users.update(users)
    names.groups.update(groups)
    return names


ids = st.integers(0, 2**32 - 1)
owner_names = st.one_of(st.none(), st.sampled_from(["root", "user", "caf\u00e9", "x" * 32]))
components = st.binary(min_size=1, max_size=12).filter(
    lambda c: b"/" not in c and b"\0" not in c and c not in (b".", b"..")
)


@st.composite
def stats(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from([0o100000, 0o100000, 0o040000, 0o120000, 0o010000]))
    return SimpleNamespace(
        st_mode=kind | draw(st.integers(0, 0o7777)),
        st_nlink=draw(st.sampled_from([1, 1, 0, 2, 7])),
        st_uid=draw(ids),
        st_gid=draw(ids),
        st_size=draw(st.integers(0, 2**63 - 1)),
        st_mtime_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        st_ino=draw(st.integers(1, 2**64 - 1)),
        st_dev=draw(st.integers(0, 2**64 - 1)),
        st_rdev=0,
    )


@settings(max_examples=400)
@given(
    index=st.lists(components, max_size=3).map(tuple),
    st_=stats(),
    uname=owner_names,
    gname=owner_names,
    target=st.one_of(st.none(), st.binary(min_size=1, max_size=8)),
)
def test_the_short_way_gives_the_general_record(
    index: tuple[bytes, ...], st_: Any, uname: str | None, gname: str | None, target: bytes | None
) -> None:
    users, groups = {st_.st_uid: uname}, {st_.st_gid: gname}
    short = record_from_stat(index, st_, _cached(users, groups), target)
    general = record_from_stat(index, st_, _Uncached(users, groups), target)
    assert short == general
    assert type(short) is type(general)
    if short is not None and st_.st_mode & 0o170000 == 0o100000 and st_.st_nlink == 1:
        assert short == Record(
            b"/".join(index) if index else b".",
            "reg",
            size=st_.st_size,
            mod_time=st_.st_mtime_ns // 10**9,
            uid=st_.st_uid,
            uname=uname,
            gid=st_.st_gid,
            gname=gname,
            permissions=st_.st_mode & 0o7777,
        )


def test_an_owner_not_named_yet_is_looked_up_and_then_cached(tmp_path: Any) -> None:
    """The short way is taken only once both names are cached: the first record asks."""
    path = tmp_path / "f"
    path.write_bytes(b"data")
    st_ = path.stat()
    names = Names()
    first = record_from_stat((b"f",), st_, names)
    assert st_.st_uid in names.users and st_.st_gid in names.groups
    assert record_from_stat((b"f",), st_, names) == first
    assert first is not None and first.type == "reg" and first.size == 4
