"""authorize / settle / release, limits, budgets, free tier and flags on both back ends."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from pricing_core.adapters.schema import budgets, usage_events
from pricing_core.config import get_settings
from pricing_core.domain.errors import (
    DuplicateRequest,
    InsufficientBalance,
    PricingError,
    UnknownModel,
)
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.holds import (
    HoldNotActive,
    HoldStatus,
    count_holds,
    expire_holds,
    get_hold,
    release,
)
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.limits.alerts import list_alerts
from pricing_core.limits.budgets import budget_report
from pricing_core.limits.rules import (
    LimitKind,
    SpendingLimits,
    SpendLimitExceeded,
    TokenLimitExceeded,
    set_limits,
)
from pricing_core.metering.authorize import authorize
from pricing_core.metering.estimate import HEURISTIC, count_prompt_tokens, estimate_cost
from pricing_core.metering.record import record_request_usage, record_usage
from pricing_core.metering.settle import settle

NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
NANO = Decimal("1e-9")


def price(input_tokens: int, output_tokens: int, at: datetime = NOW) -> Decimal:
    """Independent: genai-prices' provider cost x the default markup 1.25, half-even."""
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=at,
    ).total_price
    return (exact * Decimal("1.25")).quantize(NANO, ROUND_HALF_EVEN)


def auth(engine, request_id: str = "r1", *, now: datetime = NOW, **kw):
    args = dict(
        account_id="acct",
        user_id="acct",
        model="gpt-4o-mini",
        estimated_input_tokens=1000,
        max_output_tokens=500,
        request_id=request_id,
        now=now,
    )
    args.update(kw)
    return authorize(engine, **args)


def set_budget(
    engine, limit: str, *, user_id: str = "", block: bool = True, thresholds: str = "50,80,100"
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(budgets).values(
                account_id="acct",
                user_id=user_id,
                monthly_limit=Decimal(limit),
                thresholds=thresholds,
                block_at_limit=block,
                updated_at=NOW,
            )
        )


def use(
    engine, request_id: str, at: datetime, *, inp: int = 1000, out: int = 500, user_id: str = "acct"
):
    return record_usage(
        engine,
        UsageEvent(
            request_id=request_id,
            account_id="acct",
            user_id=user_id,
            operation="chat_message",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=inp,
            output_tokens=out,
            created_at=at,
        ),
        now=at,
    )


@pytest.fixture
def acct(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("5"))
    return engine


def zone(monkeypatch, name: str) -> None:
    monkeypatch.setenv("PRICING_TIMEZONE", name)
    get_settings.cache_clear()


# ---------------------------------------------------------------- the happy path


def test_authorizing_holds_the_estimate_and_settling_charges_the_actual_price(acct):
    hold = auth(acct)
    assert hold.amount == price(1000, 500) and hold.status is HoldStatus.ACTIVE
    assert get_wallet(acct, "acct").held == hold.amount
    assert get_wallet(acct, "acct").balance == Decimal("5")

    result = settle(acct, hold, input_tokens=900, output_tokens=120, now=NOW)
    assert result.usage.price == price(900, 120)
    assert not result.exceeded_hold and result.hold.status is HoldStatus.SETTLED
    wallet = get_wallet(acct, "acct")
    assert (wallet.balance, wallet.held) == (Decimal("5") - price(900, 120), 0)
    assert verify_ledger(acct).ok


def test_a_replayed_settlement_is_charged_once(acct):
    hold = auth(acct)
    first = settle(acct, hold, input_tokens=900, output_tokens=120, now=NOW)
    again = settle(acct, hold.id, account_id="acct", input_tokens=900, output_tokens=120, now=NOW)
    assert again.usage.replayed and again.usage.event_id == first.usage.event_id
    assert get_wallet(acct, "acct").balance == Decimal("5") - first.usage.price
    with pytest.raises(DuplicateRequest, match="r1"):
        settle(acct, hold, input_tokens=901, output_tokens=120, now=NOW)


def test_a_retried_authorization_returns_the_same_hold(acct):
    first = auth(acct)
    assert auth(acct).id == first.id
    assert get_wallet(acct, "acct").held == first.amount
    with pytest.raises(DuplicateRequest, match="different call"):
        auth(acct, max_output_tokens=501)


def test_a_cost_above_the_hold_is_still_charged_and_the_event_flagged(acct):
    hold = auth(acct, max_output_tokens=10)
    result = settle(acct, hold, input_tokens=1000, output_tokens=4000, now=NOW)
    assert result.exceeded_hold and result.usage.price == price(1000, 4000) > hold.amount
    assert get_wallet(acct, "acct").balance == Decimal("5") - price(1000, 4000)
    with acct.connect() as conn:
        flag, hold_id = conn.execute(
            select(usage_events.c.exceeded_hold, usage_events.c.hold_id)
        ).one()
    assert flag is True and hold_id == hold.id
    assert verify_ledger(acct).ok


def test_releasing_a_hold_returns_the_money_and_it_cannot_be_settled_after(acct):
    hold = auth(acct)
    released = release(acct, "acct", hold.id, now=NOW)
    assert released.status is HoldStatus.RELEASED
    assert release(acct, "acct", hold.id, now=NOW).status is HoldStatus.RELEASED  # idempotent
    assert get_wallet(acct, "acct").held == 0
    with pytest.raises(HoldNotActive, match="released"):
        settle(acct, hold, input_tokens=10, output_tokens=10, now=NOW)
    assert verify_ledger(acct).ok and verify_ledger(acct).events == 0


def test_holds_expire_lazily_and_by_the_expire_command(acct, monkeypatch):
    monkeypatch.setenv("PRICING_HOLD_TIMEOUT_SECONDS", "60")
    get_settings.cache_clear()
    stale = auth(acct, "old")
    assert stale.expires_at == NOW + timedelta(seconds=60)
    auth(acct, "new", now=NOW + timedelta(seconds=61))  # expires "old" on the way
    assert get_hold(acct, "acct", stale.id).status is HoldStatus.EXPIRED
    with pytest.raises(HoldNotActive, match="expired"):
        settle(acct, stale, input_tokens=1, output_tokens=1, now=NOW + timedelta(seconds=62))
    assert expire_holds(acct, now=NOW + timedelta(seconds=200)) == 1  # "new"
    assert count_holds(acct, "acct")[HoldStatus.EXPIRED] == 2
    assert get_wallet(acct, "acct").held == 0
    assert verify_ledger(acct).ok


# ---------------------------------------------------------------- refusals


def test_insufficient_balance_is_refused_with_balance_and_required(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("0.02"))
    est = price(100_000, 4000)
    with pytest.raises(InsufficientBalance) as info:
        auth(engine, estimated_input_tokens=100_000, max_output_tokens=4000)
    assert (info.value.balance, info.value.available, info.value.required) == (
        Decimal("0.02"),
        Decimal("0.02"),
        est,
    )
    assert count_holds(engine, "acct")[HoldStatus.ACTIVE] == 0
    assert get_wallet(engine, "acct").held == 0


def test_an_available_balance_below_the_minimum_is_refused_even_for_a_tiny_estimate(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("0.009"))
    with pytest.raises(InsufficientBalance) as info:
        auth(engine, estimated_input_tokens=10, max_output_tokens=10)
    assert info.value.required == Decimal("0.01")


def test_a_debit_above_a_positive_available_balance_is_refused(engine):
    # Regression: the floor check once compared nano-USD with USD.
    create_account(engine, "acct", name="A", opening_credit=Decimal("0.001"))
    with pytest.raises(InsufficientBalance):
        use(engine, "big", NOW, inp=100_000, out=10_000)
    assert get_wallet(engine, "acct").balance == Decimal("0.001")


def test_an_unknown_model_is_refused_before_anything_is_held(acct):
    with pytest.raises(UnknownModel, match="no-such-model"):
        auth(acct, model="no-such-model")
    assert get_wallet(acct, "acct").held == 0


def test_a_user_of_another_account_cannot_be_authorized(acct):
    create_account(acct, "other", name="O")
    with pytest.raises(PricingError, match="no user 'other' on account 'acct'"):
        auth(acct, user_id="other")


@pytest.mark.parametrize(
    ("loosen", "expected"),
    [
        ((), LimitKind.MAX_INPUT_TOKENS),
        (("tokens",), LimitKind.DAILY_COST_CAP),
        (("tokens", "daily"), LimitKind.MONTHLY_COST_CAP),
        (("tokens", "daily", "monthly"), LimitKind.MONTHLY_BUDGET),
        (("tokens", "daily", "monthly", "budget"), "balance"),
    ],
)
def test_checks_run_in_order_tokens_caps_budget_balance(engine, loosen, expected):
    create_account(engine, "acct", name="A", opening_credit=Decimal("0.0001"))
    est = price(1000, 500)
    set_limits(
        engine,
        SpendingLimits(
            "acct",
            "",
            "chat_message",
            max_input_tokens=10_000 if "tokens" in loosen else 999,
            daily_cost_cap=None if "daily" in loosen else est - NANO,
            monthly_cost_cap=None if "monthly" in loosen else est - NANO,
        ),
    )
    if "budget" not in loosen:
        set_budget(engine, "0.0001")
    with pytest.raises(PricingError) as info:
        auth(engine)
    if expected == "balance":
        assert isinstance(info.value, InsufficientBalance)
    else:
        assert info.value.limit is expected
        assert str(expected) in str(info.value)


def test_token_limits_name_the_limit_and_are_per_message(acct):
    set_limits(acct, SpendingLimits("acct", "", "chat_message", max_output_tokens=400))
    with pytest.raises(
        TokenLimitExceeded,
        match="max_output_tokens of account 'acct' for operation 'chat_message' is 400",
    ):
        auth(acct)
    assert auth(acct, max_output_tokens=400).amount == price(1000, 400)
    auth(acct, "other-op", operation="code_completion")  # another operation: no limit


def test_operator_defaults_apply_until_the_account_overrides_them(acct):
    set_limits(acct, SpendingLimits("", "", "*", max_total_tokens=1000))
    with pytest.raises(TokenLimitExceeded, match="max_total_tokens"):
        auth(acct)
    set_limits(acct, SpendingLimits("acct", "", "*", max_total_tokens=2000))
    auth(acct)
    set_limits(acct, SpendingLimits("acct", "acct", "*", max_total_tokens=1200))  # user: stricter
    with pytest.raises(TokenLimitExceeded, match="user 'acct' of account 'acct'"):
        auth(acct, "r2")


def test_a_daily_cost_cap_counts_active_holds_and_resets_at_local_midnight(acct, monkeypatch):
    zone(monkeypatch, "America/New_York")
    est = price(1000, 500)
    set_limits(acct, SpendingLimits("acct", "", "*", daily_cost_cap=est * 2))
    late = datetime(2025, 3, 13, 3, 30, tzinfo=UTC)  # 23:30 on March 12 in New York
    auth(acct, "a", now=late)
    auth(acct, "b", now=late)
    with pytest.raises(SpendLimitExceeded) as info:
        auth(acct, "c", now=late)
    assert info.value.limit is LimitKind.DAILY_COST_CAP
    assert info.value.current == est * 2 and info.value.retry_after == 1800
    release(acct, "acct", get_hold_by_request(acct, "a"), now=late)
    auth(acct, "c", now=late)  # a released hold no longer counts
    # Local midnight (04:00 UTC): holds still count (promised money), new spend does not.
    for rid in ("b", "c"):
        release(acct, "acct", get_hold_by_request(acct, rid), now=late)
    use(acct, "spent", late)
    use(acct, "spent2", late)
    with pytest.raises(SpendLimitExceeded):
        auth(acct, "d", now=late)
    auth(acct, "d", now=datetime(2025, 3, 13, 4, 0, tzinfo=UTC))


def get_hold_by_request(engine, request_id: str) -> str:
    from pricing_core.adapters.schema import holds

    with engine.connect() as conn:
        return conn.execute(select(holds.c.id).where(holds.c.request_id == request_id)).scalar_one()


# ---------------------------------------------------------------- budget periods


@pytest.mark.parametrize(
    ("spent_at", "asked_at", "same_month"),
    [
        # Berlin is UTC+1 in winter: 23:30 UTC on Jan 31 is February 1st there.
        (
            datetime(2025, 1, 31, 22, 30, tzinfo=UTC),
            datetime(2025, 1, 31, 23, 30, tzinfo=UTC),
            False,
        ),
        (
            datetime(2025, 1, 31, 23, 30, tzinfo=UTC),
            datetime(2025, 1, 31, 23, 45, tzinfo=UTC),
            True,
        ),
        # After the March DST change Berlin is UTC+2: April starts at 22:00 UTC on Mar 31.
        (
            datetime(2025, 3, 31, 21, 30, tzinfo=UTC),
            datetime(2025, 3, 31, 22, 30, tzinfo=UTC),
            False,
        ),
        (
            datetime(2025, 3, 31, 21, 30, tzinfo=UTC),
            datetime(2025, 3, 31, 21, 59, tzinfo=UTC),
            True,
        ),
        # Spend early in March (UTC+1) and asked late in March (UTC+2): same month.
        (datetime(2025, 2, 28, 23, 5, tzinfo=UTC), datetime(2025, 3, 31, 21, 55, tzinfo=UTC), True),
    ],
)
def test_a_blocking_budget_resets_on_the_local_calendar_month(
    acct, monkeypatch, spent_at, asked_at, same_month
):
    zone(monkeypatch, "Europe/Berlin")
    est = price(1000, 500)
    set_budget(acct, str(est * 2 - NANO))  # room for one more request, not two
    use(acct, "spent", spent_at)
    if same_month:
        with pytest.raises(SpendLimitExceeded, match="monthly_budget of account 'acct'") as info:
            auth(acct, now=asked_at)
        assert info.value.current == est
    else:
        assert auth(acct, now=asked_at).amount == est


def test_a_users_blocking_budget_counts_only_that_users_spend(acct):
    from pricing_core.ledger.wallets import ensure_user

    ensure_user(acct, "acct", "bob")
    est = price(1000, 500)
    set_budget(acct, str(est), user_id="bob")
    use(acct, "alice-spend", NOW)  # the account owner's spend does not count for bob
    auth(acct, "b1", user_id="bob")
    with pytest.raises(SpendLimitExceeded, match="user 'bob'"):
        auth(acct, "b2", user_id="bob")
    auth(acct, "a2")  # the owner is not limited by bob's budget


def test_a_non_blocking_budget_never_refuses(acct):
    set_budget(acct, "0.000001", block=False)
    auth(acct)


def test_the_operator_default_budget_applies_to_accounts_without_one(acct, monkeypatch):
    monkeypatch.setenv("PRICING_DEFAULT_MONTHLY_BUDGET", "0.0001")
    get_settings.cache_clear()
    with pytest.raises(SpendLimitExceeded, match="monthly_budget"):
        auth(acct)
    set_budget(acct, "1")
    auth(acct)


# ---------------------------------------------------------------- alerts


def test_alerts_are_stored_once_per_threshold_per_month(acct, monkeypatch):
    zone(monkeypatch, "Europe/Berlin")
    one = price(1000, 500)
    set_budget(acct, str(one * 4), block=False)
    jan = datetime(2025, 1, 20, tzinfo=UTC)
    for i in range(5):
        hold = auth(acct, f"j{i}", now=jan)
        settle(acct, hold, input_tokens=1000, output_tokens=500, now=jan)
    assert sorted(a.threshold for a in list_alerts(acct, "acct")) == [50, 80, 100]
    feb = datetime(2025, 1, 31, 23, 30, tzinfo=UTC)  # already February in Berlin
    for i in range(2):
        record_request_usage(
            acct,
            UsageEvent(
                request_id=f"f{i}",
                account_id="acct",
                user_id="acct",
                operation="chat_message",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000,
                output_tokens=500,
                created_at=feb,
            ),
            now=feb,
        )
    assert [a.threshold for a in list_alerts(acct, "acct", period="2025-02")] == [50]
    status = budget_report(acct, "acct", now=feb)
    assert status.period == "2025-02" and status.spend == one * 2 and status.crossed == (50,)


def test_alerts_are_posted_signed_to_the_operator_webhook(acct, monkeypatch):
    received: list[tuple[bytes, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["X-Pricing-Signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv(
            "PRICING_BUDGET_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook"
        )
        monkeypatch.setenv("PRICING_BUDGET_WEBHOOK_SECRET", "whsec_test")
        get_settings.cache_clear()
        set_budget(acct, "0.0001", block=False, thresholds="100")
        hold = auth(acct)
        settle(acct, hold, input_tokens=1000, output_tokens=500, now=NOW)
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 1
    body, signature = received[0]
    stamp, mac = dict(p.split("=", 1) for p in signature.split(",")).values()
    expected = hmac.new(b"whsec_test", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    payload = json.loads(body)
    assert payload["threshold_percent"] == 100 and payload["spend"] == str(
        price(1000, 500).normalize()
    )
    assert list_alerts(acct, "acct")[0].notified_at is not None


# ---------------------------------------------------------------- anonymous users and flags


def test_anonymous_requests_are_recorded_but_never_debited_and_limited_per_day(acct, monkeypatch):
    monkeypatch.setenv("PRICING_FREE_TIER_REQUESTS_PER_DAY", "2")
    zone(monkeypatch, "Asia/Tokyo")
    late = datetime(2025, 3, 12, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
    for i in range(2):
        hold = auth(acct, f"a{i}", user_id="anon:sess-1", now=late)
        assert hold.amount == 0
        result = settle(acct, hold, input_tokens=1000, output_tokens=500, now=late)
        assert result.usage.price == 0 and result.usage.basis == "free"
        assert result.usage.provider_cost > 0
    with pytest.raises(SpendLimitExceeded, match="free_tier_requests_per_day") as info:
        auth(acct, "a2", user_id="anon:sess-1", now=late)
    assert info.value.retry_after == 1800
    auth(acct, "b0", user_id="anon:sess-2", now=late)  # another session
    auth(acct, "a2", user_id="anon:sess-1", now=late + timedelta(minutes=30))  # next day
    assert get_wallet(acct, "acct").balance == Decimal("5")
    assert verify_ledger(acct).ok


@pytest.mark.parametrize(
    "environment",
    [
        {"PRICING_ENABLE_BUDGET_ENFORCEMENT": "false"},
        {"ENABLE_BUDGET_ENFORCEMENT": "false"},  # the source systems' name
        {"ENABLE_BUDGET_ENFORCEMENT": "true", "PRICING_ENABLE_BUDGET_ENFORCEMENT": "false"},
    ],
    ids=["prefixed", "unprefixed", "prefixed-wins"],
)
def test_with_enforcement_off_nothing_is_refused(engine, monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    create_account(engine, "acct", name="A", opening_credit=Decimal("0"))
    set_limits(engine, SpendingLimits("acct", "", "*", max_input_tokens=1))
    hold = auth(engine)
    assert hold.amount == price(1000, 500)
    settle(engine, hold, input_tokens=1000, output_tokens=500, now=NOW)
    assert get_wallet(engine, "acct").balance == -price(1000, 500)
    assert verify_ledger(engine).ok


def test_the_prefixed_name_wins_over_the_source_systems_name(monkeypatch):
    monkeypatch.setenv("ENABLE_BUDGET_ENFORCEMENT", "false")
    monkeypatch.setenv("PRICING_ENABLE_BUDGET_ENFORCEMENT", "true")
    monkeypatch.setenv("DEFAULT_MONTHLY_BUDGET", "25")
    monkeypatch.setenv("ENABLE_BILLING", "0")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.enable_budget_enforcement is True
    assert settings.default_monthly_budget == Decimal("25")
    assert settings.enable_billing is False


def test_with_pricing_off_tokens_are_recorded_and_nothing_is_charged(acct, monkeypatch):
    monkeypatch.setenv("PRICING_ENABLE_PRICING", "false")
    get_settings.cache_clear()
    hold = auth(acct)
    assert hold.amount == 0
    result = settle(acct, hold, input_tokens=1000, output_tokens=500, now=NOW)
    assert result.usage.price == 0 and "pricing is switched off" in result.usage.explanation
    assert get_wallet(acct, "acct").balance == Decimal("5")


# ---------------------------------------------------------------- estimates


def test_an_estimate_says_how_the_prompt_was_counted(acct):
    text = "Hello, world! " * 20 + "日本語"
    counted = estimate_cost(
        acct, model="gpt-4o-mini", prompt_text=text, max_output_tokens=100, now=NOW
    )
    assert counted.method == HEURISTIC
    assert counted.input_tokens == count_prompt_tokens(text) == -(-280 // 4) + 3
    assert counted.price == price(counted.input_tokens, 100)
    given_ = estimate_cost(
        acct, model="gpt-4o-mini", prompt_tokens=73, max_output_tokens=100, now=NOW
    )
    assert (given_.method, given_.input_tokens, given_.provider) == ("given", 73, "openai")
    with pytest.raises(PricingError, match="exactly one"):
        estimate_cost(acct, model="gpt-4o-mini", max_output_tokens=1)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    inp=st.one_of(st.integers(-5, 10**9), st.just(True), st.text(max_size=3)),
    out=st.integers(-5, 10**9),
    rid=st.text(max_size=140),
    model=st.sampled_from(["gpt-4o-mini", "", "x" * 70, "bad model", "gpt-4o\x00"]),
)
def test_hostile_authorizations_either_hold_or_refuse_cleanly(
    sqlite_url, monkeypatch, inp, out, rid, model
):
    from pricing_core.adapters import storage

    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    engine = storage.make_engine(sqlite_url)
    try:
        create_account(engine, "acct", name="A", opening_credit=Decimal("1"))
        held_before = get_wallet(engine, "acct").held
        try:
            auth(engine, rid or "x", model=model, estimated_input_tokens=inp, max_output_tokens=out)
        except PricingError:
            assert get_wallet(engine, "acct").held == held_before
        assert verify_ledger(engine).ok  # held == the sum of active holds
    finally:
        engine.dispose()


def test_plain_record_usage_never_debits_anonymous_users_either(acct):
    result = use(acct, "anon-import", NOW, user_id="anon:sess-9")
    assert result.price == 0 and result.basis == "free" and result.provider_cost > 0
    assert "anonymous user" in result.explanation
    assert get_wallet(acct, "acct").balance == Decimal("5")
    assert verify_ledger(acct).ok
