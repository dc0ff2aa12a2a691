"""`streamlit run app.py` and `pricing-core` refuse to start in production when the
configuration is unsafe, each with its own message; errors reach users as messages,
not tracebacks, and secrets never reach the log."""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pricing_core.cli.main import app as cli
from pricing_core.config import get_settings
from pricing_core.safety import install_log_redaction
from tests.e2e.signin_support import (
    CHROMIUM_ARGS,
    ROOT,
    STREAMLIT,
    free_port,
    settle,
    streamlit_server,
    write_secrets,
)

SAFE_DB = "postgresql+psycopg://billing:pw@db.internal/billing"
COOKIE = secrets.token_urlsafe(48)  # made now: a secret written in a file is published


def _workdir(tmp_path: Path, *, with_auth: bool | str) -> Path:
    if with_auth == "example":  # the example file copied as it is
        (tmp_path / ".streamlit").mkdir()
        shutil.copy(
            ROOT / ".streamlit" / "secrets.toml.example", tmp_path / ".streamlit/secrets.toml"
        )
    elif with_auth:
        write_secrets(
            tmp_path,
            port=8501,
            provider="https://id.example.com",
            cookie=COOKIE,
            client_secret="client-secret-xyz",
        )
    return tmp_path


CASES = {
    "no sign-in": (False, {}, "sign-in is not configured"),
    "demo on": (True, {"PRICING_DEMO": "on"}, "demo mode is on (PRICING_DEMO=on)"),
    "default database": (
        True,
        {"PRICING_DATABASE_URL": ""},
        "the database is the default SQLite file",
    ),
    "the example secrets file": (
        "example",
        {},
        "auth.cookie_secret appears in the project's own files",
    ),
    "stripe without webhook secret": (
        True,
        {"PRICING_STRIPE_SECRET_KEY": "sk_test_abcdefghij"},
        "Stripe is configured (PRICING_STRIPE_SECRET_KEY) without a webhook secret",
    ),
}
OTHER_MESSAGES = [m for _, _, m in CASES.values()]


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(CASES))
def test_the_dashboard_refuses_to_start_in_production_naming_what_is_missing(case, tmp_path):
    with_auth, env, message = CASES[case]
    workdir = _workdir(tmp_path, with_auth=with_auth)
    full = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PRICING_ENV": "production",
        "PRICING_DATABASE_URL": SAFE_DB,
        **env,
    }
    if full["PRICING_DATABASE_URL"] == "":
        del full["PRICING_DATABASE_URL"]
    done = subprocess.run(
        [
            str(STREAMLIT),
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(free_port()),
            "--server.headless",
            "true",
        ],
        cwd=workdir,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "PRICING_ENV=production refuses to start" in output
    assert message in output
    assert [m for m in OTHER_MESSAGES if m in output] == [message]  # only this problem
    assert COOKIE not in output and "client-secret-xyz" not in output
    assert "replace-with-a-long-random-string" not in output


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_line_refuses_to_run_in_production_naming_what_is_missing(
    case, tmp_path, monkeypatch
):
    with_auth, env, message = CASES[case]
    _workdir(tmp_path, with_auth=with_auth)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRICING_ENV", "production")
    monkeypatch.setenv("PRICING_DATABASE_URL", SAFE_DB)
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["ledger", "verify"])
    assert result.exit_code == 2
    assert "PRICING_ENV=production refuses to start" in result.output
    assert [m for m in OTHER_MESSAGES if m in result.output] == [message]


def test_log_records_are_redacted_including_tracebacks(caplog):
    secret = "s3cr3t-" + secrets.token_hex(8)
    install_log_redaction([secret])
    try:
        log = logging.getLogger("pricing_core.test")
        with caplog.at_level(logging.INFO):
            log.info("connecting with %s", secret)
            try:
                raise RuntimeError(f"boom {secret}")
            except RuntimeError:
                log.exception("failed")
        formatter = logging.Formatter()
        text = "\n".join(formatter.format(r) for r in caplog.records)
        assert "boom ***" in text and "connecting with ***" in text
        assert secret not in text
    finally:
        install_log_redaction([])


@pytest.mark.e2e
def test_a_page_error_shows_a_message_with_a_reference_not_a_traceback(tmp_path):
    from playwright.sync_api import sync_playwright

    password = "pgpw-" + secrets.token_urlsafe(10)
    # The database does not exist: opening it raises inside the page script.
    env = {
        "PRICING_DATABASE_URL": f"postgresql+psycopg://postgres:{password}@127.0.0.1:5432/pc_missing_{secrets.token_hex(4)}",
        "PRICING_DEMO": "on",
        "HOME": str(tmp_path),
    }
    log = tmp_path / "server.log"
    port = free_port()
    with streamlit_server(tmp_path, port, env, log) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.get_by_text("Something went wrong").wait_for(timeout=60_000)
            settle(page)
            text = page.inner_text("body")
            html = page.content()
        finally:
            browser.close()
    assert "reference" in text
    for shown in (text, html):
        assert "Traceback" not in shown and "OperationalError" not in shown
        assert password not in shown
    server_log = log.read_text()
    assert "page error, reference" in server_log  # the details went to the log...
    assert password not in server_log  # ...without the secret


def test_the_example_secrets_file_documents_every_key_production_checks():
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text()
    for key in (
        "redirect_uri",
        "cookie_secret",
        "client_id",
        "client_secret",
        "server_metadata_url",
        "PRICING_ADMIN_EMAILS",
    ):
        assert key in example
