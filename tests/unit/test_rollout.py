"""The rollout rules (pure): the setting's forms, stable percentage cohorts, and the
grace period's end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pricing_core.domain.rollout import Rollout, Stage, bucket, stage

D = date(2026, 12, 1)
BEFORE = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
AFTER = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", Rollout("all")),
        (" None ", Rollout("none")),
        ("created_after:2026-12-01", Rollout("created_after", since=D)),
        ("percent:0", Rollout("percent", percent=0)),
        ("percent:100", Rollout("percent", percent=100)),
    ],
)
def test_the_setting_forms_parse(text, expected):
    assert Rollout.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "half", "percent:101", "percent:-1", "percent:5.5", "created_after:12/01"]
)
def test_a_bad_setting_names_the_forms(text):
    with pytest.raises(ValueError, match="created_after:YYYY-MM-DD or percent:0..100"):
        Rollout.parse(text)


def test_created_after_includes_the_day_itself_and_later_accounts_only():
    rollout = Rollout.parse("created_after:2026-12-01")
    assert not rollout.includes("a", BEFORE)
    assert rollout.includes("a", AFTER)


def test_percent_cohorts_are_stable_nested_and_about_the_right_size():
    ids = [f"acct-{k}" for k in range(2000)]
    created = BEFORE
    tenth = {i for i in ids if Rollout.parse("percent:10").includes(i, created)}
    half = {i for i in ids if Rollout.parse("percent:50").includes(i, created)}
    assert tenth <= half  # growing the percentage never drops an account
    assert 150 <= len(tenth) <= 250 and 900 <= len(half) <= 1100
    assert all(0 <= bucket(i) < 100 for i in ids)
    assert bucket("acct-7") == bucket("acct-7")


def test_grace_counts_from_the_later_of_creation_and_the_start_day():
    rollout = Rollout.parse("all")
    now = AFTER + timedelta(days=3)
    assert stage(rollout, "a", AFTER, now=now) == (Stage.ON, None)
    assert stage(rollout, "a", AFTER, now=now, grace_days=7) == (
        Stage.GRACE,
        AFTER + timedelta(days=7),
    )
    old = AFTER - timedelta(days=400)
    assert stage(rollout, "a", old, now=now, grace_days=7)[0] is Stage.ON
    started = date(2026, 12, 2)
    assert stage(rollout, "a", old, now=now, grace_days=7, started_on=started) == (
        Stage.GRACE,
        datetime(2026, 12, 9, tzinfo=UTC),
    )
    assert stage(Rollout.parse("none"), "a", AFTER, now=now, grace_days=7) == (Stage.OFF, None)
