"""Deterministic demo data: 13 accounts with about 90 days of usage up to now.

`seed_demo(engine, seed=0)` fills an empty database so a new user of the dashboard
sees a working product at once (the app calls it on an empty database in demo
mode; `pricing-core demo seed` does the same). Same seed and same `now` give the
same data, row for row.

What it makes:
- 13 accounts of light, medium and heavy intensity (one team account with four
  users, one new account without usage, one whose history is only 10 days long),
  each with several chats (sessions of a few requests);
- chat messages, code completions and image generations on models that
  genai-prices prices (image generation has a fixed per-call price, seeded into
  `operation_prices` if none exists);
- an image and video studio (Pixel Forge) whose images, styles, memes and videos
  carry the credit preset's fixed prices per unit, 1-4 units a call;
- welcome grants, credit purchases (automatic top-ups), a bonus, an admin
  adjustment, and a refunded purchase that leaves one account owing credit; some
  balances end low or critical on purpose.

Token counts come from lognormal distributions fitted to the real trace (below), so
no data file is needed at run time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts, chats, operation_prices
from pricing_core.adapters.storage import run_write
from pricing_core.admin.accounts import adjust_balance
from pricing_core.admin.presets import apply_credit_prices
from pricing_core.catalog.price_book import clear_price_cache, get_price_book
from pricing_core.config import get_settings
from pricing_core.demo.accounts import (
    ACCOUNTS,
    DEMO_ADMIN,
    DEMO_DAYS,
    IMAGE_OPERATION,
    IMAGE_PRICE,
    IMAGE_PROVIDER_COST,
    DatabaseNotEmpty,
    DemoPlan,
    DemoSummary,
    Funding,
    cents_up,
    sessions_of,
)
from pricing_core.domain.costing import TokenCounts
from pricing_core.domain.money import format_money
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import (
    EntryKind,
    count_entries,
    create_account,
    credit,
    ensure_user,
    post_entry,
)
from pricing_core.limits.budgets import save_budget, spend_in_month
from pricing_core.limits.presets import apply_preset
from pricing_core.metering.batch import record_usage_batch
from pricing_core.plans.records import generate_billing_records


def plan_demo(engine: Engine, *, seed: int, now: datetime) -> DemoPlan:
    """Decide every event and ledger change (pure apart from reading the price book)."""
    tz = get_settings().tz
    book = get_price_book(engine)
    today = now.astimezone(tz).date()
    plan = DemoPlan()
    welcome = get_settings().welcome_credit
    for index, account in enumerate(ACCOUNTS):
        rng = random.Random(f"{seed}:{account.id}")
        start_day = today - timedelta(days=max(account.history_days - 1, 0))
        opened = datetime.combine(start_day, time(6), tz).astimezone(UTC) - timedelta(minutes=index)
        events: list[UsageEvent] = []
        if account.history_days:
            for chat_id, title, session in sessions_of(
                account, rng, start_day=start_day, today=today, now=now, seed=seed
            ):
                plan.titles[(account.id, chat_id)] = title
                events.extend(session)
        prices = [
            book.quote(
                provider=e.provider,
                model=e.model,
                operation=e.operation,
                counts=TokenCounts(e.input_tokens, e.output_tokens),
                at=e.created_at,  # type: ignore[arg-type]
                quantity=e.quantity,
            ).price
            for e in events
        ]
        grant = welcome
        credits: list[tuple[datetime, str, str, Decimal, EntryKind, str]] = []
        if account.funding is Funding.TOP_UP:
            balance = grant
            for n, (event, price) in enumerate(zip(events, prices, strict=True)):
                if balance - price < account.top_up_below:
                    at = _when(event) - timedelta(seconds=10)
                    credits.append(
                        (at, account.id, f"demo{seed}:topup:{account.id}:{n}", account.pack,
                         EntryKind.PURCHASE, f"credit pack {format_money(account.pack)}")
                    )  # fmt: skip
                    balance += account.pack
                balance -= price
        elif account.funding is Funding.TARGET:
            # No welcome grant (signed up before it existed); one purchase of a custom
            # amount, sized so the balance ends at the target.
            grant = Decimal(0)
            credits.append(
                (opened + timedelta(minutes=1), account.id, f"demo{seed}:target:{account.id}",
                 cents_up(sum(prices, Decimal(0)) + account.target), EntryKind.PURCHASE,
                 "credit purchase")
            )  # fmt: skip
        elif account.funding is Funding.REFUNDED:
            grant = Decimal(0)
            purchase = Decimal(5)
            spent = Decimal(0)
            kept = []
            # the card payment is disputed five days into the account's use
            disputed_by = (_when(events[0]) if events else opened) + timedelta(days=5)
            for event, price in zip(events, prices, strict=True):
                if spent + price > purchase - Decimal("1.5") or _when(event) > disputed_by:
                    break
                spent += price
                kept.append(event)
            events = kept
            last = _when(events[-1]) if events else opened
            credits.append(
                (opened + timedelta(minutes=1), account.id, f"demo{seed}:buy:{account.id}",
                 purchase, EntryKind.PURCHASE, f"credit pack {format_money(purchase)}")
            )  # fmt: skip
            credits.append(
                (last + timedelta(hours=2), account.id, f"demo{seed}:refund:{account.id}",
                 -purchase, EntryKind.REFUND, "card payment disputed: purchased credits taken back")
            )  # fmt: skip
        for days_ago in account.bought_days_ago:  # packs bought besides the top-ups
            at = datetime.combine(today - timedelta(days=days_ago), time(11), tz).astimezone(UTC)
            credits.append(
                (at + timedelta(minutes=7 * index), account.id,
                 f"demo{seed}:pack:{account.id}:{days_ago}", account.pack, EntryKind.PURCHASE,
                 f"credit pack {format_money(account.pack)}")
            )  # fmt: skip
        plan.credits.append((opened, account.id, "welcome", grant, EntryKind.GRANT, "create"))
        plan.credits.extend(credits)
        plan.events.extend((e.created_at, e) for e in events)  # type: ignore[misc]
    # A loyalty bonus and an admin's goodwill adjustment, to show every kind of entry.
    bonus_at = now - timedelta(days=40)
    plan.credits.append(
        (bonus_at, "ada", f"demo{seed}:bonus:ada", Decimal(5), EntryKind.BONUS, "loyalty bonus")
    )
    plan.credits.append(
        (now - timedelta(days=12), "northwind", f"demo{seed}:goodwill:northwind", Decimal("2.50"),
         EntryKind.ADJUSTMENT, "goodwill credit for the outage on the 3rd")
    )  # fmt: skip
    plan.events.sort(key=lambda item: (item[0], item[1].account_id, item[1].request_id))
    plan.credits.sort(key=lambda item: (item[0], item[1], item[2]))
    return plan


def _ensure_image_price(engine: Engine, at: datetime) -> None:
    def work(conn: Connection) -> None:
        exists = conn.execute(
            select(func.count())
            .select_from(operation_prices)
            .where(operation_prices.c.operation == IMAGE_OPERATION)
        ).scalar_one()
        if not exists:
            conn.execute(
                insert(operation_prices).values(
                    operation=IMAGE_OPERATION,
                    effective_from=at,
                    price=IMAGE_PRICE,
                    provider_cost=IMAGE_PROVIDER_COST,
                    actor="demo",
                    reason="demo seed: fixed price per generated image",
                    created_at=at,
                )
            )

    run_write(engine, work)
    clear_price_cache()


def seed_prices(engine: Engine, *, now: datetime) -> None:
    """The fixed prices the demo's events need, in effect from before the demo's first
    day: the image price per call, and the credit preset's per-unit prices of the
    image and video studio (`admin.presets.apply_credit_prices`). `plan_demo` prices
    with them. Idempotent."""
    earliest = now.replace(microsecond=0) - timedelta(days=DEMO_DAYS + 1)
    _ensure_image_price(engine, earliest)
    apply_credit_prices(engine, DEMO_ADMIN, now=earliest)


def _set_budgets(engine: Engine, now: datetime) -> None:
    """Grace's budget is 85 % used this month (the banner shows), Omar's is far off."""

    with engine.connect() as conn:
        spent = spend_in_month(conn, "grace", now=now)
    limit = cents_up(spent / Decimal("0.85")) if spent >= Decimal("0.01") else Decimal(5)
    for account_id, amount in (("grace", limit), ("omar", Decimal(20))):
        save_budget(
            engine,
            Principal(account_id, account_id),
            monthly_limit=amount,
            thresholds=(50, 80, 100),
            now=now,
        )


def seed_demo(engine: Engine, *, seed: int = 0, now: datetime | None = None) -> DemoSummary:
    """Fill an empty database with the demo accounts and their ~90 days of usage.

    Ledger changes and usage are written in time order (usage in batches per
    calendar day), so the ledger reads like real history.
    Raises: DatabaseNotEmpty if any account exists. Deterministic from `seed` and `now`.
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(accounts)).scalar_one():
            raise DatabaseNotEmpty(
                "the database already has accounts; demo data needs an empty one"
            )
    seed_prices(engine, now=now)
    plan = plan_demo(engine, seed=seed, now=now)
    by_id = {a.id: a for a in ACCOUNTS}
    tz = get_settings().tz
    users = 0
    refused = 0
    batch: list[UsageEvent] = []

    def flush() -> None:
        nonlocal refused
        if batch:
            last = max(e.created_at for e in batch)  # type: ignore[type-var]
            refused += len(record_usage_batch(engine, batch, now=last).rejected)
            batch.clear()

    credits = iter(plan.credits)
    pending = next(credits, None)
    for at, event in [*plan.events, (None, None)]:
        while pending is not None and (at is None or pending[0] <= at):
            flush()
            when, account_id, key, amount, kind, reason = pending
            if key == "welcome":
                account = by_id[account_id]
                create_account(
                    engine, account_id, name=account.name, kind=account.kind,
                    opening_credit=amount, now=when,
                )  # fmt: skip
                users += 1
                for offset, user in enumerate(account.users, start=1):
                    ensure_user(
                        engine, account_id, user, name=user.split("-")[-1].title(),
                        now=when + timedelta(seconds=offset),
                    )  # fmt: skip
                    users += 1
            elif kind is EntryKind.ADJUSTMENT:
                adjust_balance(
                    engine, DEMO_ADMIN, account_id, amount, reason=reason, idempotency_key=key,
                    now=when,
                )  # fmt: skip
            elif kind is EntryKind.REFUND:
                run_write(
                    engine,
                    partial(
                        post_entry, account_id=account_id, amount=amount, kind=EntryKind.REFUND,
                        idempotency_key=key, reason=reason, reference=key, floor=None, now=when,
                    ),
                )  # fmt: skip
            else:
                credit(
                    engine, account_id, amount, kind=kind, idempotency_key=key,
                    reference=key if kind is EntryKind.PURCHASE else None, reason=reason, now=when,
                )  # fmt: skip
            pending = next(credits, None)
        if event is None:
            break
        if batch and batch[-1].created_at.astimezone(tz).date() != at.astimezone(tz).date():  # type: ignore[union-attr]
            flush()
        batch.append(event)
    flush()

    def name_chats(conn: Connection) -> None:
        for (account_id, chat_id), title in plan.titles.items():
            conn.execute(
                update(chats)
                .where(chats.c.account_id == account_id, chats.c.chat_id == chat_id)
                .values(title=title)
            )

    run_write(engine, name_chats)
    _set_budgets(engine, now)
    apply_preset(engine, "standard", actor="demo")  # the operator defaults a new install uses
    generate_billing_records(engine, now=now)  # the months that ended have statements
    with engine.connect() as conn:
        chat_count = conn.execute(select(func.count()).select_from(chats)).scalar_one()
    return DemoSummary(
        seed=seed,
        accounts=len(ACCOUNTS),
        users=users,
        chats=chat_count,
        events=len(plan.events) - refused,
        refused=refused,
        ledger_entries=count_entries(engine),
    )


def _when(event: UsageEvent) -> datetime:
    """A planned event's time (the demo sets every `created_at`)."""
    if event.created_at is None:
        raise AssertionError(f"demo event {event.request_id!r} has no time")
    return event.created_at
