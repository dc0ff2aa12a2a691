"""Deterministic demo data: a dozen accounts with about 90 days of usage up to now.

`seed_demo(engine, seed=0)` fills an empty database so a new user of the dashboard
sees a working product at once (the app calls it on an empty database in demo
mode; `pricing-core demo seed` does the same). Same seed and same `now` give the
same data, row for row.

What it makes:
- 12 accounts of light, medium and heavy intensity (one team account with four
  users, one new account without usage, one whose history is only 10 days long),
  each with several chats (sessions of a few requests);
- chat messages, code completions and image generations on models that
  genai-prices prices (image generation has a fixed per-call price, seeded into
  `operation_prices` if none exists);
- welcome grants, credit purchases (automatic top-ups), a bonus, an admin
  adjustment, and a refunded purchase that leaves one account owing credit; some
  balances end low or critical on purpose.

Token counts come from lognormal distributions fitted to the real trace (below), so
no data file is needed at run time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection

from pricing_core.adapters.schema import accounts, chats, operation_prices
from pricing_core.adapters.storage import run_write
from pricing_core.admin.accounts import adjust_balance
from pricing_core.catalog.price_book import clear_price_cache, get_price_book
from pricing_core.config import get_settings
from pricing_core.domain.costing import TokenCounts
from pricing_core.domain.errors import PricingError
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
from pricing_core.metering.batch import record_usage_batch

# ---------------------------------------------------------------- fitted token distributions
#
# Source: Azure LLM inference trace 2023 (Azure/AzurePublicDataset,
# AzureLLMInferenceTrace_conv.csv: 19,366 requests; AzureLLMInferenceTrace_code.csv:
# 8,819 requests; Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0), read from
# ../shared/data/azure-llm-inference-2023/.
# Fit: maximum-likelihood lognormal per file and column, i.e. mu = mean(ln tokens)
# and sigma = population standard deviation of ln(tokens) (numpy, ddof=0), over all
# rows (every count in the trace is >= 2). Draws are rounded and clipped to the
# trace's observed [min, max]. The fit reproduces the medians closely for output
# tokens (conv: fitted 151 vs observed 129; code: 16 vs 13) and puts input medians
# at 760 (observed 1,020) for conversations and 1,095 (1,469) for code; the log
# correlation of input and output is weak in both files (0.09 and 0.00), so they are
# drawn independently.


@dataclass(frozen=True, slots=True)
class LogNormal:
    """ln(tokens) ~ Normal(mu, sigma), clipped to [low, high] after rounding."""

    mu: float
    sigma: float
    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return min(max(round(rng.lognormvariate(self.mu, self.sigma)), self.low), self.high)


CONVERSATION_INPUT = LogNormal(mu=6.6333, sigma=0.9852, low=2, high=14_050)
CONVERSATION_OUTPUT = LogNormal(mu=5.0190, sigma=0.8590, low=7, high=1_000)
CODE_INPUT = LogNormal(mu=6.9986, sigma=1.3602, low=3, high=7_437)
CODE_OUTPUT = LogNormal(mu=2.7882, sigma=0.8472, low=6, high=1_899)
IMAGE_PROMPT = LogNormal(mu=4.0, sigma=0.5, low=8, high=400)  # short prompts; not fitted

DEMO_DAYS = 90
# The operator who made the demo's goodwill adjustment (audited like a real one).
DEMO_ADMIN = Principal("admin@demo.example", "northwind", role="admin", email="admin@demo.example")
IMAGE_OPERATION = "image_generation"
IMAGE_PRICE = Decimal("0.04")  # USD per image charged
IMAGE_PROVIDER_COST = Decimal("0.032")  # USD per image paid to the provider


class DatabaseNotEmpty(PricingError):
    """Demo data is only seeded into a database without accounts."""


class Intensity(StrEnum):
    LIGHT = "light"
    MEDIUM = "medium"
    HEAVY = "heavy"


class Funding(StrEnum):
    """How an account's credit evolves over the demo period."""

    TOP_UP = "top_up"  # buys a pack whenever the balance runs low
    GRANT_ONLY = "grant_only"  # lives on the welcome grant
    TARGET = "target"  # one purchase sized so the balance ends at `target`
    REFUNDED = "refunded"  # a purchase later refunded: the account owes credit


# Sessions (chats) per day by intensity: the mean of a Poisson draw.
SESSIONS_PER_DAY = {Intensity.LIGHT: 0.12, Intensity.MEDIUM: 0.3, Intensity.HEAVY: 0.6}
# Requests per session: 1 + a geometric draw with this mean of extra requests.
EXTRA_REQUESTS = {"chat_message": 3.0, "code_completion": 4.0, IMAGE_OPERATION: 1.0}

CHAT_TOPICS = [
    "Trip to Lisbon", "Cover letter", "Weekly meal plan", "Tax questions", "Gift ideas",
    "Bug in the checkout", "Marketing email", "Book summary", "Workout routine",
    "Customer reply", "Translate a contract", "Product description", "Budget spreadsheet",
    "Learning Spanish", "Birthday speech", "Blog post draft", "Garden planning",
    "Refund policy wording", "Job interview prep", "Recipe with leftovers",
]  # fmt: skip
CODE_TOPICS = [
    "Refactor the parser", "SQL query tuning", "Unit tests for billing", "Fix flaky CI",
    "Pandas groupby", "React form validation", "Dockerfile cleanup", "Regex for dates",
    "Rust lifetimes", "API pagination", "Migrate to SQLAlchemy 2", "Bash backup script",
]  # fmt: skip
IMAGE_TOPICS = [
    "Logo ideas", "Poster for the fair", "Product photos", "Storyboard", "Icon set",
    "Birthday card", "Banner for the shop",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """One demo account: who it is and how it uses the product.

    `mix`: (operation, provider, model, weight) choices, one per chat.
    """

    id: str
    name: str
    intensity: Intensity
    mix: tuple[tuple[str, str, str, int], ...]
    funding: Funding = Funding.TOP_UP
    kind: str = "personal"
    users: tuple[str, ...] = ()
    history_days: int = DEMO_DAYS
    target: Decimal = Decimal(0)  # end balance for Funding.TARGET
    pack: Decimal = Decimal(20)  # top-up purchase, USD
    top_up_below: Decimal = Decimal(2)


CHAT_CHEAP = ("chat_message", "openai", "gpt-4o-mini")
CHAT_FLASH = ("chat_message", "google", "gemini-2.5-flash")
CHAT_41 = ("chat_message", "openai", "gpt-4.1")
CHAT_SONNET = ("chat_message", "anthropic", "claude-sonnet-4-0")
CHAT_HAIKU = ("chat_message", "anthropic", "claude-haiku-4-5")
CHAT_OPUS = ("chat_message", "anthropic", "claude-opus-4-1")
CODE_MINI = ("code_completion", "openai", "gpt-4.1-mini")
CODE_SONNET = ("code_completion", "anthropic", "claude-sonnet-4-0")
IMAGE = (IMAGE_OPERATION, "openai", "gpt-image-1")


def _mix(*choices: tuple[tuple[str, str, str], int]) -> tuple[tuple[str, str, str, int], ...]:
    return tuple((*choice, weight) for choice, weight in choices)


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "ada", "Ada Lovelace", Intensity.HEAVY,
        _mix((CHAT_OPUS, 3), (CHAT_SONNET, 4), (CHAT_41, 2), (CHAT_CHEAP, 1)), pack=Decimal(50),
        top_up_below=Decimal(5),
    ),
    DemoAccount(
        "northwind", "Northwind Support (team)", Intensity.HEAVY,
        _mix((CHAT_CHEAP, 6), (CHAT_FLASH, 3), (CHAT_HAIKU, 1)), kind="team",
        users=("northwind-ana", "northwind-ben", "northwind-chen"), pack=Decimal(20),
    ),
    DemoAccount(
        "grace", "Grace Hopper", Intensity.HEAVY,
        _mix((CODE_SONNET, 5), (CODE_MINI, 3), (CHAT_OPUS, 2)), pack=Decimal(50),
        top_up_below=Decimal(5),
    ),
    DemoAccount("linus", "Linus Code", Intensity.MEDIUM, _mix((CODE_MINI, 6), (CHAT_CHEAP, 2))),
    DemoAccount(
        "maya", "Maya Studio", Intensity.MEDIUM, _mix((IMAGE, 5), (CHAT_FLASH, 3))
    ),
    DemoAccount("omar", "Omar Haddad", Intensity.MEDIUM, _mix((CHAT_41, 4), (CHAT_HAIKU, 4))),
    DemoAccount(
        "sofia", "Sofia Rossi", Intensity.MEDIUM, _mix((CHAT_SONNET, 6), (IMAGE, 1)),
        funding=Funding.TARGET, target=Decimal("0.62"),
    ),
    DemoAccount(
        "kenji", "Kenji Sato", Intensity.MEDIUM, _mix((CHAT_OPUS, 2), (CHAT_SONNET, 3)),
        funding=Funding.TARGET, target=Decimal("0.07"),
    ),
    DemoAccount(
        "lena", "Lena Fischer", Intensity.LIGHT, _mix((CHAT_CHEAP, 4), (CHAT_FLASH, 2)),
        funding=Funding.GRANT_ONLY,
    ),
    DemoAccount(
        "tom", "Tom Baker", Intensity.MEDIUM, _mix((CHAT_SONNET, 3), (CHAT_41, 2)),
        funding=Funding.REFUNDED,
    ),
    DemoAccount(
        "priya", "Priya Nair", Intensity.HEAVY, _mix((CHAT_HAIKU, 3), (CODE_MINI, 2)),
        funding=Funding.GRANT_ONLY, history_days=10,
    ),
    DemoAccount(
        "noah", "Noah Kim (new)", Intensity.LIGHT, _mix((CHAT_CHEAP, 1)),
        funding=Funding.GRANT_ONLY, history_days=0,
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What seeding wrote."""

    seed: int
    accounts: int
    users: int
    chats: int
    events: int
    refused: int
    ledger_entries: int


@dataclass(slots=True)
class _Plan:
    """Everything to write, in time order."""

    events: list[tuple[datetime, UsageEvent]] = field(default_factory=list)
    credits: list[tuple[datetime, str, str, Decimal, EntryKind, str]] = field(default_factory=list)
    titles: dict[tuple[str, str], str] = field(default_factory=dict)


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _geometric(rng: random.Random, mean: float) -> int:
    """Extra requests in a session: P(k) = (1-q) q^k with mean q / (1-q)."""
    q = mean / (1 + mean)
    k = 0
    while rng.random() < q:
        k += 1
    return k


def _tokens(rng: random.Random, operation: str) -> tuple[int, int]:
    if operation == "code_completion":
        return CODE_INPUT.draw(rng), CODE_OUTPUT.draw(rng)
    if operation == IMAGE_OPERATION:
        return IMAGE_PROMPT.draw(rng), 0
    return CONVERSATION_INPUT.draw(rng), CONVERSATION_OUTPUT.draw(rng)


def _title(rng: random.Random, operation: str, n: int) -> str:
    topics = {"code_completion": CODE_TOPICS, IMAGE_OPERATION: IMAGE_TOPICS}.get(
        operation, CHAT_TOPICS
    )
    return f"{topics[rng.randrange(len(topics))]} #{n}"


def _sessions(
    account: DemoAccount,
    rng: random.Random,
    *,
    start_day: date,
    today: date,
    now: datetime,
    seed: int,
) -> Iterator[tuple[str, str, list[UsageEvent]]]:
    """(chat_id, title, events) per session, in time order."""
    tz = get_settings().tz
    users = (account.id, *account.users)
    weights = [w for *_, w in account.mix]
    chat_no = 0
    request_no = 0
    day = start_day
    while day <= today:
        factor = 0.6 if day.weekday() >= 5 else 1.0
        starts = sorted(
            datetime.combine(day, time(7), tz) + timedelta(seconds=rng.randrange(15 * 3600))
            for _ in range(_poisson(rng, SESSIONS_PER_DAY[account.intensity] * factor))
        )
        if (
            day == today
            and account.intensity is Intensity.HEAVY
            and not any(s <= now for s in starts)
        ):
            # Heavy users are active today, so "spent today" is never empty for them.
            day_start = datetime.combine(day, time(), tz)
            starts = [max(day_start, now - timedelta(minutes=30 + rng.randrange(90)))]
        for started in starts:
            operation, provider, model, _ = rng.choices(account.mix, weights)[0]
            user = users[rng.randrange(len(users))]
            chat_no += 1
            chat_id = f"{account.id}-chat-{chat_no:03d}"
            title = _title(rng, operation, chat_no)
            count = 1 + _geometric(rng, EXTRA_REQUESTS[operation])
            at = started.astimezone(UTC)
            events = []
            history = 0  # a chat resends the conversation so far with every message
            for _ in range(count):
                if at > now:
                    break
                request_no += 1
                input_tokens, output_tokens = _tokens(rng, operation)
                if operation == "chat_message":
                    input_tokens = min(input_tokens + history, CONVERSATION_INPUT.high)
                    history = input_tokens + output_tokens
                events.append(
                    UsageEvent(
                        request_id=f"demo{seed}-{account.id}-{request_no:05d}",
                        account_id=account.id,
                        user_id=user,
                        operation=operation,
                        provider=provider,
                        model=model,
                        input_tokens=input_tokens,
                        output_tokens=output_tokens,
                        chat_id=chat_id,
                        created_at=at,
                    )
                )
                at += timedelta(seconds=20 + rng.randrange(300))
            if events:
                yield chat_id, title, events
        day += timedelta(days=1)


def _cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_CEILING)


def plan_demo(engine: Engine, *, seed: int, now: datetime) -> _Plan:
    """Decide every event and ledger change (pure apart from reading the price book)."""
    tz = get_settings().tz
    book = get_price_book(engine)
    today = now.astimezone(tz).date()
    plan = _Plan()
    welcome = get_settings().welcome_credit
    for index, account in enumerate(ACCOUNTS):
        rng = random.Random(f"{seed}:{account.id}")
        start_day = today - timedelta(days=max(account.history_days - 1, 0))
        opened = datetime.combine(start_day, time(6), tz).astimezone(UTC) - timedelta(minutes=index)
        events: list[UsageEvent] = []
        if account.history_days:
            for chat_id, title, session in _sessions(
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
            ).price
            for e in events
        ]
        grant = welcome
        credits: list[tuple[datetime, str, str, Decimal, EntryKind, str]] = []
        if account.funding is Funding.TOP_UP:
            balance = grant
            for n, (event, price) in enumerate(zip(events, prices, strict=True)):
                if balance - price < account.top_up_below:
                    at = event.created_at - timedelta(seconds=10)  # type: ignore[operator]
                    credits.append(
                        (at, account.id, f"demo{seed}:topup:{account.id}:{n}", account.pack,
                         EntryKind.PURCHASE, f"credit pack ${account.pack}")
                    )  # fmt: skip
                    balance += account.pack
                balance -= price
        elif account.funding is Funding.TARGET:
            # No welcome grant (signed up before it existed); one purchase of a custom
            # amount, sized so the balance ends at the target.
            grant = Decimal(0)
            credits.append(
                (opened + timedelta(minutes=1), account.id, f"demo{seed}:target:{account.id}",
                 _cents_up(sum(prices, Decimal(0)) + account.target), EntryKind.PURCHASE,
                 "credit purchase")
            )  # fmt: skip
        elif account.funding is Funding.REFUNDED:
            grant = Decimal(0)
            purchase = Decimal(5)
            spent = Decimal(0)
            kept = []
            for event, price in zip(events, prices, strict=True):
                if spent + price > purchase - Decimal("1.5"):
                    break
                spent += price
                kept.append(event)
            events = kept
            last = events[-1].created_at if events else opened  # type: ignore[assignment]
            credits.append(
                (opened + timedelta(minutes=1), account.id, f"demo{seed}:buy:{account.id}",
                 purchase, EntryKind.PURCHASE, "credit pack $5")
            )  # fmt: skip
            credits.append(
                (last + timedelta(hours=2), account.id, f"demo{seed}:refund:{account.id}",
                 -purchase, EntryKind.REFUND, "card payment disputed: purchased credits taken back")
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


def _set_budgets(engine: Engine, now: datetime) -> None:
    """Grace's budget is 85 % used this month (the banner shows), Omar's is far off."""

    with engine.connect() as conn:
        spent = spend_in_month(conn, "grace", now=now)
    limit = _cents_up(spent / Decimal("0.85")) if spent >= Decimal("0.01") else Decimal(5)
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
    earliest = now - timedelta(days=DEMO_DAYS + 1)
    _ensure_image_price(engine, earliest)
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
                    lambda conn, a=account_id, m=amount, k=key, r=reason, w=when: post_entry(
                        conn, account_id=a, amount=m, kind=EntryKind.REFUND, idempotency_key=k,
                        reason=r, reference=k, floor=None, now=w,
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
