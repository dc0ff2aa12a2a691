"""Plans inside record_usage, on both back ends: included messages cost 0, later ones
the overage rate, the cap holds, the explanation says which case applied."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import insert, select

from pricing_core.adapters.schema import audit_log, usage_events
from pricing_core.adapters.schema_billing import plan_usage, plans
from pricing_core.admin.prices import set_operation_price
from pricing_core.config import get_settings
from pricing_core.domain.costing import ChargeBasis
from pricing_core.domain.errors import InsufficientBalance, UnknownAccount
from pricing_core.domain.plans import PlanError
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.batch import record_usage_batch
from pricing_core.metering.record import record_usage
from pricing_core.plans.advice import monthly_usage_on
from pricing_core.plans.subscriptions import (
    SubscriptionSource,
    UnknownPlan,
    current_plan,
    subscription_history,
)
from pricing_core.plans.switching import set_account_fee, switch_plan
from tests.admin_support import ADMIN

START = datetime(2025, 2, 1, tzinfo=UTC)
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(i: int, *, at: datetime = AT, account: str = "acct", **overrides) -> UsageEvent:
    fields = dict(
        request_id=f"req-{i}",
        account_id=account,
        user_id=account,
        operation="chat_message",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1020,
        output_tokens=129,
        created_at=at + timedelta(seconds=i),
    )
    fields.update(overrides)
    return UsageEvent(**fields)


def charges(engine) -> dict[str, tuple[str, D]]:
    """Recorded events: request id -> (charge basis, price)."""
    e = usage_events.c
    with engine.connect() as conn:
        rows = conn.execute(select(e.request_id, e.charge_basis, e.price))
        return {r.request_id: (r.charge_basis, r.price) for r in rows}


def add_plan(engine, code: str, *, fee: str, included: int | None, rate: str, cap: str | None):
    with engine.begin() as conn:
        conn.execute(
            insert(plans).values(
                code=code,
                version=1,
                name=code.title(),
                monthly_fee=D(fee),
                included_messages=included,
                overage_rate=D(rate),
                monthly_cap=None if cap is None else D(cap),
                position=9,
                active=True,
                effective_from=START,
                created_by="test",
                created_at=START,
            )
        )


@pytest.fixture
def on_starter(engine):
    create_account(engine, "acct", name="A", opening_credit=D("100"), now=START)
    switch_plan(engine, "acct", "starter", source=SubscriptionSource.DEMO, now=START)
    return engine


def test_on_starter_the_first_1000_messages_are_free_and_later_ones_cost_the_overage_rate(
    on_starter,
):
    result = record_usage_batch(on_starter, [event(i) for i in range(1002)])
    assert not result.rejected and result.recorded == 1002
    assert result.price == D("0.0003")
    charged = charges(on_starter)
    assert {charged[f"req-{i}"] for i in range(1000)} == {(ChargeBasis.INCLUDED, D("0"))}
    assert [charged[f"req-{i}"] for i in (1000, 1001)] == [
        (ChargeBasis.OVERAGE, D("0.00015")),
        (ChargeBasis.OVERAGE, D("0.00015")),
    ]
    assert get_wallet(on_starter, "acct").balance == D("100") - D("0.0003")
    # a new calendar month starts a new allowance
    april = record_usage(on_starter, event(5000, at=datetime(2025, 4, 1, tzinfo=UTC)))
    assert april.basis is ChargeBasis.INCLUDED and april.price == 0
    assert verify_ledger(on_starter).ok


def test_the_explanation_says_which_case_applied_and_a_replay_repeats_it(on_starter):
    add_plan(on_starter, "tiny", fee="1", included=1, rate="0.00015", cap=None)
    switch_plan(on_starter, "acct", "tiny", source=SubscriptionSource.DEMO, now=START)
    first = record_usage(on_starter, event(1))
    second = record_usage(on_starter, event(2))
    assert first.explanation.startswith(
        "included message: within the 1 messages a month included in Tiny, charged $0.00 "
        "(pay-as-you-go price $0.000"
    )
    assert second.explanation.startswith(
        "overage: beyond the 1 messages a month included in Tiny, $0.00015/message "
        "(pay-as-you-go price $0.000"
    )
    assert second.price_version.endswith(";plan:tiny@1")
    for original in (first, second):
        replay = record_usage(on_starter, event(int(original.request_id[4:])))
        assert replay.replayed and replay.explanation == original.explanation


def test_the_monthly_cap_limits_the_overage_charged_to_the_wallet(on_starter):
    # fee 1 + overage may reach 1.00025: one included, then 0.0001, 0.0001, 0.00005, 0, 0
    add_plan(on_starter, "capped", fee="1", included=1, rate="0.0001", cap="1.00025")
    switch_plan(on_starter, "acct", "capped", source=SubscriptionSource.DEMO, now=START)
    results = [record_usage(on_starter, event(i)) for i in range(6)]
    assert [r.price for r in results] == [D(0), D("0.0001"), D("0.0001"), D("0.00005"), D(0), D(0)]
    assert "limited by the $1.00 monthly cap: charged $0.00005" in results[3].explanation
    with on_starter.connect() as conn:
        row = conn.execute(select(plan_usage)).one()
    assert (row.month, row.plan_messages, row.overage) == ("2025-03", 6, D("0.00025"))


def test_operations_that_are_not_messages_are_charged_pay_as_you_go_on_a_plan(
    on_starter, monkeypatch
):
    monkeypatch.setenv("PRICING_PLAN_MESSAGE_OPERATIONS", "chat_message")
    get_settings.cache_clear()
    code = record_usage(on_starter, event(1, operation="code_completion"))
    chat = record_usage(on_starter, event(2))
    assert code.basis is ChargeBasis.PAYG and code.price > 0
    assert chat.basis is ChargeBasis.INCLUDED


def test_a_fixed_price_image_is_never_an_included_message_unless_the_setting_says_so(
    on_starter, monkeypatch
):
    set_operation_price(
        on_starter, ADMIN, "image_generation", price="1.00", provider_cost="0.04",
        effective_from=START, reason="image price", model="dall-e-3", now=START,
    )  # fmt: skip
    image = dict(operation="image_generation", model="dall-e-3", quantity=2)
    paid = record_usage(on_starter, event(1, **image))
    chat = record_usage(on_starter, event(2))
    assert (paid.basis, paid.price) == (ChargeBasis.FIXED, D("2.00"))
    assert chat.basis is ChargeBasis.INCLUDED
    # the plan advice counts the chat message only: 1 message, the image charged apart
    with on_starter.connect() as conn:
        march = monthly_usage_on(conn, "acct", ["2025-03"])["2025-03"]
    assert (march.messages, march.other_cost) == (1, D("2.00"))
    monkeypatch.setenv("PRICING_PLAN_MESSAGE_OPERATIONS", "chat_message,image_generation")
    get_settings.cache_clear()
    included = record_usage(on_starter, event(3, **image))
    assert (included.basis, included.price) == (ChargeBasis.INCLUDED, D(0))
    assert get_wallet(on_starter, "acct").balance == D("100") - D("2.00")


def test_a_refused_overage_message_is_not_counted_against_the_allowance(engine):
    create_account(engine, "acct", name="A", opening_credit=D("0"), now=START)
    add_plan(engine, "tiny", fee="1", included=1, rate="0.00015", cap=None)
    switch_plan(engine, "acct", "tiny", source=SubscriptionSource.DEMO, now=START)
    result = record_usage_batch(engine, [event(1), event(2), event(3)])
    assert result.recorded == 1 and result.price == 0
    assert charges(engine) == {"req-1": (ChargeBasis.INCLUDED, D("0"))}
    assert [(r.position, r.request_id, type(r.error)) for r in result.rejected] == [
        (1, "req-2", InsufficientBalance),
        (2, "req-3", InsufficientBalance),
    ]
    with engine.connect() as conn:
        assert conn.execute(select(plan_usage.c.plan_messages)).scalar_one() == 1
        assert len(conn.execute(select(usage_events.c.id)).all()) == 1
    assert verify_ledger(engine).ok


def test_events_from_before_the_subscription_are_charged_pay_as_you_go(on_starter):
    before = record_usage(on_starter, event(1, at=datetime(2025, 1, 15, tzinfo=UTC)))
    assert before.basis is ChargeBasis.PAYG and before.price > 0


def test_switching_plans_keeps_the_history_and_repeating_a_switch_changes_nothing(engine):
    create_account(engine, "acct", name="A", now=START)
    demo = SubscriptionSource.DEMO
    assert current_plan(engine, "acct", now=START).code == "payg"
    first = switch_plan(engine, "acct", "starter", source=demo, now=START)
    again = switch_plan(engine, "acct", "starter", source=demo, now=START + timedelta(days=1))
    assert again == first
    switch_plan(engine, "acct", "professional", source=demo, now=START + timedelta(days=2))
    switch_plan(engine, "acct", "payg", source=demo, now=START + timedelta(days=3))
    history = subscription_history(engine, "acct")
    assert [(s.plan_code, s.started_at.day, s.ended_at.day) for s in history] == [
        ("starter", 1, 3),
        ("professional", 3, 4),
    ]
    assert current_plan(engine, "acct", now=START + timedelta(days=2, hours=1)).code == (
        "professional"
    )
    assert current_plan(engine, "acct", now=START + timedelta(days=5)).code == "payg"
    with engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action, audit_log.c.after)).all()
    assert [a for a, _ in actions] == ["plan.switch"] * 3


def test_enterprise_needs_a_fee_agreed_for_the_account(engine):
    create_account(engine, "acct", name="A", now=START)
    with pytest.raises(PlanError, match="'enterprise' needs a fee.*talk to us"):
        switch_plan(engine, "acct", "enterprise", source=SubscriptionSource.DEMO, now=START)
    with pytest.raises(PlanError, match="reason"):
        set_account_fee(engine, "acct", "enterprise", "400", actor="ops@x", reason=" ", now=START)
    set_account_fee(engine, "acct", "enterprise", "400", actor="ops@x", reason="deal", now=START)
    switch_plan(engine, "acct", "enterprise", source=SubscriptionSource.ADMIN, now=START)
    plan = current_plan(engine, "acct", now=AT)
    assert (plan.code, plan.monthly_fee, plan.included_messages) == ("enterprise", D("400"), None)
    result = record_usage(engine, event(1))
    assert result.basis is ChargeBasis.INCLUDED and "unlimited messages" in result.explanation


@pytest.mark.parametrize(
    ("account", "code", "error"),
    [("nobody", "starter", UnknownAccount), ("acct", "gold", UnknownPlan)],
)
def test_switching_to_an_unknown_account_or_plan_is_refused(engine, account, code, error):
    create_account(engine, "acct", name="A", now=START)
    with pytest.raises(error, match=account if error is UnknownAccount else code):
        switch_plan(engine, account, code, source=SubscriptionSource.DEMO, now=START)
    assert subscription_history(engine, "acct") == []


@pytest.mark.postgres
def test_concurrent_messages_never_exceed_the_allowance(pg_engine):
    create_account(pg_engine, "acct", name="A", opening_credit=D("10"), now=START)
    add_plan(pg_engine, "tiny", fee="1", included=5, rate="0.0001", cap=None)
    switch_plan(pg_engine, "acct", "tiny", source=SubscriptionSource.DEMO, now=START)
    results = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(n * 5, n * 5 + 5):
            results.append(record_usage(pg_engine, event(i)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bases = [r.basis for r in results]
    assert bases.count(ChargeBasis.INCLUDED) == 5 and bases.count(ChargeBasis.OVERAGE) == 35
    assert get_wallet(pg_engine, "acct").balance == D("10") - 35 * D("0.0001")
    assert verify_ledger(pg_engine).ok


def test_a_new_plan_version_leaves_current_subscribers_on_theirs(engine):
    from pricing_core.domain.plans import Plan
    from pricing_core.plans.subscriptions import account_plans, publish_plan_version

    create_account(engine, "old", name="Old", opening_credit=D("5"), now=START)
    create_account(engine, "new", name="New", opening_credit=D("5"), now=START)
    switch_plan(engine, "old", "starter", source=SubscriptionSource.DEMO, now=START)
    terms = Plan("starter", "Starter", 1, D("6"), 0, D("0.0002"), D("60"))
    published = publish_plan_version(
        engine, terms, actor="ops@x", reason="new prices", effective_from=AT
    )
    assert published.key == "starter@2"
    before = {p.code: p.version for p in account_plans(engine, "new", now=AT - timedelta(1))}
    after = {p.code: p for p in account_plans(engine, "new", now=AT)}
    assert before["starter"] == 1 and after["starter"].monthly_fee == D("6")
    switch_plan(engine, "new", "starter", source=SubscriptionSource.DEMO, now=AT)
    old, new = (record_usage(engine, event(1, account=a)) for a in ("old", "new"))
    assert (old.basis, old.price) == (ChargeBasis.INCLUDED, D("0"))  # v1: 1,000 included
    assert (new.basis, new.price) == (ChargeBasis.OVERAGE, D("0.0002"))  # v2: none included
    assert current_plan(engine, "old", now=AT).key == "starter@1"
    with pytest.raises(PlanError, match="reason"):
        publish_plan_version(engine, terms, actor="ops@x", reason="")
