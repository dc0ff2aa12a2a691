"""Reconciliation: Stripe's Checkout Sessions against the ledger.

`reconcile(engine, since=..., fix=...)` lists credit-pack Checkout Sessions from
Stripe (payment mode, created since a date) and reports, per session:

- `paid_not_credited`: Stripe says paid, the ledger has no `checkout:<id>` credit
  (a dropped webhook and a buyer who never came back); `--fix` fulfils it;
- `credited_twice`: more than one `checkout:<id>` credit (the unique key per account
  makes it impossible; this checks it across accounts);
- `amount_mismatch`: what Stripe charged differs from what the package cost, or
  the credit differs from the package's credit;
- `credited_not_paid`: credited although Stripe does not say paid.

Admins see the same report on a page later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import ledger_entries
from pricing_core.adapters.schema_billing import checkout_sessions, credit_packages
from pricing_core.billing import stripe_api
from pricing_core.billing.fulfilment import fulfil_checkout, payment_problems
from pricing_core.billing.sessions import Outcome
from pricing_core.domain.errors import PricingError


class Finding(StrEnum):
    PAID_NOT_CREDITED = "paid_not_credited"
    CREDITED_TWICE = "credited_twice"
    AMOUNT_MISMATCH = "amount_mismatch"
    CREDITED_NOT_PAID = "credited_not_paid"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One problem with one session. `fixed` is True when `--fix` resolved it."""

    finding: Finding
    session_id: str
    account_id: str | None
    detail: str
    fixed: bool = False


@dataclass(slots=True)
class ReconcileReport:
    """Sessions checked (credit-pack sessions found in Stripe), credited, problems."""

    since: datetime | None
    checked: int = 0
    credited: int = 0
    skipped: int = 0  # sessions this product did not create (other modes, no metadata)
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Discrepancy]:
        return [d for d in self.discrepancies if not d.fixed]

    @property
    def ok(self) -> bool:
        return not self.unresolved


def _credits(conn: Connection, session_ids: list[str]) -> dict[str, list[Any]]:
    """checkout:<id> purchase entries (all accounts) by session id."""
    keys = [f"checkout:{sid}" for sid in session_ids]
    found: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(
        select(
            ledger_entries.c.account_id, ledger_entries.c.idempotency_key, ledger_entries.c.amount
        ).where(ledger_entries.c.idempotency_key.in_(keys))
    ):
        found[row.idempotency_key.removeprefix("checkout:")].append(row)
    return found


@dataclass(frozen=True, slots=True)
class _Expected:
    """What a session should have charged and credited (cents, Decimal USD)."""

    id: str
    account_id: str
    amount_cents: int
    currency: str
    credits: Decimal


def _expected(conn: Connection, session: dict[str, Any]) -> _Expected | None:
    """From the recorded session, else from the package named in the metadata."""
    row = conn.execute(
        select(checkout_sessions).where(checkout_sessions.c.id == session["id"])
    ).first()
    if row is not None:
        return _Expected(row.id, row.account_id, row.amount_cents, row.currency, row.credits)
    metadata = session.get("metadata") or {}
    package = conn.execute(
        select(credit_packages).where(credit_packages.c.id == metadata.get("package_id"))
    ).first()
    if package is None or not metadata.get("account_id"):
        return None
    return _Expected(
        session["id"],
        metadata["account_id"],
        package.price_cents,
        package.currency,
        package.credits,
    )


def _check(
    conn: Connection, session: dict[str, Any], credits: list[Any], report: ReconcileReport
) -> list[Discrepancy]:
    sid = session["id"]
    expected = _expected(conn, session)
    if expected is None:
        report.skipped += 1
        return []
    report.checked += 1
    account = expected.account_id
    paid = session.get("payment_status") == "paid"
    found: list[Discrepancy] = []
    if len(credits) > 1:
        found.append(
            Discrepancy(
                Finding.CREDITED_TWICE,
                sid,
                account,
                f"{len(credits)} purchase credits for one session",
            )
        )
    if credits:
        report.credited += 1
        if credits[0].amount != expected.credits:
            found.append(
                Discrepancy(
                    Finding.AMOUNT_MISMATCH,
                    sid,
                    account,
                    f"credited {credits[0].amount} USD, package credit is {expected.credits} USD",
                )
            )
        if not paid:
            found.append(
                Discrepancy(
                    Finding.CREDITED_NOT_PAID,
                    sid,
                    account,
                    f"credited, but Stripe says payment_status={session.get('payment_status')!r}",
                )
            )
    if paid:
        problems = payment_problems(session, expected)
        if problems:
            found.append(Discrepancy(Finding.AMOUNT_MISMATCH, sid, account, "; ".join(problems)))
        elif not credits:
            found.append(
                Discrepancy(
                    Finding.PAID_NOT_CREDITED,
                    sid,
                    account,
                    f"paid {session.get('amount_total')} cents "
                    f"{session.get('currency')}, never credited",
                )
            )
    return found


def reconcile(
    engine: Engine,
    *,
    since: datetime | None = None,
    fix: bool = False,
    client: stripe.StripeClient | None = None,
    now: datetime | None = None,
) -> ReconcileReport:
    """Compare Stripe's credit-pack Checkout Sessions created since `since` with the
    ledger; with `fix`, fulfil the paid-but-not-credited ones (exactly once, through
    `fulfil_checkout`).

    Returns: ReconcileReport. Raises: ConfigurationError, StripeUnavailable.
    """
    client = client or stripe_api.stripe_client()
    report = ReconcileReport(since=since)
    created_gte = int(since.timestamp()) if since else None
    sessions = [
        s
        for s in stripe_api.list_sessions(client, created_gte=created_gte)
        if s.get("mode", "payment") == "payment"
    ]
    with engine.connect() as conn:
        credits = _credits(conn, [s["id"] for s in sessions])
        for session in sessions:
            report.discrepancies.extend(
                _check(conn, session, credits.get(session["id"], []), report)
            )
    if fix:
        report.discrepancies = [_fix(engine, d, client, now) for d in report.discrepancies]
    return report


def _fix(
    engine: Engine, found: Discrepancy, client: stripe.StripeClient, now: datetime | None
) -> Discrepancy:
    if found.finding != Finding.PAID_NOT_CREDITED:
        return found
    try:
        result = fulfil_checkout(
            engine, found.session_id, client=client, now=now or datetime.now(UTC)
        )
    except PricingError as exc:
        return Discrepancy(
            found.finding, found.session_id, found.account_id, f"{found.detail}; fix failed: {exc}"
        )
    if result.outcome in (Outcome.CREDITED, Outcome.ALREADY_CREDITED):
        return Discrepancy(
            found.finding,
            found.session_id,
            result.account_id,
            f"{found.detail}; fixed: {result.message}",
            fixed=True,
        )
    return Discrepancy(
        found.finding,
        found.session_id,
        found.account_id,
        f"{found.detail}; not fixed: {result.message}",
    )
