"""A deep link opened before anyone has visited `/` still runs inside `app.py`'s
navigation: sign-in first, and no automatic page list of the `pages/` folder."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.signin_support import (
    CHROMIUM_ARGS,
    free_port,
    settle,
    streamlit_server,
    write_secrets,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("first", ["admin_accounts", "_signin", "transactions"])
def test_a_deep_link_opened_first_goes_through_the_apps_sign_in(tmp_path, first):
    from playwright.sync_api import sync_playwright

    port = free_port()
    write_secrets(
        tmp_path,
        port=port,
        provider="http://127.0.0.1:9",  # never reached: nobody signs in here
        cookie=secrets.token_urlsafe(48),
        client_secret=secrets.token_urlsafe(16),
    )
    env = {
        "PRICING_ENV": "production",
        "PRICING_DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}",
        "HOME": str(tmp_path),
    }
    with (
        streamlit_server(tmp_path, port, env, tmp_path / "server.log") as base,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/{first}")
            settle(page)
            page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
            links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
            text = page.inner_text("body")
        finally:
            browser.close()
    assert links in ([], ["Sign in"])  # the app's own navigation, never the folder's
    for module in ("_signin", "_session", "_format", "_charts", "admin accounts"):
        assert module not in text.lower()
