"""The Azure trace importer on both back ends: row reports, idempotent re-import,
opening balances, overdraft, deterministic mapping, CLI and exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pricing_core.analytics.exports import ExportFormat, export_usage
from pricing_core.cli.main import app
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import get_wallet
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import (
    InvalidImport,
    RowOutcome,
    TraceMapping,
    parse_model_mix,
    parse_timestamp,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
GOOD = [
    "2023-11-16 18:15:46.6805900,374,44",
    "2023-11-16 18:15:50.9951690,396,109",
    "2023-11-16 18:15:51.2224670,879,55",
    "2023-11-16 18:20:51.3910179,91,16",
    "2023-11-16 18:31:00,1000,0",
]
BAD = {
    "2023-11-16 18:15:52.0000000,-5,10": "ContextTokens",
    "2023-11-16 18:15:53.0000000,12.5,10": "ContextTokens",
    "2023-11-16 18:15:54.0000000,10,NaN": "GeneratedTokens",
    "2023-11-16 18:15:55.0000000,1e3,10": "ContextTokens",
    "2023-11-16 18:15:56.0000000,10": "expected 3 fields",
    "2023-13-16 18:15:57.0000000,10,10": "timestamp",
    "16/11/2023 18:15:58,10,10": "timestamp",
    "2023-11-16 18:15:59.0000000,,10": "ContextTokens",
    "2023-11-16 18:16:00.0000000,999999999999,10": "exceeds",
}


def write_trace(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join([HEADER, *lines]), encoding="utf-8")
    return path


def mapping(operation: str = "chat_message", **overrides: object) -> TraceMapping:
    fields: dict = dict(operation=operation, users=3, models=parse_model_mix(DEFAULT_MODEL_MIX))
    fields.update(overrides)
    return TraceMapping(**fields)


def usage_rows(engine) -> list[dict]:
    out = io.StringIO()
    export_usage(engine, out, ExportFormat.JSONL)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_bad_rows_are_reported_with_their_line_numbers_and_good_rows_imported(engine, tmp_path):
    lines = GOOD[:2] + list(BAD) + GOOD[2:]
    path = write_trace(tmp_path / "trace.csv", lines)
    summary = import_azure_trace(engine, path, mapping(), now=NOW)
    assert (summary.rows, summary.imported, summary.skipped) == (len(lines), len(GOOD), len(BAD))
    reported = {p.line: p for p in summary.problems}
    for offset, (row, needle) in enumerate(BAD.items()):
        line = 2 + 2 + offset  # header is line 1, then two good rows
        assert reported[line].outcome is RowOutcome.SKIPPED
        assert needle in reported[line].message, (row, reported[line].message)
    report = verify_ledger(engine)
    assert report.ok and report.events == len(GOOD)


def test_re_running_the_same_import_adds_nothing(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    first = import_azure_trace(engine, path, mapping(), now=NOW)
    before = usage_rows(engine)
    again = import_azure_trace(engine, path, mapping(), now=NOW + timedelta(days=1))
    assert first.imported == len(GOOD)
    assert (again.imported, again.already_present, again.accounts_created) == (0, len(GOOD), 0)
    assert usage_rows(engine) == before


def test_re_running_a_shifted_import_later_adds_nothing(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    first = import_azure_trace(engine, path, mapping(), now=NOW, shift_to_now=True)
    latest = max(row["created_at"] for row in usage_rows(engine))
    assert latest == "2025-06-01T00:00:00.000000Z"
    again = import_azure_trace(
        engine, path, mapping(), now=NOW + timedelta(hours=5), shift_to_now=True
    )
    assert (first.imported, again.imported, again.already_present) == (len(GOOD), 0, len(GOOD))


def test_the_seventh_fractional_digit_is_truncated_not_rounded():
    assert parse_timestamp("2023-11-16 18:20:51.3910179") == datetime(
        2023, 11, 16, 18, 20, 51, 391017, tzinfo=UTC
    )
    assert parse_timestamp("2023-11-16 18:31:00") == datetime(2023, 11, 16, 18, 31, tzinfo=UTC)


def test_events_the_wallet_cannot_pay_are_rejected_unless_overdraft_is_allowed(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    refused = import_azure_trace(
        engine, path, mapping(users=1), opening_balance=Decimal("0"), now=NOW
    )
    assert (refused.imported, refused.rejected) == (0, len(GOOD))
    assert all(p.outcome is RowOutcome.REJECTED for p in refused.problems)
    assert verify_ledger(engine).events == 0

    allowed = import_azure_trace(engine, path, mapping(users=1), allow_overdraft=True, now=NOW)
    assert (allowed.imported, allowed.rejected) == (len(GOOD), 0)
    wallet = get_wallet(engine, "trace-user-1")
    assert wallet.balance == -allowed.charged_usd < 0
    assert verify_ledger(engine).ok


def test_new_accounts_start_with_the_opening_balance(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD[:1])
    summary = import_azure_trace(
        engine, path, mapping(users=1), opening_balance=Decimal("2.50"), now=NOW
    )
    assert summary.accounts_created == 1
    assert get_wallet(engine, "trace-user-1").balance == Decimal("2.50") - summary.charged_usd


def test_the_mapping_is_deterministic_from_the_seed(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    import_azure_trace(engine, path, mapping(seed=7, users=50), now=NOW)
    first = usage_rows(engine)
    import_azure_trace(engine, path, mapping(seed=7, users=50), now=NOW)
    assert usage_rows(engine) == first
    import_azure_trace(engine, path, mapping(seed=8, users=50), now=NOW)
    second = [r for r in usage_rows(engine) if r not in first]
    assert len(second) == len(GOOD)
    assert [r["account_id"] for r in first] != [r["account_id"] for r in second] or [
        r["model"] for r in first
    ] != [r["model"] for r in second]


def test_a_users_requests_split_into_chats_at_the_inactivity_gap(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    import_azure_trace(engine, path, mapping(users=1, chat_gap_seconds=120), now=NOW)
    rows = sorted(usage_rows(engine), key=lambda r: r["created_at"])
    chats = [r["chat_id"] for r in rows]
    # gaps: 4.3 s, 0.2 s, 300 s, 609 s -> three chats
    assert chats[0] == chats[1] == chats[2] != chats[3] != chats[4]
    assert len({r["model"] for r in rows[:3]}) == 1  # one model per chat


def test_zipf_shares_skew_requests_toward_the_first_accounts(engine, tmp_path):
    lines = [f"2023-11-16 18:{m:02d}:{s:02d}.0000000,100,10" for m in range(10) for s in range(60)]
    path = write_trace(tmp_path / "trace.csv", lines)
    import_azure_trace(engine, path, mapping(users=10, zipf_exponent=Decimal(1)), now=NOW)
    counts: dict[str, int] = {}
    for row in usage_rows(engine):
        counts[row["account_id"]] = counts.get(row["account_id"], 0) + 1
    harmonic = sum(Decimal(1) / k for k in range(1, 11))
    expected_top = Decimal(600) / harmonic  # about 205
    assert abs(counts["trace-user-1"] - expected_top) < 50
    assert counts["trace-user-1"] > counts["trace-user-2"] > counts.get("trace-user-10", 0)


@pytest.mark.parametrize(
    ("mix", "needle"),
    [
        ("openai:no-such-model=1", "no-such-model"),
        ("openai-gpt-4o-mini=1", "provider:model"),
        ("openai:gpt-4o-mini=-1", "positive"),
        ("openai:gpt-4o-mini=NaN", "positive"),
        ("", "empty"),
    ],
)
def test_a_bad_model_mix_is_refused_before_anything_is_written(mix, needle):
    with pytest.raises(InvalidImport, match=needle):
        parse_model_mix(mix)


def test_a_file_with_the_wrong_header_is_refused(engine, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InvalidImport, match="header"):
        import_azure_trace(engine, path, mapping(), now=NOW)
    with pytest.raises(InvalidImport, match="cannot read"):
        import_azure_trace(engine, tmp_path / "missing.csv", mapping(), now=NOW)


def test_an_empty_file_is_refused_as_empty_naming_the_header_it_needs(engine, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InvalidImport) as refused:
        import_azure_trace(engine, path, mapping(), now=NOW)
    assert str(refused.value) == (
        "empty.csv is empty: expected the header TIMESTAMP,ContextTokens,GeneratedTokens"
    )


def test_the_cli_imports_then_exports_usage_and_ledger_as_csv_and_jsonl(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD + ["2023-11-16 18:40:00,-1,2"])
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "import",
            "azure-trace",
            str(path),
            "--operation",
            "code_completion",
            "--users",
            "2",
            "--opening-balance",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(GOOD) + 1} rows: {len(GOOD)} imported, 1 skipped" in result.stdout
    assert f"line {len(GOOD) + 2}: skipped" in result.stderr

    out = tmp_path / "usage.csv"
    result = runner.invoke(app, ["usage", "export", "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
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
        "cache_write_tokens",
        "service_tier",
        "quantity",
        "provider_cost_usd",
        "price_usd",
        "created_at",
    ]
    assert len(rows) == len(GOOD)
    assert {r["operation"] for r in rows} == {"code_completion"}

    result = runner.invoke(app, ["ledger", "export", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(entries[0]) == [
        "entry_id",
        "account_id",
        "kind",
        "amount_usd",
        "balance_after_usd",
        "idempotency_key",
        "reference",
        "reason",
        "actor",
        "created_at",
    ]
    usage = [e for e in entries if e["kind"] == "usage"]
    assert len(usage) == len(GOOD)
    assert {e["kind"] for e in entries} == {"grant", "usage"}
    charged = sum(Decimal(r["price_usd"]) for r in rows)
    assert -sum(Decimal(e["amount_usd"]) for e in usage) == charged
    assert all(isinstance(e["amount_usd"], str) for e in entries)

    result = runner.invoke(app, ["ledger", "verify"])
    assert result.exit_code == 0 and "ledger OK" in result.stdout


def test_the_cli_reports_a_bad_option_without_a_traceback(engine, tmp_path):
    path = write_trace(tmp_path / "trace.csv", GOOD)
    result = CliRunner().invoke(
        app, ["import", "azure-trace", str(path), "--operation", "chat_message", "--models", "x:y"]
    )
    assert result.exit_code == 2
    assert "error:" in result.stderr and "'x'" in result.stderr


def test_a_far_future_row_is_reported_and_never_anchors_the_shift(engine, tmp_path):
    path = write_trace(tmp_path / "t.csv", [*GOOD[:3], "2099-01-01 00:00:00.0,10,10"])
    summary = import_azure_trace(engine, path, mapping(), now=NOW, shift_to_now=True)
    assert summary.imported == 3  # the real rows, moved so the last real one is at NOW
    [problem] = summary.problems
    assert problem.line == 5 and problem.outcome is RowOutcome.SKIPPED
    assert "2099-01-01 00:00:00 is in the future" in problem.message
    out = io.StringIO()
    export_usage(engine, out, ExportFormat.CSV)
    stamps = sorted(row["created_at"] for row in csv.DictReader(io.StringIO(out.getvalue())))
    latest = datetime.fromisoformat(stamps[-1])
    assert abs(latest - NOW) < timedelta(seconds=1)


@pytest.mark.parametrize("digits", ["\u0661\u0662\u0663", "\uff11\uff12", "\u00b2"])
def test_token_counts_are_ascii_digits_only(engine, tmp_path, digits):
    path = write_trace(tmp_path / "t.csv", [GOOD[0], f"2023-11-16 18:15:47.0,{digits},5"])
    summary = import_azure_trace(engine, path, mapping(), now=NOW)
    assert summary.imported == 1
    [problem] = summary.problems
    assert problem.line == 3 and "ContextTokens must be a non-negative integer" in problem.message
