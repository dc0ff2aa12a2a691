"""record_usage on both back ends: exact debit, idempotent retries, nothing partial."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from genai_prices import Usage, calc_price

from pricing_core.domain.errors import DuplicateRequest, InsufficientBalance, UnknownModel
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from pricing_core.metering.record import record_usage

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def event(request_id: str = "req-1", **overrides: object) -> UsageEvent:
    fields: dict = dict(
        request_id=request_id,
        account_id="acct",
        user_id="acct",
        operation="chat_message",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1020,
        output_tokens=129,
        chat_id="chat-1",
        created_at=AT,
    )
    fields.update(overrides)
    return UsageEvent(**fields)


def expected_charge(
    input_tokens: int, output_tokens: int, markup: Decimal
) -> tuple[Decimal, Decimal]:
    exact = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=AT,
    ).total_price
    nano = Decimal("1e-9")
    return exact.quantize(nano, ROUND_HALF_EVEN), (exact * markup).quantize(nano, ROUND_HALF_EVEN)


def test_recording_usage_debits_the_wallet_by_the_marked_up_price(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("5"))
    result = record_usage(engine, event())
    cost, price = expected_charge(1020, 129, Decimal("1.25"))
    assert (result.provider_cost, result.price) == (cost, price)
    assert get_wallet(engine, "acct").balance == Decimal("5") - price
    assert verify_ledger(engine).ok


def test_a_retry_with_the_same_request_id_is_charged_once(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("5"))
    first = record_usage(engine, event())
    again = record_usage(engine, event())
    assert again.replayed and again.event_id == first.event_id
    assert get_wallet(engine, "acct").balance == Decimal("5") - first.price


def test_the_same_request_id_with_different_content_is_refused(engine):
    create_account(engine, "acct", name="A")
    record_usage(engine, event())
    with pytest.raises(DuplicateRequest, match="req-1"):
        record_usage(engine, event(output_tokens=130))


def test_insufficient_balance_writes_nothing(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("0"))
    with pytest.raises(InsufficientBalance, match="acct"):
        record_usage(engine, event())
    report = verify_ledger(engine)
    assert report.ok and report.events == 0 and report.entries == 0


def test_an_unknown_model_is_never_free(engine):
    create_account(engine, "acct", name="A")
    with pytest.raises(UnknownModel, match="no-such-model"):
        record_usage(engine, event(model="no-such-model"))
    assert verify_ledger(engine).events == 0


def test_a_debit_larger_than_a_positive_balance_is_refused(engine):
    create_account(engine, "acct", name="A", opening_credit=Decimal("0.0001"))
    with pytest.raises(InsufficientBalance, match="available 0.0001"):
        record_usage(engine, event())
    assert get_wallet(engine, "acct").balance == Decimal("0.0001")
    assert verify_ledger(engine).events == 0
