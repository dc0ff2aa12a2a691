"""A real browser buys a credit pack: `streamlit run app.py` against the fake Stripe
API; Debian's chromium clicks a package, follows the redirect to the hosted checkout
page and back to the success URL, and sees the new balance. The fake also sends the
signed `checkout.session.completed` webhook to the same server, racing the redirect:
the pack is credited once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from pricing_core.adapters import storage
from pricing_core.adapters.schema_billing import stripe_events
from pricing_core.ledger.integrity import verify_ledger
from pricing_core.ledger.wallets import create_account, get_wallet
from tests.fakes.stripe_server import FakeStripe

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    for port in range(8600, 8700):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8600-8699")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not come up")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, FakeStripe, object]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = storage.make_engine(db_url)
    storage.upgrade(engine)
    create_account(engine, "ada", name="Ada", opening_credit=Decimal("1"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeStripe() as fake:
        fake.webhook_url = f"{base}/stripe/webhook"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PRICING_DATABASE_URL": db_url,
            "PRICING_DEMO": "on",
            "PRICING_PUBLIC_URL": base,
            "PRICING_STRIPE_SECRET_KEY": fake.api_key,
            "PRICING_STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
            "PRICING_STRIPE_API_BASE": fake.url,
        }
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.port", str(port), "--server.address", "127.0.0.1",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_healthy(base, proc)
            yield base, fake, engine
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stderr:
                proc.stderr.close()
            engine.dispose()


def test_a_buyer_clicks_a_package_pays_on_stripe_and_sees_the_new_balance(shop):
    from playwright.sync_api import expect, sync_playwright

    base, fake, engine = shop
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base, timeout=60_000)
            # the app's own navigation (not Streamlit's file-based page list it shows
            # before app.py's first run has finished)
            nav = page.get_by_test_id("stSidebarNavItems").get_by_role(
                "link", name="Buy credits", exact=True
            )
            expect(page.get_by_role("combobox", name="View as account")).to_be_visible(
                timeout=60_000
            )
            nav.click()
            expect(page.get_by_role("heading", name="Popular", exact=True)).to_be_visible(
                timeout=60_000
            )
            expect(page.get_by_text("Most popular", exact=True)).to_be_visible()
            expect(page.get_by_role("heading", name="$17.99")).to_be_visible()
            buy = page.get_by_role("button", name="Buy")
            expect(buy).to_have_count(4, timeout=30_000)
            buy.nth(1).click()  # the second card: Popular
            page.wait_for_url(f"{base}/buy_credits?session_id=cs_test_*", timeout=60_000)
            expect(page.get_by_text("New balance: $21.00")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("$21.00", exact=True)).to_be_visible()  # the balance metric
        finally:
            browser.close()

    (sid,) = fake.sessions
    assert page.url.endswith(f"session_id={sid}")
    deadline = time.monotonic() + 30
    while not fake.webhook_replies and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fake.webhook_replies == [200]
    with engine.connect() as conn:
        (event,) = conn.execute(select(stripe_events)).all()
    assert event.type == "checkout.session.completed" and event.status == "processed"
    assert get_wallet(engine, "ada").balance == Decimal("21")  # 1 + 18 + 2 bonus, once
    assert verify_ledger(engine).ok
