"""Which sessions a removal drops: --older-than, --session, --keep and the calendar rules."""

from __future__ import annotations

import calendar
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.rdb_increment.removal import utc_zone as utc_zone

from rdb_format.errors import TimeSpecError, UsageError
from rdb_increment.sessions import RetentionPolicy, Window, plan_removal

DAY = 86_400


def utc(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M"))


SESSIONS = [utc(f"2026-01-{d:02d} 10:00") for d in (1, 2, 3, 5, 8)]


def test_older_than_drops_strictly_older_sessions_like_rdiff_backup() -> None:
    plan = plan_removal(SESSIONS, RetentionPolicy(older_than=SESSIONS[2]))
    assert plan.dropped == tuple(SESSIONS[:2])
    assert plan.kept == tuple(SESSIONS[2:])
    assert plan.prefix == plan.dropped and plan.windows == ()
    assert plan.cutoff == SESSIONS[2]


@pytest.mark.parametrize(
    ("spec", "dropped"),
    [
        ("2026-01-03", 2),  # a date: local midnight
        ("2026-01-03T10:00:01Z", 3),
        ("2026-01-03T11:00:00+01:00", 2),  # the same instant as the third session
        (str(SESSIONS[3]), 3),  # epoch seconds
        ("1B", 3),  # older than the second newest
        ("0B", 4),  # older than the newest: all but it
        ("9B", 0),  # clamped to the oldest: nothing is older
        ("3D", 4),  # now minus an interval: 2026-01-05 12:00
        ("now", 4),
    ],
)
def test_every_time_spec_form_is_accepted(spec: str, dropped: int) -> None:
    now = utc("2026-01-08 12:00")
    plan = plan_removal(SESSIONS, RetentionPolicy(older_than=spec), now=now)
    assert plan.dropped == tuple(SESSIONS[:dropped])


def test_the_newest_session_is_kept_even_when_time_is_newer_than_everything() -> None:
    plan = plan_removal(SESSIONS, RetentionPolicy(older_than=SESSIONS[-1] + 10 * DAY))
    assert plan.kept == (SESSIONS[-1],)


def test_unknown_time_spec_is_a_usage_error() -> None:
    with pytest.raises(TimeSpecError, match="cannot understand time 'yesterday'"):
        plan_removal(SESSIONS, RetentionPolicy(older_than="yesterday"))


def test_keep_last_keeps_the_newest() -> None:
    plan = plan_removal(SESSIONS, RetentionPolicy(keep_last=2))
    assert plan.kept == tuple(SESSIONS[-2:])
    assert plan_removal(SESSIONS, RetentionPolicy(keep_last=99)).dropped == ()


def test_named_sessions_are_removed_wherever_they_are() -> None:
    plan = plan_removal(
        SESSIONS, RetentionPolicy(sessions=("2026-01-02T10:00:00Z", str(SESSIONS[3])))
    )
    assert plan.dropped == (SESSIONS[1], SESSIONS[3])
    assert plan.windows == (
        Window(SESSIONS[0], (SESSIONS[1],), SESSIONS[2]),
        Window(SESSIONS[2], (SESSIONS[3],), SESSIONS[4]),
    )
    assert plan.prefix == ()


def test_naming_a_time_that_is_no_session_or_the_newest_is_refused() -> None:
    with pytest.raises(UsageError, match="no session at 2026-01-04T00:00:00Z"):
        plan_removal(SESSIONS, RetentionPolicy(sessions=("2026-01-04",)))
    with pytest.raises(UsageError, match="holds the mirror and cannot be removed"):
        plan_removal(SESSIONS, RetentionPolicy(sessions=("0B",)))


def test_calendar_rules_keep_the_newest_session_of_each_period() -> None:
    hourly = [utc("2026-03-01 00:00") + n * 3 * 3600 for n in range(8 * 30)]  # 30 days
    plan = plan_removal(hourly, RetentionPolicy(keep_daily=7))
    days = sorted({time.gmtime(t)[:3] for t in plan.kept})
    assert len(plan.kept) == 7 and len(days) == 7
    for kept in plan.kept:  # the last one of its day
        assert time.gmtime(kept + 3 * 3600)[:3] != time.gmtime(kept)[:3] or kept == hourly[-1]
    weekly = plan_removal(hourly, RetentionPolicy(keep_weekly=3))
    weeks = {time.strftime("%G-%V", time.gmtime(t)) for t in weekly.kept}
    assert len(weekly.kept) == 3 and len(weeks) == 3
    monthly = plan_removal(hourly, RetentionPolicy(keep_monthly=12))
    assert monthly.kept == (utc("2026-03-30 21:00"),)  # March has one newest; April none yet


def test_rules_are_a_union() -> None:
    daily = [utc("2026-01-01 12:00") + n * DAY for n in range(75)]  # up to March 16
    alone = plan_removal(daily, RetentionPolicy(keep_daily=3))
    both = plan_removal(daily, RetentionPolicy(keep_daily=3, keep_monthly=3))
    assert set(alone.kept) < set(both.kept)
    newest_of_months = {utc("2026-01-31 12:00"), utc("2026-02-28 12:00")}
    assert set(both.kept) == set(alone.kept) | newest_of_months


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (RetentionPolicy(), "say what to remove"),
        (RetentionPolicy(older_than="1D", keep_last=3), "cannot be combined"),
        (RetentionPolicy(keep_daily=2, sessions=("1B",)), "cannot be combined"),
        (RetentionPolicy(keep_weekly=0), "--keep-weekly must be at least 1"),
    ],
)
def test_bad_policies(policy: RetentionPolicy, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_removal(SESSIONS, policy)


@given(
    st.lists(st.integers(0, 400 * DAY), min_size=1, max_size=40, unique=True),
    st.one_of(st.none(), st.integers(1, 10)),
    st.one_of(st.none(), st.integers(1, 5)),
    st.one_of(st.none(), st.integers(1, 5)),
    st.one_of(st.none(), st.integers(1, 5)),
)
def test_plans_partition_the_sessions_and_keep_the_newest(
    offsets: list[int], last: int | None, daily: int | None, weekly: int | None, monthly: int | None
) -> None:
    sessions = [utc("2025-01-01 00:00") + o for o in offsets]
    policy = RetentionPolicy(
        keep_last=last, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly
    )
    if not policy.keep_rules:
        policy = RetentionPolicy(keep_last=1)
    plan = plan_removal(sessions, policy)
    assert sorted(plan.kept + plan.dropped) == sorted(sessions)
    assert max(sessions) in plan.kept
    if last is not None:
        assert set(sorted(sessions)[-last:]) <= set(plan.kept)
    # the windows and the prefix account for every dropped session exactly once
    in_windows = [t for w in plan.windows for t in w.dropped]
    assert sorted(in_windows + list(plan.prefix)) == list(plan.dropped)
    for window in plan.windows:
        assert window.previous in plan.kept and window.next in plan.kept
        assert all(window.previous < t < window.next for t in window.dropped)
