"""Helpers for the end-to-end sign-in tests: a local OpenID Connect provider
(`oidc-provider-mock`, on loopback), `streamlit run app.py` configured against it
(a temp working directory with its own `.streamlit/secrets.toml`), and Debian's
chromium through Playwright.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
STREAMLIT = Path(sys.executable).parent / "streamlit"
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def oidc_provider(users: Mapping[str, Mapping[str, object]], log: Path) -> Iterator[str]:
    """`oidc-provider-mock` on 127.0.0.1 (its own process) with predefined users
    {sub: claims}. Yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for sub, claims in users.items():
        args += ["--user-claims", json.dumps({"sub": sub, **claims})]
    with log.open("a") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, f"{base}/.well-known/openid-configuration", log)
        yield base
    finally:
        _stop(proc)


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def write_secrets(
    workdir: Path, *, port: int, provider: str, cookie: str, client_secret: str
) -> Path:
    path = workdir / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{cookie}"\n'
        'client_id = "pricing-dashboard"\n'
        f'client_secret = "{client_secret}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    return path


@contextmanager
def streamlit_server(workdir: Path, port: int, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """`streamlit run app.py` from `workdir` (its .streamlit/ holds the secrets).
    Output goes to `log`. Yields the base URL; stops the server afterwards."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PRICING_", "STREAMLIT_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(ROOT)
    with log.open("a") as out:
        proc = subprocess.Popen(
            [
                str(STREAMLIT),
                "run",
                str(ROOT / "app.py"),
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://localhost:{port}"
    try:
        _wait_until_up(proc, f"{base}/healthz", log)
        yield base
    finally:
        _stop(proc)


def sign_in(page, base: str, provider: str, subject: str) -> None:  # noqa: ANN001
    """Through the sign-in page and the provider's form, as `subject`."""
    page.goto(base + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(provider + "/**")
    page.get_by_role("button", name=subject, exact=True).click()
    page.wait_for_url(base + "/**")
    page.get_by_text("Signed in as").wait_for(timeout=30_000)


def settle(page) -> None:  # noqa: ANN001
    """Wait until the Streamlit script has finished running."""
    done = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    page.wait_for_selector(done, timeout=60_000)
    page.wait_for_timeout(500)  # a rerun queued right after the first run (e.g. sign-in)
    page.wait_for_selector(done, timeout=60_000)


def open_page(page, url: str) -> None:  # noqa: ANN001
    """Go to a dashboard page and wait until its title and the signed-in sidebar show."""
    page.goto(url)
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=30_000)
    settle(page)
