"""Importers for real input, with per-row error reports.

`import_azure_trace` loads the Azure LLM inference trace 2023 (CSV with columns
`TIMESTAMP,ContextTokens,GeneratedTokens`; Patel et al., "Splitwise", ISCA 2024,
CC-BY 4.0). The trace has no users, chats or models, so they are derived
deterministically from the options (`TraceMapping`):

- **Timestamps**: `YYYY-MM-DD HH:MM:SS[.fffffff]`, no zone, read as UTC. The 7th
  fractional digit (100 ns) is truncated, never rounded, so both back ends store the
  same microsecond. `shift_to_now` moves every row by one offset so the file's latest
  row lands on `now` (the import's clock).
- **Users**: `users` personal accounts `trace-user-1` ... `trace-user-N` (each with one
  user of the same id). Account k gets a Zipf share of the requests, proportional to
  `1 / k ** zipf_exponent` (k = 1 is the heaviest). Each row draws its account
  independently from a hash: `blake2b(f"{seed}|user|{operation}|{line}")` read as a
  64-bit fraction in [0, 1), looked up in the cumulative shares.
- **Chats**: one user's requests of one import, in time order (ties by line), form a
  chat until the gap to the previous request exceeds `chat_gap_seconds`; the next
  request opens a new chat. Chat id: `az-<tag>-chat-<line of its first request>`.
- **Models**: each chat uses one model, drawn from the weighted `models` mix with
  `blake2b(f"{seed}|model|{tag}|{chat's first line}")` the same way. The default
  mix uses current, non-tiered models that genai-prices prices (see
  `DEFAULT_MODEL_MIX`); a mix entry it cannot price is refused up front.
- **Request ids**: `az-<tag>-<line>-<row hash>`, where `tag` hashes the file's name,
  the operation and every mapping option (seed, users, Zipf exponent, chat gap,
  models) and the row hash is of the row's raw text. Re-running the same import
  therefore finds every id already present and adds nothing; changing a mapping
  option is a different import.

The file is read whole before anything is written (one small `TraceRow` per
request: chats need each user's requests in time order), then recorded in chunks
of 1,000 events per transaction through `ingest.record_usage_batch`. Rows already
recorded by an earlier run of the same import are counted as already present and
not sent again; the batch's rejections (position, request id, error) are reported
against their lines.

Bad rows (missing or extra fields, negative or non-integer tokens, bad timestamps)
are reported with their line numbers (the header is line 1) and skipped. An event
the wallet cannot pay is rejected and reported, unless `allow_overdraft`, which
records it and lets the balance go below zero (credit owed).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Engine, select

from pricing_core.adapters.schema import usage_events
from pricing_core.catalog.price_book import provider_price
from pricing_core.config import PROJECT_ROOT
from pricing_core.domain.errors import InsufficientBalance, InvalidUsage, PricingError
from pricing_core.domain.usage_event import MAX_TOKENS, UsageEvent, check_name
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.batch import BatchResult, record_usage_batch

TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
DEFAULT_MODEL_MIX = (
    "openai:gpt-4o-mini=35,openai:gpt-4.1-mini=20,openai:gpt-5-mini=15,"
    "anthropic:claude-haiku-4-5=15,google:gemini-2.5-flash=15"
)
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_TOKENS = re.compile(r"\d+")
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

    Returns: the good rows in file order. Raises: InvalidImport (unreadable file or
    wrong header).
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # tolerate a BOM
    except OSError as exc:
        raise InvalidImport(f"cannot read {str(path)!r}: {exc.strerror}") from None
    rows: list[TraceRow] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != TRACE_COLUMNS:
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


def _present(engine: Engine, events: Sequence[UsageEvent]) -> set[tuple[str, str]]:
    """The (account_id, request_id) pairs of `events` already recorded."""
    wanted = {(e.account_id, e.request_id) for e in events}
    if not wanted:
        return set()
    c = usage_events.c
    query = select(c.account_id, c.request_id).where(
        c.account_id.in_(sorted({a for a, _ in wanted})),
        c.request_id.in_(sorted(r for _, r in wanted)),
    )
    with engine.connect() as conn:
        return {(a, r) for a, r in conn.execute(query) if (a, r) in wanted}


def import_azure_trace(
    engine: Engine,
    path: Path,
    mapping: TraceMapping,
    *,
    opening_balance: Decimal | None = None,
    allow_overdraft: bool = False,
    shift_to_now: bool = False,
    now: datetime | None = None,
    chunk_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import one Azure LLM inference trace file (see the module docstring for the
    mapping).

    Args:
        path: the CSV file.
        mapping: operation, seed, users, Zipf exponent, chat gap, model mix.
        opening_balance: USD granted to each account the import creates (default:
            the `welcome_credit` setting). Existing accounts are left as they are.
        allow_overdraft: record events the wallet cannot pay (balance goes below 0).
        shift_to_now: move the trace so its latest row is at `now`.
        now: the import's clock (default: the current time, UTC); also the time of
            the ledger entries and of created accounts.
        on_progress: called with (rows done, rows total) after every chunk.
    Returns: ImportSummary with counts and reported rows (line numbers).
    Raises: InvalidImport (unreadable file, wrong header, bad options). Row problems
        never raise; they are reported.
    """
    try:
        check_name("operation", mapping.operation)
    except InvalidUsage as exc:
        raise InvalidImport(str(exc)) from None
    if not mapping.models:
        raise InvalidImport("the model mix is empty")
    if not 1 <= mapping.users <= 100_000:
        raise InvalidImport(f"users must be between 1 and 100,000, got {mapping.users}")
    if mapping.chat_gap_seconds < 0:
        raise InvalidImport(f"chat gap must not be negative, got {mapping.chat_gap_seconds}")
    if not mapping.zipf_exponent.is_finite() or not 0 <= mapping.zipf_exponent <= 10:
        raise InvalidImport(f"Zipf exponent must be between 0 and 10, got {mapping.zipf_exponent}")
    at = now or datetime.now(UTC)
    summary = ImportSummary()
    rows = read_trace(Path(path), summary)
    offset = at - max(r.at for r in rows) if shift_to_now and rows else timedelta(0)
    events = list(map_trace(rows, mapping, source=Path(path).name, offset=offset))

    for account in sorted({e.account_id for _, e in events}):
        k = account.rsplit("-", 1)[1]
        if create_account(
            engine, account, name=f"Trace user {k}", opening_credit=opening_balance, now=at
        ):
            summary.accounts_created += 1

    done = summary.rows - len(events)
    if on_progress:
        on_progress(done, summary.rows)
    for start in range(0, len(events), chunk_size):
        chunk = events[start : start + chunk_size]
        present = _present(engine, [e for _, e in chunk])
        todo = [(line, e) for line, e in chunk if (e.account_id, e.request_id) not in present]
        summary.already_present += len(chunk) - len(todo)
        result = record_usage_batch(
            engine,
            [e for _, e in todo],
            allow_overdraft=allow_overdraft,
            chunk_size=chunk_size,
            now=at,
        )
        _tally(summary, [line for line, _ in todo], result)
        done += len(chunk)
        if on_progress:
            on_progress(done, summary.rows)
    return summary


def _tally(summary: ImportSummary, lines: list[int], result: BatchResult) -> None:
    """Count one batch; `lines[k]` is the file line of the batch's k-th event."""
    for rejection in result.rejected:  # in batch order, as the rows come in the file
        outcome = (
            RowOutcome.REJECTED
            if isinstance(rejection.error, InsufficientBalance)
            else RowOutcome.SKIPPED
        )
        summary.report(lines[rejection.position], outcome, str(rejection.error))
    summary.already_present += result.replayed
    summary.imported += result.recorded
    summary.charged_usd += result.price
