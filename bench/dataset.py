"""Benchmark databases: created, seeded with the workload's accounts and loaded with
its events through the batched ingest path (`ingest.record_usage_batch`).

SQLite files live in `bench/data/` (git-ignored); PostgreSQL databases are scratch
databases `bench_<events>` on the benchmark server (never the test database).
A finished load leaves a marker (`<database>.json`) with the workload and the load's
figures, so later runs can reuse the data (`--reuse`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.generate import Workload, generate, population
from pricing_core.adapters import storage
from pricing_core.catalog import price_book as catalog
from pricing_core.metering.batch import record_usage_batch

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EVENTS_PER_CREDIT_USD = 50  # opening credit: $1 per 50 expected events, plus $20


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded benchmark database."""

    backend: str
    url: str
    workload: dict
    events: int
    load_seconds: float  # record_usage_batch calls only (generation excluded)
    rejected: int
    footprint: dict | None = None  # bytes on disk per table (tables and indexes)

    @property
    def events_per_second(self) -> float:
        return self.events / self.load_seconds if self.load_seconds else 0.0


def database_url(backend: str, workload: Workload, pg_base: str = DEFAULT_PG) -> str:
    name = f"bench_{workload.events}_{workload.accounts}_{workload.seed}"
    if backend == "sqlite":
        return f"sqlite:///{DATA_DIR / name}.db"
    return make_url(pg_base).set(database=name).render_as_string(hide_password=False)


def _marker(backend: str, url: str) -> Path:
    name = str(make_url(url).database).split("/")[-1].removesuffix(".db")
    return DATA_DIR / f"{name}.{backend}.json"


def _workload_key(workload: Workload) -> dict:
    data = asdict(workload)
    data["start"] = workload.start.isoformat()
    return data


def recreate(backend: str, url: str, pg_base: str = DEFAULT_PG) -> None:
    """Drop and create the benchmark database, migrated to the latest schema."""
    if backend == "sqlite":
        path = Path(make_url(url).database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = make_url(url).database
        admin = sa.create_engine(pg_base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    engine = storage.make_engine(url, poolclass=sa.pool.NullPool)
    storage.upgrade(engine)
    engine.dispose()


def seed_accounts(engine: sa.Engine, workload: Workload, *, at: datetime) -> None:
    """Accounts, users, wallets and a `grant` opening credit for every account of the
    workload, set-based (the same rows `ledger.create_account` writes one by one).
    Credit: $1 per EVENTS_PER_CREDIT_USD expected events + $20, whole dollars."""
    people = population(workload)
    expected = np.rint(people.weights * workload.events).astype(np.int64)  # event counts
    credit_usd = expected // EVENTS_PER_CREDIT_USD + 20
    accounts, users, wallets, entries = [], [], [], []
    for account, teammates, usd in zip(people.ids, people.users, credit_usd, strict=True):
        team = teammates > 1
        kind = "team" if team else "personal"
        accounts.append(dict(id=account, name=f"Account {account[5:]}", kind=kind, created_at=at))
        for u in range(teammates):
            user = f"{account}-u{u}" if team else account
            users.append(
                dict(id=user, account_id=account, email=f"{user}@bench.invalid", name=user,
                     role="member", created_at=at)
            )  # fmt: skip
        nanos = int(usd) * 1_000_000_000
        wallets.append(dict(account_id=account, balance=nanos, held=0, version=1, updated_at=at))
        entries.append(
            dict(account_id=account, kind="grant", amount=nanos, balance_after=nanos,
                 idempotency_key=f"welcome:{account}", reason="welcome credit", created_at=at)
        )  # fmt: skip
    plain = sa.MetaData()
    tables = {
        name: sa.Table(name, plain, autoload_with=engine)
        for name in ("accounts", "users", "wallets", "ledger_entries")
    }
    with engine.begin() as conn:
        for name, rows in (
            ("accounts", accounts),
            ("users", users),
            ("wallets", wallets),
            ("ledger_entries", entries),
        ):
            for lo in range(0, len(rows), 5000):
                conn.execute(tables[name].insert(), rows[lo : lo + 5000])


def batches(workload: Workload, size: int) -> Iterator[pd.DataFrame]:
    """The workload's events in frames of about `size` events."""
    pending: list[pd.DataFrame] = []
    count = 0
    for frame in generate(workload):
        pending.append(frame)
        count += len(frame)
        if count >= size:
            yield pd.concat(pending, ignore_index=True)
            pending, count = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def load(
    backend: str,
    workload: Workload,
    *,
    pg_base: str = DEFAULT_PG,
    reuse: bool = True,
    chunk: int = 50_000,
    progress: Callable[[str], None] = print,
) -> Dataset:
    """A database holding `workload`, loaded through `record_usage_batch` (timed)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    url = database_url(backend, workload, pg_base)
    marker = _marker(backend, url)
    if reuse and marker.exists():
        data = json.loads(marker.read_text())
        if data["workload"] == _workload_key(workload) and data["backend"] == backend:
            progress(f"{backend}: reusing {data['events']:,} loaded events ({url})")
            engine = storage.make_engine(url, poolclass=sa.pool.NullPool)
            storage.ensure_schema(engine)  # migrations added since the load
            engine.dispose()
            return Dataset(**data)
    marker.unlink(missing_ok=True)
    recreate(backend, url, pg_base)
    engine = storage.make_engine(url)
    first_day = datetime.combine(workload.start, datetime.min.time(), tzinfo=UTC)
    seed_accounts(engine, workload, at=first_day - timedelta(days=1))
    catalog.clear_price_cache()
    now = first_day + timedelta(days=workload.days + 1)
    seconds, done, rejected = 0.0, 0, 0
    report_every = max(workload.events // 20, chunk)
    next_report = report_every
    for frame in batches(workload, chunk):
        started = time.perf_counter()
        result = record_usage_batch(engine, frame, now=now, chunk_size=chunk)
        seconds += time.perf_counter() - started
        done += result.recorded
        rejected += len(result.rejected)
        if done >= next_report:
            progress(f"{backend}: {done:,} events loaded, {done / seconds:,.0f} events/s")
            next_report += report_every
    if backend == "postgres":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        raw = engine.raw_connection()  # autocommit: the driver's own transactions are off
        try:
            raw.driver_connection.execute("ANALYZE")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    footprint = sizes(engine, backend, url)
    engine.dispose()
    dataset = Dataset(backend, url, _workload_key(workload), done, seconds, rejected, footprint)
    marker.write_text(json.dumps(asdict(dataset), indent=2))
    return dataset


GROWING = ("usage_events", "ledger_entries", "usage_daily", "chats")


def sizes(engine: sa.Engine, backend: str, url: str) -> dict:
    """Bytes on disk of the tables that grow with usage (with their indexes)."""
    if backend == "sqlite":
        path = Path(str(make_url(url).database))
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
                ).all()
            by_object = dict(rows)
            with engine.connect() as conn:
                owners = dict(
                    conn.exec_driver_sql("SELECT name, tbl_name FROM sqlite_master").all()
                )
            out: dict[str, int] = {}
            for name, size in by_object.items():
                table = owners.get(name, name)
                if table in GROWING:
                    out[table] = out.get(table, 0) + int(size)
        except sa.exc.OperationalError:  # SQLite built without dbstat
            out = {}
        out["file"] = path.stat().st_size
        return out
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            (list(GROWING),),
        ).all()
        total = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return {**{name: int(size) for name, size in rows}, "database": int(total)}
