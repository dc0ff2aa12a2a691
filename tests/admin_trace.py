"""The real Azure trace, imported with the product's own importer, and its exports
parsed back (the admin tests' independent source of truth)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from pricing_core.analytics.exports import ExportFormat, export_ledger, export_usage
from pricing_core.ledger.wallets import create_account
from pricing_core.metering.importers import DEFAULT_MODEL_MIX, import_azure_trace
from pricing_core.metering.trace import TraceMapping, parse_model_mix

TRACE_DIR = Path("/work/shared/data/azure-llm-inference-2023")
IMPORTED_AT = datetime(2023, 11, 17, 9, 0, tzinfo=UTC)


def import_real_trace(engine: Engine, tmp_path: Path, *, rows: int | None = None) -> int:
    """Import the conversation trace as chat_message and the code trace as
    code_completion (12 accounts, overdraft allowed, as the vertical slice's done-when
    does), or only the first `rows` rows of each when given (a copy in `tmp_path`,
    never in the repository). Also creates the operator's admin account.
    Returns: the number of events imported."""
    total = 0
    for name, operation in (("conv", "chat_message"), ("code", "code_completion")):
        path = TRACE_DIR / f"AzureLLMInferenceTrace_{name}.csv"
        if rows is not None:
            with path.open(newline="") as src:
                head = [line for _, line in zip(range(rows + 1), src, strict=False)]
            path = tmp_path / f"{name}-{rows}.csv"
            path.write_text("".join(head))
        summary = import_azure_trace(
            engine,
            path,
            TraceMapping(
                operation=operation, seed=7, users=12, models=parse_model_mix(DEFAULT_MODEL_MIX)
            ),
            opening_balance=Decimal(5),
            allow_overdraft=True,
            now=IMPORTED_AT,
        )
        assert summary.rejected == 0, summary.problems[:3]
        total += summary.imported
    create_account(
        engine,
        "ops",
        name="Operator",
        email="ops@example.com",
        role="admin",
        opening_credit=Decimal(0),
        now=IMPORTED_AT,
    )
    return total


def exported(engine: Engine) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(usage events, ledger entries) as the CSV exports give them (strings)."""
    usage, ledger = io.StringIO(), io.StringIO()
    export_usage(engine, usage, ExportFormat.CSV)
    export_ledger(engine, ledger, ExportFormat.CSV)
    return (
        list(csv.DictReader(io.StringIO(usage.getvalue()))),
        list(csv.DictReader(io.StringIO(ledger.getvalue()))),
    )
