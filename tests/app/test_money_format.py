"""Issue 21, item 9: one money format on every page. Every page is rendered in AppTest
on the demo data, as a member and as an admin, and every dollar amount in its text
(titles, markdown, captions, alerts, metrics, text cells of tables) is checked
against the rule written out here, independently of `money.format_money`: cents from
one cent up (thousands separated), up to 4 significant digits below a cent. Rates
("$0.15/MTok", "$0.0125/message") are exact by design and exempt."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st

from pricing_core.access import auth
from pricing_core.demo.accounts import DEMO_ADMIN
from pricing_core.domain.principal import Principal
from tests.app.test_pages import APP, demo_db, demo_template  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.stem for p in (ROOT / "pages").glob("*.py") if not p.stem.startswith("_"))
MEMBER_PAGES = [p for p in PAGES if not p.startswith("admin_")]
AMOUNT = re.compile(r"(?<![\w/.])(-?)\$(\d[\d,]*+(?:\.\d+)?+)(?!\s*/)")
EXPONENT = re.compile(r"\d[eE][+-]?\d")


def offending(text: str) -> list[str]:
    """The amounts in `text` that break the rule, and any number in E notation."""
    bad = [m.group(0) for m in EXPONENT.finditer(text)]
    for match in AMOUNT.finditer(text):
        digits = match.group(2).rstrip(",")  # "$5, then"
        whole, _, frac = digits.partition(".")
        value = Decimal(digits.replace(",", ""))
        grouped = f"{int(whole.replace(',', '')):,}" == whole
        if value >= Decimal("0.01") or value == 0:
            ok = len(frac) == 2 and grouped
        else:
            significant = frac.lstrip("0")
            ok = whole == "0" and 1 <= len(significant) <= 4 and not frac.endswith("0")
        if not ok:
            bad.append(match.group(0))
    return bad


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("-$0.003 next to -$0.0146", ["-$0.0146"]),
        ("$0.306 next to $5.39", ["$0.306"]),
        ("$0.3 in the price book, and $0.040000000", ["$0.3", "$0.040000000"]),
        ("a cap of 1E+12 USD", ["1E+1"]),
        ("$1234.00 and $0.000241125", ["$1234.00", "$0.000241125"]),
        ("$1,234.50, -$0.31, $0.00, $0.0002304, $0.15/MTok, $0.0125/message", []),
    ],
)
def test_the_checker_catches_the_formats_the_issue_found(text, bad):
    assert offending(text) == bad


def in_context(text: str) -> list[str]:
    return [text[max(0, text.find(b) - 80) : text.find(b) + 40] for b in offending(text)]


def page_text(at) -> str:
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "warning",
             "error", "success", "text")  # fmt: skip
    parts = [str(e.value) for kind in kinds for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for table in [*at.dataframe, *at.table]:
        frame = table.value
        if isinstance(frame, pd.DataFrame):
            for column in frame.columns:
                parts += [v for v in frame[column].tolist() if isinstance(v, str)]
    return "\n".join(parts)


def rendered(monkeypatch, principal: Principal, page: str, **query: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: principal)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", MEMBER_PAGES)
def test_every_member_page_writes_money_one_way(demo_db, monkeypatch, page):  # noqa: F811
    query = {"chat": _a_chat(demo_db, "ada")} if page == "chats" else {}
    at = rendered(monkeypatch, Principal("ada", "ada"), page, **query)
    text = page_text(at)
    assert "$" in text or page == "notifications", text[:500]
    assert offending(text) == [], [
        text[max(0, text.find(b) - 80) : text.find(b) + 40] for b in offending(text)
    ]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_an_admin_opens_writes_money_one_way(demo_db, monkeypatch, page):  # noqa: F811
    at = rendered(monkeypatch, DEMO_ADMIN, page, account="ada")
    text = page_text(at)
    assert offending(text) == [], [
        text[max(0, text.find(b) - 80) : text.find(b) + 40] for b in offending(text)
    ]


def _a_chat(engine, account: str) -> str:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text("SELECT chat_id FROM chats WHERE account_id = :a ORDER BY requests DESC"),
                {"a": account},
            )
            .scalars()
            .first()
        )
