"""Feature flags in the dashboard: PRICING_ENABLE_BILLING off hides purchases."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pricing_core.access import auth
from pricing_core.adapters import storage
from pricing_core.config import get_settings
from pricing_core.domain.principal import Principal
from pricing_core.ledger.wallets import create_account

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def buy_links(at: AppTest) -> list[str]:
    links = [e.proto.label for e in at.get("page_link")]
    buttons = [b.label for b in at.button]
    return [label for label in links + buttons if "Buy credits" in label]


@pytest.mark.parametrize("billing", ["true", "false"])
def test_switching_billing_off_hides_every_way_to_buy_credits(sqlite_url, monkeypatch, billing):
    monkeypatch.setenv("PRICING_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PRICING_ENABLE_BILLING", billing)
    get_settings.cache_clear()
    engine = storage.open_database(sqlite_url)
    create_account(engine, "alice", name="Alice", opening_credit=Decimal(3))
    monkeypatch.setattr(auth, "current_principal", lambda *a, **k: Principal("alice", "alice"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    if billing == "true":
        assert buy_links(at)
    else:
        assert buy_links(at) == []
