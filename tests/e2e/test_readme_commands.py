"""The README's set-up, word for word (issue 21): its test command is the one CI runs,
its dashboard command serves the app and seeds the demo data on first start, and its
trace-import commands run as written from the repository, inside the virtual
environment the Quickstart makes, and leave a ledger that verifies."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_admin_screenshots import random_port
from tests.e2e.test_buy_credits_browser import CHROMIUM, CHROMIUM_ARGS, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
pytestmark = pytest.mark.e2e


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(title: str) -> list[str]:
    """The indented command lines of a README section, as written."""
    return [line[4:] for line in section(title).splitlines() if re.match(r"    \S", line)]


def venv_env(tmp_path: Path) -> dict[str, str]:
    """The environment after `. .venv/bin/activate`: the venv's bin first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PRICING_DATABASE_URL": f"sqlite:///{tmp_path / 'readme.db'}"}  # fmt: skip


def test_the_readme_test_command_is_the_one_ci_runs():
    dashboard, tests = commands("Quickstart")
    venv = "python3 -m venv .venv && "
    assert tests == venv + ".venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    assert tests in (ROOT / ".ci" / "run").read_text()
    assert dashboard.endswith("&& .venv/bin/streamlit run app.py")


def test_the_readme_trace_import_runs_as_written(tmp_path):
    if not (ROOT.parent / "shared" / "data" / "azure-llm-inference-2023").exists():
        pytest.skip("the README's relative trace path needs this repository next to shared/")
    lines = commands("Importing the real trace")[:3]
    assert [shlex.split(line)[:3] for line in lines] == [
        ["pricing-core", "import", "azure-trace"],
        ["pricing-core", "import", "azure-trace"],
        ["pricing-core", "ledger", "verify"],
    ]
    env = venv_env(tmp_path)
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, (line, done.stdout[-500:], done.stderr[-500:])
    assert "ledger OK" in done.stdout
    assert "28,185" in section("Importing the real trace")  # the count the README states


def test_the_readme_dashboard_command_serves_the_demo_on_first_start(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    dashboard = commands("Quickstart")[0]
    run = dashboard.rsplit("&& ", 1)[1]  # the install steps are this very environment
    port = random_port()
    argv = [str(Path(sys.executable).parent / "streamlit"), *shlex.split(run)[1:],
            "--server.port", str(port), "--server.headless", "true"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=venv_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(base, timeout=90_000)
                expect(page.get_by_role("combobox", name="View as account")).to_be_visible(
                    timeout=180_000
                )  # demo accounts were seeded on this first start
                expect(page.get_by_test_id("stException")).to_have_count(0)
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    assert (tmp_path / "readme.db").stat().st_size > 100_000
