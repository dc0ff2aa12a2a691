"""Shared fixtures: a fresh, migrated database per test on SQLite and PostgreSQL.

PostgreSQL comes from `TEST_DATABASE_URL` (default: the local server's `test`
database). Each test gets its own database cloned from a migrated template. When the
server is unreachable the PostgreSQL tests skip with the reason, except under CI
(`CI` set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pricing_core.adapters import server_calls, storage, warehouse
from pricing_core.catalog import price_book as catalog
from pricing_core.catalog.snapshots import reset_catalog
from pricing_core.config import get_settings

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Never touch the developer's database or .env; fresh caches per test."""
    monkeypatch.setenv("PRICING_DATABASE_URL", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    reset_catalog()  # the bundled genai-prices snapshot, whatever a test loaded
    catalog.clear_price_cache()
    yield
    get_settings.cache_clear()
    reset_catalog()
    catalog.clear_price_cache()
    for engine in storage._engines.values():
        engine.dispose()
    storage._engines.clear()
    server_calls.close_connections()
    for url in list(warehouse._OPEN):
        warehouse.close_warehouse(url)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        TEST_DATABASE_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a migrated template database on the test server."""
    try:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        where = make_url(TEST_DATABASE_URL).render_as_string()
        reason = f"PostgreSQL unreachable at {where}: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL. {reason}")
        pytest.skip(reason)
    name = f"pc_tmpl_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = storage.make_engine(_url_for(name), poolclass=sa.pool.NullPool)
    storage.upgrade(engine)
    engine.dispose()
    yield name
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url_for(database: str) -> str:
    return make_url(TEST_DATABASE_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = storage.make_engine(f"sqlite:///{path}")
    storage.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"pc_test_{uuid.uuid4().hex[:12]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _url_for(name)
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database URL, once per back end."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """An engine on a fresh migrated database (both back ends); also the default URL."""
    monkeypatch.setenv("PRICING_DATABASE_URL", db_url)
    get_settings.cache_clear()
    eng = storage.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """PostgreSQL only (concurrency tests)."""
    monkeypatch.setenv("PRICING_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    eng = storage.make_engine(pg_url, pool_size=20, max_overflow=20)
    yield eng
    eng.dispose()


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fake Stripe API on loopback (tests/fakes/stripe_server.py), with the settings
    pointing the real `stripe` SDK at it (secret key, webhook secret, API base)."""
    from tests.fakes.stripe_server import FakeStripe

    with FakeStripe() as fake:
        monkeypatch.setenv("PRICING_STRIPE_SECRET_KEY", fake.api_key)
        monkeypatch.setenv("PRICING_STRIPE_WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("PRICING_STRIPE_API_BASE", fake.url)
        get_settings.cache_clear()
        yield fake
    get_settings.cache_clear()


@pytest.fixture
def trace_dir() -> Path:
    """The real Azure trace folder (`find_trace_dir`); skips the test when this
    checkout has no `../shared/data` beside it and PRICING_TRACE_DIR is unset."""
    from pricing_core.metering.trace import find_trace_dir

    found = find_trace_dir()
    if found is None:
        pytest.skip("the Azure trace is not at ../shared/data/azure-llm-inference-2023/")
    return found
