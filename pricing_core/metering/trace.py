"""Reading the Azure LLM inference trace (CSV: TIMESTAMP, ContextTokens,
GeneratedTokens) and mapping its rows to usage events: accounts, users, chats and
models drawn deterministically from each row's key, per `TraceMapping`."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from pathlib import Path

from pricing_core.catalog.price_book import provider_price
from pricing_core.config import PROJECT_ROOT
from pricing_core.domain.errors import PricingError
from pricing_core.domain.usage_event import MAX_TOKENS, UsageEvent

TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
)
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape decodes a bad byte
_TOKENS = re.compile(r"[0-9]+")  # ASCII digits only: int() also reads "١٢٣"
_SPACE = Decimal(2) ** 64
MAX_REPORTED_PROBLEMS = 1000
TRACE_DIR_NAME = "azure-llm-inference-2023"


class InvalidImport(PricingError):
    """An import cannot start: unreadable file, wrong header, bad options."""


class RowOutcome(StrEnum):
    """What happened to one row of an import."""

    IMPORTED = "imported"
    SKIPPED = "skipped"  # a bad row (reported with its line number)
    REJECTED = "rejected"  # the wallet could not pay (no --allow-overdraft)
    ALREADY_PRESENT = "already_present"  # imported before: nothing new written


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A reported row: `line` is the 1-based line of the file (header = 1)."""

    line: int
    outcome: RowOutcome
    message: str


@dataclass(frozen=True, slots=True)
class ModelChoice:
    provider: str
    model: str
    weight: Decimal


@dataclass(frozen=True, slots=True)
class TraceMapping:
    """How trace rows become accounts, chats and models (all deterministic).

    Attributes:
        operation: the operation of every row, e.g. "chat_message".
        seed: any integer; the same seed gives the same mapping.
        users: number of accounts (1 ... 100,000).
        zipf_exponent: skew of the request shares (0 = uniform; 1 = classic Zipf).
        chat_gap_seconds: a user's inactivity longer than this starts a new chat.
        models: weighted (provider, model) mix.
    """

    operation: str
    seed: int = 0
    users: int = 100
    zipf_exponent: Decimal = Decimal(1)
    chat_gap_seconds: int = 120
    models: tuple[ModelChoice, ...] = ()


@dataclass(slots=True)
class ImportSummary:
    """Counts of an import and the rows reported (first `MAX_REPORTED_PROBLEMS`)."""

    rows: int = 0
    imported: int = 0
    skipped: int = 0
    rejected: int = 0
    already_present: int = 0
    accounts_created: int = 0
    charged_usd: Decimal = Decimal(0)
    problems: list[RowProblem] = field(default_factory=list)

    def report(self, line: int, outcome: RowOutcome, message: str) -> None:
        if outcome is RowOutcome.SKIPPED:
            self.skipped += 1
        elif outcome is RowOutcome.REJECTED:
            self.rejected += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(RowProblem(line, outcome, message))


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One good row of the trace. `at` is UTC, truncated to the microsecond."""

    line: int
    at: datetime
    input_tokens: int
    output_tokens: int
    digest: str


def find_trace_dir() -> Path | None:
    """Where the real trace lives: `$PRICING_TRACE_DIR`, else `../shared/data/
    azure-llm-inference-2023/` next to the project (or next to its worktree folder).
    Returns: the folder, or None if absent (it is never part of the project)."""
    env = os.environ.get("PRICING_TRACE_DIR")
    candidates = [Path(env)] if env else []
    candidates += [
        parent / "shared" / "data" / TRACE_DIR_NAME for parent in PROJECT_ROOT.parents[:3]
    ]
    return next((c for c in candidates if c.is_dir()), None)


def parse_model_mix(text: str) -> tuple[ModelChoice, ...]:
    """Parse `provider:model=weight,...` (weight a positive decimal; default 1).

    Every model must be priced per token, without tiers, by the genai-prices
    snapshot, under exactly that provider and model id.
    Raises: InvalidImport naming the bad entry.
    """
    choices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition("=")
        provider, sep, model = name.strip().partition(":")
        if not sep or not provider or not model:
            raise InvalidImport(f"model mix entry {part!r} is not provider:model=weight")
        try:
            weight = Decimal(weight_text.strip() or "1")
        except InvalidOperation:
            raise InvalidImport(f"model mix weight {weight_text!r} is not a number") from None
        if not weight.is_finite() or weight <= 0:
            raise InvalidImport(f"model mix weight {weight_text!r} must be positive")
        try:
            listed = provider_price(provider, model, datetime.now(UTC))
        except PricingError as exc:
            raise InvalidImport(f"model mix entry {part!r}: {exc}") from None
        if (listed.provider, listed.model) != (provider, model):
            raise InvalidImport(
                f"model mix entry {part!r}: genai-prices calls it "
                f"{listed.provider}:{listed.model}; use that id"
            )
        if listed.tiered:
            raise InvalidImport(f"model mix entry {part!r} has tiered prices; pick another")
        choices.append(ModelChoice(provider, model, weight))
    if not choices:
        raise InvalidImport("the model mix is empty")
    return tuple(choices)


def parse_timestamp(text: str) -> datetime:
    """`YYYY-MM-DD HH:MM:SS[.f...]` (no zone) -> aware UTC datetime, fraction truncated
    to the microsecond. Raises: ValueError."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if not match:
        raise ValueError(f"bad timestamp {text!r:.60}, expected YYYY-MM-DD HH:MM:SS.fffffff")
    *parts, fraction = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    year, month, day, hour, minute, second = (int(p) for p in parts)
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"bad timestamp {text!r:.60}: {exc}") from None


def _tokens(name: str, text: str) -> int:
    value = text.strip()
    if not _TOKENS.fullmatch(value):
        raise ValueError(f"{name} must be a non-negative integer, got {text!r:.60}")
    count = int(value)
    if count > MAX_TOKENS:
        raise ValueError(f"{name} {count} exceeds {MAX_TOKENS:,}")
    return count


def read_trace(path: Path, summary: ImportSummary) -> list[TraceRow]:
    """Read and check every row; bad rows go to `summary` as SKIPPED.

    Returns: the good rows in file order. Raises: InvalidImport (unreadable file, a
    line that is not UTF-8 text, or wrong header), naming the line.
    """
    try:
        # surrogateescape: a bad byte is found on the row it is on (a decoding error
        # would surface where the read buffer starts, with the wrong line number)
        handle = path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise InvalidImport(f"cannot read {str(path)!r}: {exc.strerror}") from None
    rows: list[TraceRow] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise InvalidImport(
                    f"{path.name} is empty: expected the header {','.join(TRACE_COLUMNS)}"
                )
            if tuple(h.strip() for h in header) != TRACE_COLUMNS:
                raise InvalidImport(
                    f"{path.name}: header {header!r:.120} is not {','.join(TRACE_COLUMNS)}"
                )
            for fields in reader:
                line = reader.line_num
                summary.rows += 1
                if len(fields) != 3:
                    summary.report(
                        line,
                        RowOutcome.SKIPPED,
                        f"expected 3 fields (TIMESTAMP,ContextTokens,GeneratedTokens), "
                        f"got {len(fields)}",
                    )
                    continue
                if any(_BAD_BYTE.search(f) for f in fields):
                    raise InvalidImport(f"{path.name} line {line}: unreadable: not UTF-8 text")
                try:
                    at = parse_timestamp(fields[0])
                    input_tokens = _tokens("ContextTokens", fields[1])
                    output_tokens = _tokens("GeneratedTokens", fields[2])
                except ValueError as exc:
                    summary.report(line, RowOutcome.SKIPPED, str(exc))
                    continue
                raw = ",".join(fields).encode("utf-8", "surrogateescape")
                digest = hashlib.blake2b(raw, digest_size=3).hexdigest()
                rows.append(TraceRow(line, at, input_tokens, output_tokens, digest))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidImport(f"{path.name} line {reader.line_num}: unreadable: {exc}") from None
    return rows


def _fraction(key: str) -> Decimal:
    """A deterministic number in [0, 1) from a key (64 bits of blake2b)."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return Decimal(value) / _SPACE


def _cumulative(weights: Sequence[Decimal]) -> list[Decimal]:
    total, out = Decimal(0), []
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(cumulative: list[Decimal], key: str) -> int:
    return min(bisect_right(cumulative, _fraction(key) * cumulative[-1]), len(cumulative) - 1)


def account_id_for(k: int) -> str:
    """The account id of the k-th (1-based, by share) trace user."""
    return f"trace-user-{k}"


def map_trace(
    rows: Sequence[TraceRow], mapping: TraceMapping, *, source: str, offset: timedelta
) -> Iterator[tuple[int, UsageEvent]]:
    """Turn good rows into usage events, deterministically (see the module docstring).

    Yields: (line, UsageEvent) in file order.
    """
    models = "+".join(f"{m.provider}:{m.model}={m.weight}" for m in mapping.models)
    tag = hashlib.blake2b(
        f"{source}|{mapping.operation}|{mapping.seed}|{mapping.users}|"
        f"{mapping.zipf_exponent}|{mapping.chat_gap_seconds}|{models}".encode(),
        digest_size=4,
    ).hexdigest()
    with localcontext() as ctx:
        ctx.prec = 34
        shares = _cumulative(
            [Decimal(k) ** -mapping.zipf_exponent for k in range(1, mapping.users + 1)]
        )
    model_weights = _cumulative([m.weight for m in mapping.models])
    user_of = {
        r.line: _pick(shares, f"{mapping.seed}|user|{mapping.operation}|{r.line}") + 1 for r in rows
    }
    chat_of: dict[int, int] = {}  # line -> line of the chat's first request
    last_seen: dict[int, tuple[datetime, int]] = {}
    gap = timedelta(seconds=mapping.chat_gap_seconds)
    for r in sorted(rows, key=lambda r: (r.at, r.line)):
        user = user_of[r.line]
        previous = last_seen.get(user)
        if previous is None or r.at - previous[0] > gap:
            chat_of[r.line] = r.line
        else:
            chat_of[r.line] = previous[1]
        last_seen[user] = (r.at, chat_of[r.line])
    for r in rows:
        account = account_id_for(user_of[r.line])
        first = chat_of[r.line]
        model = mapping.models[_pick(model_weights, f"{mapping.seed}|model|{tag}|{first}")]
        yield (
            r.line,
            UsageEvent(
                request_id=f"az-{tag}-{r.line}-{r.digest}",
                account_id=account,
                user_id=account,
                operation=mapping.operation,
                provider=model.provider,
                model=model.model,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                chat_id=f"az-{tag}-chat-{first}",
                created_at=r.at + offset,
            ),
        )
