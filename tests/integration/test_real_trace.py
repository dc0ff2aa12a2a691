"""The real Azure LLM inference trace (both files) through the CLI into PostgreSQL and
SQLite: identical exports, a clean ledger, and every provider cost equal to
genai-prices' own price rounded half-even to the nano-USD.

The trace is read from `../shared/data/azure-llm-inference-2023/` (never copied
into the project); without it the test skips, saying so.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from genai_prices import Usage, calc_price
from typer.testing import CliRunner

from pricing_core.adapters import storage
from pricing_core.analytics.exports import ExportFormat, export_ledger, export_usage
from pricing_core.cli.main import app
from pricing_core.config import get_settings
from pricing_core.metering.trace import find_trace_dir

TRACE = find_trace_dir()
FILES = (
    ("AzureLLMInferenceTrace_conv.csv", "chat_message"),
    ("AzureLLMInferenceTrace_code.csv", "code_completion"),
)
NANO = Decimal("1e-9")

pytestmark = pytest.mark.skipif(
    TRACE is None, reason="the Azure trace is not at ../shared/data/azure-llm-inference-2023/"
)


def data_rows(path) -> int:
    """Requests in a trace file, counted independently of the importer."""
    with path.open(newline="") as handle:
        return sum(1 for row in csv.reader(handle) if row) - 1


def import_and_export(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("PRICING_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    for name, operation in FILES:
        result = runner.invoke(
            app,
            [
                "import",
                "azure-trace",
                str(TRACE / name),
                "--operation",
                operation,
                "--allow-overdraft",
            ],
        )
        assert result.exit_code == 0, result.output
        rows = data_rows(TRACE / name)
        assert f"{rows} rows: {rows} imported, 0 skipped" in result.stdout
    verified = runner.invoke(app, ["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "ledger OK" in verified.stdout
    engine = storage.open_database()
    usage, ledger = io.StringIO(), io.StringIO()
    export_usage(engine, usage, ExportFormat.CSV)
    export_ledger(engine, ledger, ExportFormat.CSV)
    return usage.getvalue(), ledger.getvalue()


def without_created_at(ledger_csv: str) -> list[list[str]]:
    """Ledger rows minus `created_at`, which is the wall-clock time of each import."""
    return [row[:-1] for row in csv.reader(io.StringIO(ledger_csv))]


@pytest.mark.postgres
def test_both_trace_files_import_identically_into_postgresql_and_sqlite(
    sqlite_url, pg_url, monkeypatch
):
    sqlite_usage, sqlite_ledger = import_and_export(sqlite_url, monkeypatch)
    pg_usage, pg_ledger = import_and_export(pg_url, monkeypatch)

    assert sqlite_usage == pg_usage
    assert without_created_at(sqlite_ledger) == without_created_at(pg_ledger)

    rows = list(csv.DictReader(io.StringIO(pg_usage)))
    expected = sum(data_rows(TRACE / name) for name, _ in FILES)
    assert expected == 28_185  # README/issue say 28,183: `wc -l` misses each last line
    assert len(rows) == expected
    assert len({(r["account_id"], r["request_id"]) for r in rows}) == expected
    assert {r["operation"] for r in rows} == {"chat_message", "code_completion"}
    assert {(r["service_tier"], r["cache_write_tokens"]) for r in rows} == {("standard", "0")}

    for r in rows:
        at = datetime.fromisoformat(r["created_at"])
        exact = calc_price(
            Usage(input_tokens=int(r["input_tokens"]), output_tokens=int(r["output_tokens"])),
            r["model"],
            provider_id=r["provider"],
            genai_request_timestamp=at,
        ).total_price
        assert Decimal(r["provider_cost_usd"]) == exact.quantize(NANO, ROUND_HALF_EVEN), r
        assert Decimal(r["price_usd"]) == (exact * Decimal("1.25")).quantize(
            NANO, ROUND_HALF_EVEN
        ), r
