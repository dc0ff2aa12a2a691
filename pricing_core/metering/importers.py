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
of 1,000 events per transaction through `batch.record_usage_batch`. Rows already
recorded by an earlier run of the same import are counted as already present and
not sent again; the batch's rejections (position, request id, error) are reported
against their lines.

Bad rows (missing or extra fields, negative or non-integer tokens, bad timestamps)
are reported with their line numbers (the header is line 1) and skipped. An event
the wallet cannot pay is rejected and reported, unless `allow_overdraft`, which
records it and lets the balance go below zero (credit owed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select

from pricing_core.adapters.schema import usage_events
from pricing_core.domain.errors import InsufficientBalance, InvalidUsage
from pricing_core.domain.usage_event import MAX_AHEAD, UsageEvent, check_name
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.batch import BatchResult, record_usage_batch
from pricing_core.metering.trace import (
    ImportSummary,
    InvalidImport,
    RowOutcome,
    TraceMapping,
    TraceRow,
    map_trace,
    read_trace,
)

DEFAULT_MODEL_MIX = (
    "openai:gpt-4o-mini=35,openai:gpt-4.1-mini=20,openai:gpt-5-mini=15,"
    "anthropic:claude-haiku-4-5=15,google:gemini-2.5-flash=15"
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
        shift_to_now: move the trace so its latest row is at `now`; rows dated
            after a day from now are reported as skipped, never used as the anchor.
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
    rows = _not_future(read_trace(Path(path), summary), summary, now=at)
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


def _not_future(rows: list[TraceRow], summary: ImportSummary, *, now: datetime) -> list[TraceRow]:
    """The rows not dated after a day from now (`domain.usage_event.MAX_AHEAD`); the
    others are reported as skipped, so one row dated 2099 cannot become the anchor of
    `shift_to_now` and push the real rows out of range."""
    kept = []
    for row in rows:
        if row.at <= now + MAX_AHEAD:  # rows before EARLIEST may still be shifted
            kept.append(row)
        else:
            summary.report(
                row.line,
                RowOutcome.SKIPPED,
                f"TIMESTAMP {row.at:%Y-%m-%d %H:%M:%S} is in the future (after a day from now)",
            )
    return kept


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
