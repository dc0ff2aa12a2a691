"""The demo's cast and its habits: a dozen accounts (light to heavy, prepaid or on a
plan), the models they use, and token counts drawn from distributions fitted to the
real Azure trace. Deterministic from a seed."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.wallets import (
    EntryKind,
)

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

    mu: float  # log-token parameters, not money
    sigma: float  # not money
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
# the image and video studio's operations, priced per unit by the credit preset
# (`admin.presets.CREDIT_PRICES`): a few requests a session, 1-4 units each
STUDIO_OPERATIONS = ("video_generation", "style_transfer", "meme_generation", "image_editing")
EXTRA_REQUESTS |= dict.fromkeys(STUDIO_OPERATIONS, 1.5)

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
    bought_days_ago: tuple[int, ...] = ()  # packs bought on these days, besides top-ups
    max_quantity: int = 1  # units per call of its fixed-price operations (1..max)


CHAT_CHEAP = ("chat_message", "openai", "gpt-4o-mini")
CHAT_FLASH = ("chat_message", "google", "gemini-2.5-flash")
CHAT_41 = ("chat_message", "openai", "gpt-4.1")
CHAT_SONNET = ("chat_message", "anthropic", "claude-sonnet-4-0")
CHAT_HAIKU = ("chat_message", "anthropic", "claude-haiku-4-5")
CHAT_OPUS = ("chat_message", "anthropic", "claude-opus-4-1")
CODE_MINI = ("code_completion", "openai", "gpt-4.1-mini")
CODE_SONNET = ("code_completion", "anthropic", "claude-sonnet-4-0")
IMAGE = (IMAGE_OPERATION, "openai", "gpt-image-1")
DALL_E = (IMAGE_OPERATION, "openai", "dall-e-3")
DIFFUSION = (IMAGE_OPERATION, "stability", "stable-diffusion")
VIDEO = ("video_generation", "google", "veo-3")
GHIBLI = ("style_transfer", "studio", "ghibli")
CARTOON = ("style_transfer", "studio", "cartoon")
MEME = ("meme_generation", "studio", "meme")


def _mix(*choices: tuple[tuple[str, str, str], int]) -> tuple[tuple[str, str, str, int], ...]:
    return tuple((*choice, weight) for choice, weight in choices)


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "ada", "Ada Lovelace", Intensity.HEAVY,
        _mix((CHAT_OPUS, 3), (CHAT_SONNET, 4), (CHAT_41, 2), (CHAT_CHEAP, 1)), pack=Decimal(50),
        top_up_below=Decimal(5), bought_days_ago=(52, 9),
    ),
    DemoAccount(
        "northwind", "Northwind Support (team)", Intensity.HEAVY,
        _mix((CHAT_CHEAP, 6), (CHAT_FLASH, 3), (CHAT_HAIKU, 1)), kind="team",
        users=("northwind-ana", "northwind-ben", "northwind-chen"), pack=Decimal(20),
        bought_days_ago=(61, 33, 4),
    ),
    DemoAccount(
        "grace", "Grace Hopper", Intensity.HEAVY,
        _mix((CODE_SONNET, 5), (CODE_MINI, 3), (CHAT_OPUS, 2)), pack=Decimal(50),
        top_up_below=Decimal(5), bought_days_ago=(17,),
    ),
    DemoAccount("linus", "Linus Code", Intensity.MEDIUM, _mix((CODE_MINI, 6), (CHAT_CHEAP, 2))),
    DemoAccount(
        "maya", "Maya Studio", Intensity.MEDIUM, _mix((IMAGE, 5), (CHAT_FLASH, 3)),
        bought_days_ago=(24, 2),
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
        funding=Funding.REFUNDED, history_days=12,  # bought, used, disputed days later
    ),
    DemoAccount(
        "priya", "Priya Nair", Intensity.HEAVY, _mix((CHAT_HAIKU, 3), (CODE_MINI, 2)),
        funding=Funding.GRANT_ONLY, history_days=10,
    ),
    DemoAccount(
        "noah", "Noah Kim (new)", Intensity.LIGHT, _mix((CHAT_CHEAP, 1)),
        funding=Funding.GRANT_ONLY, history_days=0,
    ),
    DemoAccount(  # an image and video generator priced in credits (fixed prices per unit)
        "pixel", "Pixel Forge (images & video)", Intensity.MEDIUM,
        _mix((DALL_E, 4), (DIFFUSION, 3), (GHIBLI, 2), (CARTOON, 2), (MEME, 2), (VIDEO, 3)),
        pack=Decimal(20), top_up_below=Decimal(3), max_quantity=4,
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
class DemoPlan:
    """Everything to write, in time order."""

    events: list[tuple[datetime, UsageEvent]] = field(default_factory=list)
    credits: list[tuple[datetime, str, str, Decimal, EntryKind, str]] = field(default_factory=list)
    titles: dict[tuple[str, str], str] = field(default_factory=dict)


def _poisson(rng: random.Random, mean: float) -> int:  # counts, not money
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _geometric(rng: random.Random, mean: float) -> int:  # counts, not money
    """Extra requests in a session: P(k) = (1-q) q^k with mean q / (1-q)."""
    q = mean / (1 + mean)
    k = 0
    while rng.random() < q:
        k += 1
    return k


def _tokens(rng: random.Random, operation: str) -> tuple[int, int]:
    if operation == "code_completion":
        return CODE_INPUT.draw(rng), CODE_OUTPUT.draw(rng)
    if operation == IMAGE_OPERATION or operation in STUDIO_OPERATIONS:
        return IMAGE_PROMPT.draw(rng), 0
    return CONVERSATION_INPUT.draw(rng), CONVERSATION_OUTPUT.draw(rng)


def _title(rng: random.Random, operation: str, n: int) -> str:
    topics = {"code_completion": CODE_TOPICS, "chat_message": CHAT_TOPICS}.get(
        operation, IMAGE_TOPICS
    )
    return f"{topics[rng.randrange(len(topics))]} #{n}"


def sessions_of(
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
                quantity = (
                    1 + rng.randrange(account.max_quantity) if account.max_quantity > 1 else 1
                )
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
                        quantity=quantity,
                    )
                )
                at += timedelta(seconds=20 + rng.randrange(300))
            if events:
                yield chat_id, title, events
        day += timedelta(days=1)


def cents_up(amount: Decimal) -> Decimal:
    """`amount` rounded up to whole cents (a pack the account can afford)."""
    return amount.quantize(Decimal("0.01"), rounding=ROUND_CEILING)
