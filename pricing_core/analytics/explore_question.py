"""Explore's question: what to show (metric, groups, step, days, filters), who may
ask for what, and how a question travels in a URL. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from urllib.parse import urlencode

from pricing_core.analytics.common import _target
from pricing_core.domain.principal import Principal, require_admin

MAX_HOURLY_DAYS = 7
TOP_GROUPS = 12  # groups beyond the biggest this many are summed as "other"
OTHER = "other"
NO_CHAT = "(no chat)"  # the group of events recorded without a chat id
NO_API_KEY = "(no API key)"  # events recorded by the library or the CLI, not the API


class Metric(StrEnum):
    COST = "cost"  # Decimal USD charged
    PROVIDER_COST = "provider_cost"  # Decimal USD (admins)
    REQUESTS = "requests"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CACHED_TOKENS = "cached_tokens"
    AVG_COST = "avg_cost"  # Decimal USD per request

    @property
    def money(self) -> bool:
        return self in (Metric.COST, Metric.PROVIDER_COST, Metric.AVG_COST)


class Group(StrEnum):
    MODEL = "model"
    PROVIDER = "provider"
    OPERATION = "operation"
    USER = "user"
    CHAT = "chat"  # one account at a time
    API_KEY = "api_key"  # the key a call came through (the event's metadata)
    PLAN = "plan"  # the account's plan when the call was made ("payg": none)
    ACCOUNT = "account"  # admins

    @property
    def column(self) -> str:
        names = {"user": "user_id", "account": "account_id", "chat": "chat_id"}
        return names.get(self.value, self.value)

    @property
    def in_rollups(self) -> bool:
        """False for the groups only usage events know (read from `usage_events`)."""
        return self not in (Group.CHAT, Group.API_KEY, Group.PLAN)


def available_groups(viewer: Principal, account_id: str | None = None) -> list[Group]:
    """The groups `viewer` may ask for: accounts for admins over every account
    (`account_id="*"`), chats for one account."""
    everyone = account_id == "*"
    skip = {Group.CHAT} if everyone else {Group.ACCOUNT}
    return [g for g in Group if g not in skip and (g is not Group.ACCOUNT or viewer.is_admin)]


class Step(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Question:
    """What to show. `filters`: dimension -> the values kept (empty: all)."""

    start: date
    end: date
    metric: Metric = Metric.COST
    group: Group = Group.MODEL
    subgroup: Group | None = None
    step: Step = Step.DAY
    cumulative: bool = False
    filters: dict[Group, tuple[str, ...]] = field(default_factory=dict)


def url_params(question: Question, *, scope: str | None = None) -> dict[str, str | list[str]]:
    """The question as URL query parameters (`from`, `to`, `metric`, `step`, `group`,
    `cum`, `sub` when set, `scope` for an admin's account, `f_<dimension>` per filter),
    so a view can be shared and survives a reload."""
    params: dict[str, str | list[str]] = {
        "from": question.start.isoformat(),
        "to": question.end.isoformat(),
        "metric": question.metric.value,
        "step": question.step.value,
        "group": question.group.value,
        "cum": "1" if question.cumulative else "0",
    }
    if question.subgroup is not None:
        params["sub"] = question.subgroup.value
    if scope is not None:
        params["scope"] = scope
    for dim, kept in question.filters.items():
        if kept:
            params[f"f_{dim.value}"] = list(kept)
    return params


def replace_url_params(
    current: dict[str, list[str]], question: Question, *, scope: str | None = None
) -> dict[str, list[str]]:
    """The page's URL query parameters after asking `question`: other pages' parameters
    (e.g. `account`) stay, the question's replace the previous question's (its `sub`
    and `f_<dimension>` filters included)."""
    kept = {k: v for k, v in current.items() if not (k.startswith("f_") or k == "sub")}
    new = url_params(question, scope=scope)
    kept.update({k: v if isinstance(v, list) else [v] for k, v in new.items()})
    return kept


def hourly_view(
    start: date, end: date, *, filters: dict[Group, tuple[str, ...]] | None = None
) -> str | None:
    """The relative URL ("explore?from=...&step=hour...") of Explore's hour-by-hour cost
    of [start, end] by model (the Usage page's rollups are daily), or None for a range
    longer than MAX_HOURLY_DAYS."""
    if (end - start).days >= MAX_HOURLY_DAYS:
        return None
    params = url_params(Question(start, end, step=Step.HOUR, filters=filters or {}))
    return "explore?" + urlencode(params, doseq=True)


def _scope(viewer: Principal, account_id: str | None) -> str | None:
    """The one account asked about, or None for every account ("*": admins only).
    Raises: PermissionDenied."""
    if account_id == "*":
        require_admin(viewer)
        return None
    return _target(viewer, account_id)
