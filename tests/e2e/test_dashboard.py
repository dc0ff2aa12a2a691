"""End to end in Debian's chromium: `streamlit run app.py` on a temporary SQLite
database holding the real Azure trace (imported with the CLI), every end-user page
opened, balance and charts visible, a chat opened from its URL, a screenshot of each
page saved under the test's tmp_path."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from pricing_core.domain.money import format_money

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
    for port in range(8640, 8700):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8640-8699")


TRACE_FILES = (
    ("AzureLLMInferenceTrace_conv.csv", "chat_message"),
    ("AzureLLMInferenceTrace_code.csv", "code_completion"),
)


def seed(db_url: str) -> None:
    """Import the real trace (both files, shifted to end now, overdraft allowed) with
    the `pricing-core import azure-trace` command, as a user would."""
    from pricing_core.metering.trace import find_trace_dir

    data = find_trace_dir()
    if data is None:
        pytest.skip("the Azure trace is not available (../shared/data/azure-llm-inference-2023)")
    env = {**os.environ, "PRICING_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    for name, operation in TRACE_FILES:
        subprocess.run(
            [
                sys.executable, "-c", "from pricing_core.cli.main import main; main()",
                "import", "azure-trace", str(data / name), "--operation", operation,
                "--shift-to-now", "--allow-overdraft",
            ],
            cwd=ROOT, env=env, check=True, capture_output=True, timeout=900,
        )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    folder = tmp_path_factory.mktemp("e2e")
    db_url = f"sqlite:///{folder / 'dashboard.db'}"
    seed(db_url)
    port = free_port()
    env = {
        **os.environ,
        "PRICING_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
        "PRICING_DEMO": "on",
    }
    log = (folder / "streamlit.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(port), "--server.headless", "true",
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit did not start: {(folder / 'streamlit.log').read_text()}"
                )
            time.sleep(0.5)
        yield base, db_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def busiest_account(db_url: str) -> tuple[str, Decimal, str, str]:
    """(account, its balance from the ledger, its busiest chat id, that chat's title)."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        account = conn.execute(
            sa.text(
                "SELECT account_id FROM usage_events GROUP BY account_id "
                "ORDER BY COUNT(*) DESC, account_id LIMIT 1"
            )
        ).scalar_one()
        nanos = conn.execute(
            sa.text("SELECT SUM(amount) FROM ledger_entries WHERE account_id = :a"), {"a": account}
        ).scalar_one()
        chat_id, title = conn.execute(
            sa.text(
                "SELECT chat_id, COALESCE(title, chat_id) FROM chats WHERE account_id = :a "
                "ORDER BY requests DESC, chat_id LIMIT 1"
            ),
            {"a": account},
        ).one()
    engine.dispose()
    return account, Decimal(nanos).scaleb(-9), chat_id, title


def open_page(browser, url: str, shot: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1440, "height": 1600})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=60_000)
    page.wait_for_selector('[data-testid="stHeading"], h1', timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    for table in page.locator('[data-testid="stDataFrame"]').all():
        table.locator("canvas").first.wait_for(timeout=30_000)
    page.wait_for_function(  # tables are laid out (a fresh grid starts a few px wide)
        """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
              .every(t => t.getBoundingClientRect().width > 300)""",
        timeout=30_000,
    )
    page.wait_for_timeout(5000)  # let tables and charts finish drawing before the screenshot
    page.screenshot(path=str(shot), full_page=True)
    return page


def test_every_page_renders_with_balance_charts_and_a_chat_from_its_url(server, browser, tmp_path):
    from playwright.sync_api import expect

    base, db_url = server
    account, balance, chat_id, title = busiest_account(db_url)
    query = f"?account={account}"

    page = open_page(browser, f"{base}/{query}", tmp_path / "overview.png")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Balance").first
    expect(metric).to_contain_text(format_money(balance))
    expect(page.get_by_text("DEMO MODE")).to_be_visible()
    # The trace covers one hour, so the forecast says it cannot project yet.
    expect(page.get_by_text("Too little history to project").first).to_be_visible()
    # A user of the product gets no developer toolbar (Deploy, rerun settings).
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    expect(page.locator('[data-testid="stAppDeployButton"]')).to_have_count(0)
    page.close()

    page = open_page(browser, f"{base}/usage{query}", tmp_path / "usage.png")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    assert page.locator(".js-plotly-plot").count() == 4
    page.close()

    today = datetime.now(UTC).date()  # the trace was shifted to end now
    dates = f"from={today - timedelta(days=1)}&to={today}"
    explore = f"{base}/explore{query}&{dates}&step=hour&group=model&sub=operation"
    page = open_page(browser, explore, tmp_path / "explore.png")
    expect(page.get_by_role("heading", name="Explore")).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    page.close()

    for name in ("chats", "transactions", "budget", "billing"):
        page = open_page(browser, f"{base}/{name}{query}", tmp_path / f"{name}.png")
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.close()

    page = open_page(browser, f"{base}/chats{query}&chat={chat_id}", tmp_path / "chat.png")
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_text("Requests, oldest first")).to_be_visible()
    expect(page.get_by_text("our price").first).to_be_visible()
    page.close()

    for shot in ("overview", "usage", "explore", "chats", "transactions", "budget", "billing",
                 "chat"):  # fmt: skip
        assert (tmp_path / f"{shot}.png").stat().st_size > 10_000
    if os.environ.get("DOCS_SCREENSHOTS"):  # refreshes the README's pictures (docs/)
        for shot in ("overview", "explore"):
            shutil.copy(
                tmp_path / f"{shot}.png", Path(os.environ["DOCS_SCREENSHOTS"]) / f"{shot}.png"
            )


def test_leaving_a_chat_by_all_chats_or_back_shows_the_list(server, browser, tmp_path):
    """A chat opened from the picker is not opened again on the way back (the picker
    and the row selection used to keep it, so the list jumped straight back). The
    sidebar's Chats, clicked while a chat is open, still keeps `?chat=`: Streamlit
    keeps the query of a page switched to itself."""
    from playwright.sync_api import expect

    base, db_url = server
    account = busiest_account(db_url)[0]
    page = open_page(browser, f"{base}/chats?account={account}", tmp_path / "chats.png")
    # visible only: while Streamlit swaps the picker, the old one lingers hidden
    listed = page.locator('p:text-is("Open a chat"):visible')
    in_chat = page.get_by_text("Requests, oldest first")

    def open_a_chat() -> None:
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Open a chat").click()
        page.keyboard.type("az")  # the trace's chat ids start with "az-"
        page.get_by_role("option").first.click()
        expect(in_chat).to_be_visible(timeout=30_000)

    expect(listed).to_be_visible(timeout=30_000)
    open_a_chat()
    page.get_by_role("button", name="All chats").click()
    expect(listed).to_be_visible(timeout=30_000)
    expect(in_chat).to_have_count(0)

    open_a_chat()
    page.go_back()
    expect(listed).to_be_visible(timeout=30_000)
    expect(in_chat).to_have_count(0)

    page.close()
