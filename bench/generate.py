"""Deterministic synthetic usage at scale, resampled from a real trace.

`generate(workload)` yields DataFrames of usage events (one chunk at a time, memory
bounded) for `workload.events` events over `workload.accounts` accounts and
`workload.days` days. How the trace is mapped (the trace has no users, chats or
models, so this is our choice, made deterministically from the seed):

- token counts: (input, output) pairs drawn with replacement from the real Azure LLM
  inference trace 2023 (Patel et al., "Splitwise", ISCA 2024, CC-BY 4.0): the
  conversation file for `chat_message` events (70%), the code file for
  `code_completion` events (30%);
- cached tokens: a quarter of chat messages read 20-90% of their input from the
  provider's prompt cache;
- days: weight 1 on weekdays, 0.65 on Saturdays, 0.55 on Sundays, with traffic growing
  linearly to 1.5x over the period; times of day follow a daily rhythm peaking at
  15:00 UTC and bottoming at 03:00 UTC;
- accounts: log-normal activity (a few heavy accounts, a long tail); one in ten is a
  team account with 2-10 users; each account has a favourite model used for 60% of
  its calls, the rest follow the global model mix;
- chats: a chat message belongs to one of eight chats of its user per day.

The same seed and start date give the same events, byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pricing_core.config import PROJECT_ROOT

TRACE_NAME = "azure-llm-inference-2023"
MODEL_MIX = (  # (provider, model, share of calls)
    ("openai", "gpt-4o-mini", 0.30),
    ("openai", "gpt-4.1-mini", 0.15),
    ("openai", "gpt-4o", 0.10),
    ("anthropic", "claude-3-5-haiku-latest", 0.10),
    ("anthropic", "claude-sonnet-4-0", 0.10),
    ("google", "gemini-2.0-flash", 0.12),
    ("google", "gemini-2.5-pro", 0.05),  # tiered price
    ("deepseek", "deepseek-chat", 0.08),  # off-peak price by time of day
)
OPERATIONS = ("chat_message", "code_completion")
COLUMNS = (
    "request_id",
    "account_id",
    "user_id",
    "chat_id",
    "operation",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "created_at",
)


def trace_dir() -> Path:
    """Where the real trace lives (never copied into the project).

    `PRICING_TRACE_DIR` wins; otherwise `../shared/data/<trace>` from the project root
    (or from the folder above it, for git worktrees).
    """
    if env := os.environ.get("PRICING_TRACE_DIR"):
        return Path(env)
    for base in (PROJECT_ROOT.parent, PROJECT_ROOT.parent.parent):
        candidate = base / "shared" / "data" / TRACE_NAME
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"trace {TRACE_NAME} not found; set PRICING_TRACE_DIR")


@lru_cache(maxsize=2)
def load_trace(kind: str) -> np.ndarray:
    """(input, output) token pairs of the trace's `conv` or `code` file, int64 [n, 2]."""
    path = trace_dir() / f"AzureLLMInferenceTrace_{kind}.csv"
    frame = pd.read_csv(path, usecols=["ContextTokens", "GeneratedTokens"])
    return frame.to_numpy(dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Workload:
    """What to generate. `start` is the first UTC day (default: `days` before today)."""

    events: int = 10_000_000
    accounts: int = 10_000
    days: int = 180
    seed: int = 42
    chunk: int = 50_000
    start: date = field(default_factory=lambda: datetime.now(UTC).date() - timedelta(days=180))

    def account_ids(self) -> list[str]:
        return [f"acct-{i:05d}" for i in range(self.accounts)]


@dataclass(frozen=True, slots=True)
class Population:
    """The accounts of a workload: activity weights, users, favourite models."""

    ids: np.ndarray  # str
    weights: np.ndarray  # float64 activity share (sums to 1); not money
    users: np.ndarray  # int: users per account (1 = personal)
    favourite: np.ndarray  # int index into MODEL_MIX


def population(workload: Workload) -> Population:
    rng = np.random.default_rng([workload.seed, 0])
    weights = rng.lognormal(0.0, 1.4, workload.accounts)
    team = rng.random(workload.accounts) < 0.1
    users = np.where(team, rng.integers(2, 11, workload.accounts), 1)
    favourite = rng.choice(len(MODEL_MIX), workload.accounts, p=_mix())
    return Population(
        np.array(workload.account_ids(), dtype=object), weights / weights.sum(), users, favourite
    )


def _mix() -> np.ndarray:
    shares = np.array([share for *_, share in MODEL_MIX])
    return shares / shares.sum()


def day_counts(workload: Workload) -> np.ndarray:
    """Events per day: weekly rhythm and growth, summing exactly to `events`."""
    weekday = np.array(
        [(workload.start + timedelta(days=d)).weekday() for d in range(workload.days)]
    )
    weekly = np.select([weekday == 5, weekday == 6], [0.65, 0.55], 1.0)
    growth = 1.0 + 0.5 * np.arange(workload.days) / max(workload.days - 1, 1)
    weights = weekly * growth
    rng = np.random.default_rng([workload.seed, 1])
    return rng.multinomial(workload.events, weights / weights.sum())


def _minute_of_day_weights() -> np.ndarray:
    minutes = np.arange(1440)
    rhythm = 1.0 + 0.8 * np.sin(2 * np.pi * (minutes / 60.0 - 9.0) / 24.0)  # peak 15:00
    return rhythm / rhythm.sum()


def generate(workload: Workload) -> Iterator[pd.DataFrame]:
    """Yield the workload's events in time order, at most `workload.chunk` per frame.

    Columns: COLUMNS; `created_at` is datetime64[us, UTC]; the string columns
    are categoricals except the ids that are unique per event or chat.
    """
    people = population(workload)
    conv, code = load_trace("conv"), load_trace("code")
    counts = day_counts(workload)
    minute_p = _minute_of_day_weights()
    mix = _mix()
    providers = pd.Categorical([p for p, _, _ in MODEL_MIX])
    models = pd.Categorical([m for _, m, _ in MODEL_MIX])
    operations = pd.Categorical(OPERATIONS)
    serial = 0
    for day, count in enumerate(counts):
        rng = np.random.default_rng([workload.seed, 2, day])
        midnight = pd.Timestamp(workload.start, tz=UTC) + pd.Timedelta(days=day)
        micros = np.sort(
            rng.choice(1440, count, p=minute_p) * 60_000_000 + rng.integers(0, 60_000_000, count)
        )
        account = rng.choice(workload.accounts, count, p=people.weights)
        user = rng.integers(0, 1 << 30, count) % people.users[account]
        is_code = rng.random(count) < 0.3
        pairs = np.where(
            is_code[:, None],
            code[rng.integers(0, len(code), count)],
            conv[rng.integers(0, len(conv), count)],
        )
        model = np.where(
            rng.random(count) < 0.6, people.favourite[account], rng.choice(len(mix), count, p=mix)
        )
        cache_share = np.where(
            (~is_code) & (rng.random(count) < 0.25), rng.integers(20, 91, count), 0
        )
        chat = rng.integers(0, 8, count)
        for lo in range(0, count, workload.chunk):
            hi = min(lo + workload.chunk, count)
            yield _frame(
                workload, people, serial + lo, slice(lo, hi), day, midnight, micros, account,
                user, is_code, pairs, model, cache_share, chat, providers, models, operations,
            )  # fmt: skip
        serial += count


def _frame(
    workload: Workload,
    people: Population,
    first: int,
    part: slice,
    day: int,
    midnight: pd.Timestamp,
    micros: np.ndarray,
    account: np.ndarray,
    user: np.ndarray,
    is_code: np.ndarray,
    pairs: np.ndarray,
    model: np.ndarray,
    cache_share: np.ndarray,
    chat: np.ndarray,
    providers: pd.Categorical,
    models: pd.Categorical,
    operations: pd.Categorical,
) -> pd.DataFrame:
    n = part.stop - part.start
    ids = people.ids[account[part]]
    teams = people.users[account[part]] > 1
    users = np.where(teams, ids + "-u" + user[part].astype(str), ids)
    code = is_code[part]
    chats = np.where(
        code, None, f"c{day:03d}-" + chat[part].astype(str) + "-" + user[part].astype(str)
    )
    inputs = pairs[part, 0]
    return pd.DataFrame(
        {
            "request_id": [f"gen{workload.seed}-{i}" for i in range(first, first + n)],
            "account_id": pd.Categorical(ids, categories=people.ids),
            "user_id": users,
            "chat_id": chats,
            "operation": pd.Categorical.from_codes(code.astype(np.int8), dtype=operations.dtype),
            "provider": pd.Categorical(
                np.asarray(providers)[model[part]], categories=providers.categories
            ),
            "model": pd.Categorical.from_codes(_codes(models, model[part]), dtype=models.dtype),
            "input_tokens": inputs,
            "output_tokens": pairs[part, 1],
            "cached_tokens": inputs * cache_share[part] // 100,
            "created_at": pd.DatetimeIndex(
                midnight + pd.to_timedelta(micros[part], unit="us")
            ).as_unit("us"),
        }
    )


def _codes(categorical: pd.Categorical, index: np.ndarray) -> np.ndarray:
    return np.asarray(categorical.codes)[index]
