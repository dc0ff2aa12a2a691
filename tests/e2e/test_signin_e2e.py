"""End to end: real OIDC sign-in against a local provider, in Debian's chromium.

`streamlit run app.py` is started from a temp directory whose `.streamlit/secrets.toml`
points at `oidc-provider-mock` on loopback; the database is a fresh PostgreSQL
database reached with a password in its URL (the server trusts loopback, so the
password is only there to prove it never leaks). Every page render, the server's log
and the exports made here are kept and grepped for every configured secret at the end.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pricing_core.adapters import storage
from pricing_core.ledger.wallets import create_account
from tests.conftest import _admin_engine, _url_for
from tests.e2e.signin_support import (
    CHROMIUM_ARGS,
    ROOT,
    free_port,
    oidc_provider,
    open_page,
    settle,
    sign_in,
    streamlit_server,
    write_secrets,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

USERS = {
    "member-1": {"email": "member@example.com", "name": "Mia Member", "email_verified": True},
    "admin-1": {"email": "admin@example.com", "name": "Ada Admin", "email_verified": True},
    "twin-1": {"email": "twin@example.com", "name": "Tom Twin", "email_verified": True},
}
OTHER_NAME = "Bobs Bakery"
OTHER_BALANCE = "1,234.56"


@dataclass
class Stack:
    base: str
    provider: str
    engine: sa.Engine
    env: dict[str, str]
    workdir: Path
    log: Path
    secrets: dict[str, str]
    renders: list[tuple[str, str]] = field(default_factory=list)

    def snap(self, page, label: str) -> str:  # noqa: ANN001
        """Keep the page's HTML and text for the leak check; return the text."""
        text = page.inner_text("body")
        self.renders.append((f"{label} (html)", page.content()))
        self.renders.append((f"{label} (text)", text))
        keep = self.workdir / "renders"
        keep.mkdir(exist_ok=True)
        (keep / f"{len(self.renders) // 2:03d}.txt").write_text(f"{label}\n\n{text}")
        return text


@pytest.fixture(scope="module")
def stack(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = f"pc_e2e_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    db_password = "pgpw-" + secrets.token_urlsafe(12)
    url = make_url(_url_for(name)).set(password=db_password).render_as_string(hide_password=False)
    engine = storage.make_engine(url, poolclass=sa.pool.NullPool)
    create_account(
        engine, "bob", name=OTHER_NAME, email="bob@example.com", opening_credit=Decimal("1234.56")
    )
    workdir = tmp_path_factory.mktemp("signin")
    port = free_port()
    found = {
        "cookie_secret": "cookie-" + secrets.token_urlsafe(32),
        "client_secret": "client-" + secrets.token_urlsafe(18),
        "stripe_secret_key": "sk_test_" + secrets.token_urlsafe(18),
        "stripe_webhook_secret": "whsec_" + secrets.token_urlsafe(18),
        "database_password": db_password,
    }
    env = {
        "PRICING_DATABASE_URL": url,
        "PRICING_ADMIN_EMAILS": "admin@example.com",
        "PRICING_WELCOME_CREDIT": "10",
        "PRICING_DEMO": "auto",
        "PRICING_STRIPE_SECRET_KEY": found["stripe_secret_key"],
        "PRICING_STRIPE_WEBHOOK_SECRET": found["stripe_webhook_secret"],
        "PRICING_STRIPE_API_BASE": "http://127.0.0.1:9",
        "PRICING_PUBLIC_URL": f"http://localhost:{port}",
    }
    log = workdir / "server.log"
    try:
        with oidc_provider(USERS, workdir / "provider.log") as provider:
            write_secrets(
                workdir,
                port=port,
                provider=provider,
                cookie=found["cookie_secret"],
                client_secret=found["client_secret"],
            )
            with streamlit_server(workdir, port, env, log) as base:
                yield Stack(base, provider, engine, env, workdir, log, found)
    finally:
        engine.dispose()
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def nav_links(page, section: str | None = None) -> list[str]:  # noqa: ANN001
    """The hrefs of the sidebar navigation (optionally of one section)."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    if section is None:
        return nav.locator("a").evaluate_all("els => els.map(e => e.href)")
    header = nav.get_by_text(section, exact=True)
    if header.count() == 0:
        return []
    return (
        header.locator("xpath=ancestor::*[.//a][1]")
        .locator("a")
        .evaluate_all("els => els.map(e => e.href)")
    )


def test_an_anonymous_visitor_only_gets_the_sign_in_page(stack, page):
    for path in ("/", "/balance", "/admin_revenue"):
        page.goto(stack.base + path)
        page.get_by_role("button", name="Sign in").wait_for()
        settle(page)
        text = stack.snap(page, f"anonymous {path}")
        assert "Balance" not in text and OTHER_NAME not in text and "View as account" not in text


def test_a_member_signs_in_and_sees_only_their_own_account(stack, page):
    sign_in(page, stack.base, stack.provider, "member-1")
    page.get_by_text("$10.00").first.wait_for()
    settle(page)
    text = stack.snap(page, "member home")
    assert "Signed in as member@example.com" in text.replace("\n", " ")
    assert "$10.00" in text  # the welcome credit, PRICING_WELCOME_CREDIT=10
    assert "Admin" not in nav_links(page) and nav_links(page, "Admin") == []
    links = nav_links(page)
    assert links, "the member has pages"
    for href in links:
        open_page(page, href)
        body = stack.snap(page, f"member {href}")
        assert OTHER_NAME not in body and OTHER_BALANCE not in body, href
        assert "View as account" not in body and "DEMO MODE" not in body


def test_a_member_cannot_open_an_admin_page(stack, page):
    sign_in(page, stack.base, stack.provider, "member-1")
    for path in ("/admin_revenue", "/admin_accounts"):
        open_page(page, stack.base + path)
        text = stack.snap(page, f"member tries {path}")
        assert "Page not found" in text or "Admins only" in text
        assert "Cash in" not in text and "Outstanding" not in text and OTHER_NAME not in text
    assert nav_links(page, "Admin") == []


def test_an_admin_signs_in_and_opens_every_admin_page(stack, page):
    sign_in(page, stack.base, stack.provider, "admin-1")
    settle(page)
    admin_links = nav_links(page, "Admin")
    assert any(h.endswith("/admin_revenue") for h in admin_links), admin_links
    for href in admin_links:
        open_page(page, href)
        text = stack.snap(page, f"admin {href}")
        assert "Admins only" not in text and "Something went wrong" not in text, href
        assert "Page not found" not in text, href
    open_page(page, stack.base + "/admin_revenue")
    page.get_by_text("Cash in").first.wait_for()
    assert "Revenue" in stack.snap(page, "admin revenue")


def test_one_new_user_signing_in_from_two_browsers_at_once_gets_one_account(stack, browser):
    contexts = [browser.new_context() for _ in range(2)]
    pages = [c.new_page() for c in contexts]
    try:
        for p in pages:
            p.goto(stack.base + "/")
            p.get_by_role("button", name="Sign in").click()
            p.wait_for_url(stack.provider + "/**")
        for p in pages:  # both authorizations go out back to back
            p.get_by_role("button", name="twin-1", exact=True).click(no_wait_after=True)
        for p in pages:
            p.get_by_text("Signed in as").wait_for(timeout=30_000)
            p.get_by_text("$10.00").first.wait_for()
            settle(p)
            assert "Signed in as twin@example.com" in stack.snap(p, "twin").replace("\n", " ")
    finally:
        for c in contexts:
            c.close()
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT account_id FROM users WHERE oidc_subject = :s"), {"s": "twin-1"}
        ).all()
        assert len(rows) == 1
        account = rows[0][0]
        grants = conn.execute(
            sa.text("SELECT count(*) FROM ledger_entries WHERE account_id = :a AND kind = 'grant'"),
            {"a": account},
        ).scalar_one()
    assert grants == 1


def _cli(stack: Stack, *args: str) -> str:
    env = {**stack.env, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", "from pricing_core.cli.main import main; main()", *args],
        cwd=stack.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_no_configured_secret_appears_in_any_page_log_line_or_export(stack, page):
    # Exercise more surfaces first: HTTP routes with a (wrong) bearer key, and exports.
    api_key = "pck_" + secrets.token_urlsafe(32)
    for path in ("/healthz", "/api/v1/balance", "/stripe/webhook"):
        httpx.get(stack.base + path, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    exports = [
        _cli(stack, "revenue", "report", "--from", "2026-01-01", "--to", "2026-01-31", "--json"),
        _cli(stack, "users", "list", "--account", "bob"),
        _cli(stack, "apikeys", "list", "--account", "bob"),
        _cli(stack, "ledger", "verify"),
    ]
    assert stack.renders, "the page tests ran first and kept their renders"
    haystacks = [*stack.renders, ("server log", stack.log.read_text())]
    haystacks += [(f"export {i}", e) for i, e in enumerate(exports)]
    secret_values = {**stack.secrets, "api_key": api_key}
    leaks = [
        f"{name} in {where}"
        for where, text in haystacks
        for name, value in secret_values.items()
        if value in text
    ]
    assert leaks == []
    assert "Traceback" not in "".join(t for w, t in stack.renders)
