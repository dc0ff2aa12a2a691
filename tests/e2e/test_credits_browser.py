"""Credits in a real browser (Debian's chromium): the demo dashboard with
PRICING_UNIT=credits (10 credits per USD) and the credit preset's packs; every page,
member and admin, opens without an error, and amounts read in credits.

With DOCS_SCREENSHOTS=<dir>, the Overview and Buy credits screenshots are copied
there (the committed docs/credits-*.png)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pricing_core.adapters import storage
from pricing_core.admin.presets import apply_credit_preset
from pricing_core.config import get_settings
from tests.admin_support import ADMIN
from tests.e2e.test_admin_screenshots import demo_dashboard
from tests.e2e.test_buy_credits_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e
CREDITS = {"PRICING_UNIT": "credits", "PRICING_CREDITS_PER_USD": "10"}


@pytest.fixture
def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in CREDITS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with demo_dashboard(tmp_path, CREDITS) as base:
        engine = storage.make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
        apply_credit_preset(engine, ADMIN)  # the source's packs, in credits
        engine.dispose()
        yield base
    get_settings.cache_clear()


def titles(nav) -> list[str]:  # type: ignore[no-untyped-def]
    """The sidebar's page titles (a link's text starts with its icon's name)."""
    return [link.inner_text().splitlines()[-1].strip() for link in nav.get_by_role("link").all()]


def settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000
    )
    page.wait_for_timeout(2500)  # let Plotly and the tables finish drawing


def test_every_page_opens_in_credits_and_the_balance_reads_in_credits(dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1800})
            page.goto(f"{dashboard}/?account=pixel", timeout=90_000)
            balance = page.get_by_test_id("stMetric").filter(has_text="Balance").first
            expect(balance).to_contain_text("credits", timeout=90_000)
            settle(page)
            page.screenshot(path=str(tmp_path / "credits-overview.png"), full_page=True)
            nav = page.get_by_test_id("stSidebarNavItems")
            members = titles(nav)
            assert {"Overview", "Pricing", "Buy credits", "Transactions"} <= set(members), members
            opened = []
            for title in members:
                nav.get_by_role("link", name=title, exact=True).click()
                settle(page)
                expect(page.get_by_test_id("stException")).to_have_count(0)
                opened.append(title)
                if title == "Buy credits":
                    expect(page.get_by_text("200 credits").first).to_be_visible()
                    expect(page.get_by_text("$17.99").first).to_be_visible()
                    page.screenshot(path=str(tmp_path / "credits-buy.png"), full_page=True)
            switch = page.get_by_role("switch", name="View as admin (demo)")
            switch.click(force=True)  # Streamlit's label sits over the input
            expect(switch).to_be_checked()
            settle(page)
            admins = [title for title in titles(nav) if title not in members]
            assert "Price book" in admins and "Revenue" in admins
            for title in admins:
                nav.get_by_role("link", name=title, exact=True).click()
                settle(page)
                expect(page.get_by_test_id("stException")).to_have_count(0)
                opened.append(title)
        finally:
            browser.close()
    assert opened == members + admins
    for shot in ("credits-overview", "credits-buy"):
        assert (tmp_path / f"{shot}.png").stat().st_size > 10_000
        if os.environ.get("DOCS_SCREENSHOTS"):
            shutil.copy(tmp_path / f"{shot}.png", Path(os.environ["DOCS_SCREENSHOTS"]))
