"""A real browser (Debian's chromium) opens every admin page as a demo admin and
screenshots it: `streamlit run app.py` on a SQLite database with the demo data."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pricing_core.adapters import storage
from pricing_core.demo.seed import seed_demo
from tests.e2e.test_buy_credits_browser import CHROMIUM, CHROMIUM_ARGS, wait_healthy

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("ADMIN_SCREENSHOTS", "/tmp/admin-screenshots"))
ADMIN_PAGES = [
    "Revenue", "Usage explorer", "Price book", "Packs & plans", "Pricing truth", "Accounts",
    "Billing & payments", "Integrity",
]  # fmt: skip


@contextmanager
def demo_dashboard(folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` in demo mode on a SQLite file with the demo data (and
    `env`, e.g. the unit settings); yields its base URL, stops it after."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    db_url = f"sqlite:///{folder / 'demo.db'}"
    engine = storage.make_engine(db_url)
    storage.upgrade(engine)
    seed_demo(engine, seed=0)
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRICING_DATABASE_URL": db_url,
           "PRICING_DEMO": "on", **(env or {})}  # fmt: skip
    for _attempt in range(3):  # other test runs share the 8600-8699 range: retry a taken port
        port = random_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_healthy(base, proc)
            break
        except RuntimeError:
            proc.wait(10)
    else:
        pytest.fail("streamlit did not start on any of 3 ports")
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    with demo_dashboard(tmp_path) as base:
        yield base


def random_port() -> int:
    ports = list(range(8600, 8700))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8600-8699")


def test_a_demo_admin_opens_and_screenshots_every_admin_page(dashboard):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2400})
            page.goto(dashboard, timeout=90_000)
            expect(page.get_by_role("combobox", name="View as account")).to_be_visible(
                timeout=90_000
            )
            nav = page.get_by_test_id("stSidebarNavItems")
            expect(nav.get_by_role("link", name="Revenue", exact=True)).to_have_count(0)
            switch = page.get_by_role("switch", name="View as admin (demo)")
            switch.click(force=True)  # Streamlit's label sits over the input
            expect(switch).to_be_checked()
            for title in ADMIN_PAGES:
                link = nav.get_by_role("link", name=title, exact=True)
                expect(link).to_be_visible(timeout=60_000)
                link.click()
                heading = page.get_by_role("heading", name=title, exact=True)
                expect(heading).to_be_visible(timeout=90_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(3000)  # let Plotly finish drawing
                expect(page.get_by_test_id("stException")).to_have_count(0)
                name = title.lower().replace(" ", "-")
                page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)
            expect(page.get_by_test_id("stMetricValue").first).to_be_visible()
        finally:
            browser.close()
    assert sorted(p.name for p in SHOTS.glob("admin-*.png")) == sorted(
        f"admin-{t.lower().replace(' ', '-')}.png" for t in ADMIN_PAGES
    )
