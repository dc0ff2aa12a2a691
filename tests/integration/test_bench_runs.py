"""The benchmark code runs end to end at a tiny scale and writes its results in the
agreed shape. Figures are not checked here (benchmarks are never timed tests)."""

import json

import pytest

from bench import __main__ as bench_cli
from bench import app, dataset

FIELDS = {"what", "value", "unit", "baseline", "baseline_unit", "ratio", "target", "met"}


@pytest.fixture
def tiny(tmp_path, monkeypatch, pg_url, trace_dir):
    """Bench data in a temporary folder, PostgreSQL scratch databases on the test server."""
    monkeypatch.setattr(dataset, "DATA_DIR", tmp_path / "data")
    base = pg_url.rsplit("/", 1)[0] + "/postgres"
    return ["--events", "400", "--accounts", "12", "--days", "3", "--start", "2025-03-01",
            "--runs", "2", "--duration", "1", "--per-event", "30", "--pgbench-scale", "1",
            "--pg-url", base, "--fresh"]  # fmt: skip


def test_the_benchmark_writes_every_measurement_in_the_agreed_shape(tiny, tmp_path):
    out = tmp_path / "latest.json"
    bench_cli.main([*tiny, "--backend", "both", "--only", "B1,B2,B3,B4,B6,B8", "--out", str(out)])
    document = json.loads(out.read_text())
    assert {"events", "backend", "machine", "started_at"} <= set(document)
    assert document["events"] == 400 and document["backend"] == "both"
    assert {"cores", "memory_gb"} <= set(document["machine"])
    for key in ("B1", "B2", "B3", "B4", "B6", "B8"):
        assert set(document[key]) == FIELDS, key
        assert isinstance(document[key]["met"], bool)
        assert document[key]["value"] > 0
    details = json.loads((tmp_path / "details.json").read_text())
    assert details["B4"]["mismatches"] == 0  # vectorized prices identical to calc_price
    assert set(details["B2"]) == {"sqlite", "postgres"}
    assert all(r["rejected"] == 0 for r in details["B2"].values())
    assert all("skipped" not in row for rows in details["B3"].values() for row in rows)
    for backend in details["B8"].values():  # ClickHouse answers as the rollups do
        assert backend["events"] >= 400 and backend["calls"]  # B2 adds its timing events
        assert all(call["equal"] for call in backend["calls"]), backend["calls"]
    for pages in details["B6"].values():
        assert pages and all(not page["errors"] for page in pages.values()), pages


def test_every_page_of_the_app_is_benchmarked():
    member = {path for path, _ in app.member_pages()}
    admin = {path for path, _ in app.admin_pages()}
    assert "pages/usage.py" in member and admin
    from bench.analytics import QUERIES

    pages_with_queries = {f"pages/{page}.py" for page, *_ in QUERIES}
    missing = (member | admin) - pages_with_queries
    assert not missing, f"add the read queries of {missing} to bench/analytics.py QUERIES"


@pytest.mark.e2e
def test_the_memory_benchmark_drives_every_page_in_a_browser(tiny, tmp_path):
    out = tmp_path / "latest.json"
    bench_cli.main([*tiny, "--backend", "sqlite", "--only", "B5", "--out", str(out)])
    details = json.loads((tmp_path / "details.json").read_text())["B5"]
    visited = {p["page"] for p in details["pages"]}
    titles = {t for _, t in app.member_pages() + app.admin_pages()}
    assert titles <= visited
    assert all(p.get("exceptions", 0) == 0 for p in details["pages"])
    assert json.loads(out.read_text())["B5"]["value"] > 0
