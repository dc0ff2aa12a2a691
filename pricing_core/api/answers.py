"""What the `/api/v1` routes answer, as functions of the database and the key's
account, so the source systems' paths (`api.compat`) answer the same values: one
implementation of each."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import Engine

from pricing_core.analytics.event_log import get_chat, list_events
from pricing_core.analytics.public_prices import fixed_prices
from pricing_core.api.errors import check_own_user
from pricing_core.api.responses import (
    AutoTopupOut,
    BalanceOut,
    BudgetOut,
    ChatUsageOut,
    CreditsOut,
    EstimateOut,
    FixedPriceOut,
    InvoiceOut,
    InvoicesOut,
    ModelListOut,
    ModelPriceOut,
    PaymentMethodOut,
    PaymentMethodsOut,
    StatementOut,
    event_out,
    rate_str,
    response_from,
    response_value,
)
from pricing_core.api.schemas import BudgetIn, EstimateIn
from pricing_core.billing.autotopup import get_auto_topup
from pricing_core.billing.customers import list_payment_methods
from pricing_core.billing.invoices import list_invoices
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.catalog.price_book import get_price_book, known_models
from pricing_core.config import get_settings
from pricing_core.domain.errors import UnknownModel
from pricing_core.domain.money import usd_str
from pricing_core.domain.principal import Principal
from pricing_core.ledger.holds import HoldNotFound
from pricing_core.ledger.wallets import get_wallet
from pricing_core.limits.budget_rules import save_budget_rule
from pricing_core.limits.budgets import BudgetStatus, budget_report
from pricing_core.metering import estimate
from pricing_core.plans.records import list_billing_records


def balance_out(db: Engine, account_id: str) -> BalanceOut:
    """The account's wallet (USD strings), with the amounts in credits when the server
    shows credits (`PRICING_UNIT=credits`). Raises: UnknownAccount."""
    wallet = get_wallet(db, account_id)
    unit = get_settings().display_unit
    credits = None
    if unit.per_usd is not None:
        amounts = {k: unit.plain(getattr(wallet, k)) for k in CREDIT_FIELDS}
        credits = CreditsOut(per_usd=str(unit.per_usd), **amounts)
    return response_from(BalanceOut, wallet, account_id=account_id, credits=credits)


CREDIT_FIELDS = ("balance", "held", "available")


def chat_usage_out(
    db: Engine, account_id: str, chat_id: str, *, limit: int, cursor: int | None
) -> ChatUsageOut:
    """A chat's totals and a page of its usage events, newest first. Raises:
    HoldNotFound (404) when the account has no such chat."""
    chat = get_chat(db, account_id, chat_id)
    if chat is None:
        raise HoldNotFound(f"no chat {chat_id!r} on account {account_id!r}")
    page = list_events(db, account_id, chat_id=chat_id, limit=limit, cursor=cursor)
    return response_from(
        ChatUsageOut,
        chat,
        events=[event_out(e) for e in page.items],
        next_cursor=page.next_cursor,
    )


def model_list_out(
    db: Engine, *, provider: str | None, model: str | None, limit: int, offset: int
) -> ModelListOut:
    """Known models (by provider, then model id) with the per-token prices charged
    now, and the fixed prices per unit in effect (filtered by `model`; none when a
    `provider` is asked for: fixed prices are per operation and model)."""
    matches = [
        (p, m)
        for p, m in _model_ids()
        if (provider is None or p == provider) and (model is None or model in m)
    ]
    unit = get_settings().display_unit
    fixed = [
        FixedPriceOut(
            operation=f.operation,
            model=f.model or None,
            price=usd_str(f.price),
            credits=unit.plain(f.price) if unit.credits else None,
        )
        for f in fixed_prices(db)
        if (model is None or model in f.model) and provider is None
    ]
    return ModelListOut(
        items=[_model_price(db, p, m) for p, m in matches[offset : offset + limit]],
        total=len(matches),
        fixed_prices=fixed,
    )


def estimate_out(db: Engine, body: EstimateIn) -> EstimateOut:
    """The most a call can cost. Raises: UnknownModel, InvalidUsage."""
    return response_from(EstimateOut, estimate.estimate_cost(db, **body.model_dump()))


def save_budget(db: Engine, key: Principal, body: BudgetIn) -> BudgetOut:
    """Set or remove a monthly budget of the key's account (or of one of its users)."""
    check_own_user(db, key.account_id, body.user_id)
    save_budget_rule(
        db,
        account_id=key.account_id,
        user_id=body.user_id or "",
        monthly_limit=None if body.monthly_limit is None else Decimal(body.monthly_limit),
        thresholds=body.thresholds,
        block=body.block_at_limit,
        actor=key.user_id,
    )
    return budget_out(db, key.account_id, body.user_id)


def header_text(text: str) -> str:
    """`text` as one line of printable ASCII, for a response header."""
    return " ".join(text.encode("ascii", "replace").decode().split())[:1000]


@lru_cache(maxsize=1)
def _model_ids() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(known_models()))


def _model_price(db: Engine, provider: str, model: str) -> ModelPriceOut:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # cache-friendly
    try:
        listed = get_price_book(db).listed(provider, model, now)  # custom models first
    except (UnknownModel, ValueError, TypeError, LookupError):
        return ModelPriceOut(
            provider=provider,
            model=model,
            priced=False,
            input_mtok=None,
            output_mtok=None,
            cache_read_mtok=None,
            markup=None,
        )
    row = get_price_book(db).model_row(provider, model, now)
    markup = row.markup if row else get_settings().default_markup
    rates = row.override if row and row.override else listed.rates
    cache = rates.cache_read_mtok
    return ModelPriceOut(
        provider=provider,
        model=model,
        priced=True,
        input_mtok=rate_str(rates.input_mtok * markup),
        output_mtok=rate_str(rates.output_mtok * markup),
        cache_read_mtok=None if cache is None else rate_str(cache * markup),
        markup=rate_str(markup),
    )


def budget_out(db: Engine, account_id: str, user_id: str | None) -> BudgetOut:
    """A monthly budget (the account's, or a user's) against this month."""
    return budget_response(budget_report(db, account_id, user_id or ""), user_id)


def budget_response(status: BudgetStatus, user_id: str | None) -> BudgetOut:
    """`BudgetOut` of a budget status (`limits.budgets.budget_report`)."""
    budget = status.budget
    return response_from(
        BudgetOut,
        status,
        account_id=budget.account_id,
        user_id=user_id,  # None for the account's budget ("" in the settings)
        monthly_limit=response_value(budget.monthly_limit),
        thresholds=list(budget.thresholds),
        operator_default=budget.is_default,
        block_at_limit=budget.block_at_limit,
    )


def invoices_out(db: Engine, key: Principal) -> InvoicesOut:
    """The key's account's monthly statements and Stripe invoices."""
    statements = [response_from(StatementOut, r) for r in list_billing_records(db, key)]
    invoices = [
        response_from(
            InvoiceOut,
            i,
            amount_due=str(i.amount_due),
            amount_paid=str(i.amount_paid),
        )
        for i in list_invoices(db, key)
    ]
    return InvoicesOut(account_id=key.account_id, statements=statements, invoices=invoices)


def methods_out(db: Engine, key: Principal) -> PaymentMethodsOut:
    """The key's account's saved cards (none without Stripe) and auto top-up.
    Raises: StripeUnavailable."""
    cards = list_payment_methods(db, key) if payments_configured() else []
    topup = get_auto_topup(db, key)
    return PaymentMethodsOut(
        account_id=key.account_id,
        payment_methods=[response_from(PaymentMethodOut, c) for c in cards],
        auto_topup=None if topup is None else response_from(AutoTopupOut, topup),
    )
