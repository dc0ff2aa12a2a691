"""B5 and B6: the dashboard on the benchmark database.

B6 renders every page with Streamlit's AppTest (the member pages as the busiest
account's user, the admin pages as an admin) and times each render with warm
imports and an empty data cache (`st.cache_data` cleared): what a viewer waits for
when opening a page.

B5 starts `streamlit run app.py` on the benchmark database in demo mode, opens every
page in chromium (Playwright) through the app's own navigation, and reads the
server's peak resident memory (VmHWM) from /proc.

The pages are read from `app.py` (member pages) and `pages/_session.py` (admin pages),
so new pages are covered without editing this file.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.results import Measurement

ROOT = Path(__file__).resolve().parent.parent
RENDER_TARGET_S = 1.0
RSS_TARGET_MB = 500.0
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def member_pages() -> list[tuple[str, str]]:
    """(script path, title) of the pages every viewer sees, as app.py lists them."""
    text = (ROOT / "app.py").read_text()
    found = re.findall(r'st\.Page\(\s*"(pages/\w+\.py)"\s*,\s*title="([^"]+)"', text)
    return list(dict.fromkeys(found))


def admin_pages() -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT))
    from pages._session import ADMIN_PAGES

    return [(path, title) for path, title, *_ in ADMIN_PAGES]


@contextmanager
def _database(url: str) -> Any:
    from pricing_core.config import get_settings

    old = os.environ.get("PRICING_DATABASE_URL")
    os.environ["PRICING_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PRICING_DATABASE_URL", None)
        else:
            os.environ["PRICING_DATABASE_URL"] = old
        get_settings.cache_clear()


def render_times(url: str) -> dict[str, dict]:
    """Seconds to render each page with AppTest (see module docstring)."""
    import logging

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # "no runtime" notices

    from bench.analytics import context
    from pricing_core.access import auth
    from pricing_core.adapters import storage

    results: dict[str, dict] = {}
    with _database(url):
        engine = storage.make_engine(url)
        ctx = context(engine)
        engine.dispose()
        original = auth.current_principal
        try:
            for pages, viewer in ((member_pages(), ctx.member), (admin_pages(), ctx.admin)):
                auth.current_principal = lambda *a, viewer=viewer, **k: viewer  # type: ignore[assignment]
                for path, title in pages:
                    times = []
                    for _ in range(2):  # the first run also imports the page's modules
                        st.cache_data.clear()
                        at = AppTest.from_file(str(ROOT / path), default_timeout=600)
                        started = time.perf_counter()
                        at.run()
                        times.append(time.perf_counter() - started)
                    errors = [str(e.value)[:200] for e in at.exception]
                    results[title] = {
                        "path": path,
                        "seconds": round(times[-1], 3),
                        "errors": errors,
                    }
        finally:
            auth.current_principal = original  # type: ignore[assignment]
            st.cache_resource.clear()
            st.cache_data.clear()
    return results


def measure_render(urls: dict[str, str]) -> tuple[Measurement, dict]:
    per_backend = {backend: render_times(url) for backend, url in urls.items()}
    worst_b, worst_page, worst = max(
        ((b, page, r) for b, pages in per_backend.items() for page, r in pages.items()),
        key=lambda x: x[2]["seconds"],
    )
    failed = [
        f"{b}:{p}" for b, pages in per_backend.items() for p, r in pages.items() if r["errors"]
    ]
    slow = [
        f"{b}:{p}"
        for b, pages in per_backend.items()
        for p, r in pages.items()
        if r["seconds"] >= RENDER_TARGET_S
    ]
    measurement = Measurement(
        what=f"AppTest render of each of {len(per_backend[worst_b])} pages ({', '.join(urls)}); "
        f"value: the slowest ({worst_b}: {worst_page}); over 1 s: {', '.join(slow) or 'none'}"
        + (f"; errors: {', '.join(failed)}" if failed else ""),
        value=worst["seconds"],
        unit="s",
        baseline=None,
        baseline_unit=None,
        ratio=None,
        target="< 1 s per page",
        met=not slow and not failed,
    )
    return measurement, per_backend


# ---------------------------------------------------------------- B5


def free_port() -> int:
    for port in range(8690, 8700):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8690-8699")


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _wait_idle(page: Any, timeout_s: float = 600) -> None:
    """Until the script run finished (no "Running..." status widget)."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    time.sleep(0.5)
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            time.sleep(0.3)
            if page.locator('[data-testid="stStatusWidget"]').count() == 0:
                return
        time.sleep(0.2)
    raise TimeoutError("the page did not finish rendering")


def peak_rss(url: str, account_id: str) -> dict:
    """Peak RSS (MB) of `streamlit run app.py` while every page is rendered."""
    port = free_port()
    env = {
        **os.environ,
        "PRICING_DATABASE_URL": url,
        "PRICING_DEMO": "on",
        "PRICING_ENV": "development",
        "PYTHONPATH": str(ROOT),
    }
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            wait_port(port, server, log)
            samples = _drive(port, account_id, server.pid)
            current, peak = _rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return {"peak_mb": round(peak, 1), "final_mb": round(current, 1), "pages": samples}


def _drive(port: int, account_id: str, pid: int) -> list[dict]:
    """Open the app as `account_id` and every page through the navigation."""
    from playwright.sync_api import sync_playwright

    samples: list[dict] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/?account={account_id}", timeout=600_000)
        _wait_idle(page)
        samples.append({"page": "first load", "s": round(time.perf_counter() - started, 2)})
        for _, title in member_pages():
            samples.append(_visit(page, title, pid))
        page.get_by_text("View as admin (demo)").click()
        _wait_idle(page)
        for _, title in admin_pages():
            samples.append(_visit(page, title, pid))
        browser.close()
    return samples


def _visit(page: Any, title: str, pid: int) -> dict:
    started = time.perf_counter()
    page.get_by_role("link", name=title, exact=True).first.click()
    _wait_idle(page)
    current, peak = _rss_mb(pid)
    errors = page.locator('[data-testid="stException"]').count()
    return {
        "page": title,
        "s": round(time.perf_counter() - started, 2),
        "rss_mb": round(current, 1),
        "peak_mb": round(peak, 1),
        "exceptions": errors,
    }


def wait_port(port: int, server: subprocess.Popen, log: Any, timeout_s: float = 120) -> None:
    """Until `server` listens on `port`. Raises: RuntimeError with the end of `log` (a
    binary file holding its stderr) if it exits first; TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server exited: {log.read().decode()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the server did not listen on port {port}")


def measure_rss(backend: str, url: str, account_id: str) -> tuple[Measurement, dict]:
    result = peak_rss(url, account_id)
    failed = [s["page"] for s in result["pages"] if s.get("exceptions")]
    measurement = Measurement(
        what=f"peak RSS of `streamlit run app.py` ({backend}) while every page is rendered "
        "in chromium" + (f"; exceptions on: {', '.join(failed)}" if failed else ""),
        value=result["peak_mb"],
        unit="MB",
        baseline=None,
        baseline_unit=None,
        ratio=None,
        target="< 500 MB",
        met=result["peak_mb"] < RSS_TARGET_MB and not failed,
    )
    return measurement, result
