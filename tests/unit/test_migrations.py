"""The Alembic history is one linear chain (no database has been deployed from a
branch, so the revisions were rewritten into one)."""

from alembic import command
from alembic.script import ScriptDirectory

from pricing_core.adapters.storage import alembic_config, make_engine, upgrade


def test_the_migrations_have_exactly_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


def test_every_revision_has_at_most_one_parent_and_one_child():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())
    assert all(not isinstance(r.down_revision, tuple | list) for r in revisions)
    parents = [r.down_revision for r in revisions if r.down_revision]
    assert len(parents) == len(set(parents)), "two revisions share a parent: a branch"
    assert len(revisions) == len(parents) + 1


def _stats(engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql("SELECT idx FROM sqlite_stat1").all()}


def test_an_analyzed_sqlite_database_keeps_statistics_for_indexes_a_migration_rebuilt(tmp_path):
    # 0019 drops and recreates ix_ledger_entries_account_created: SQLite forgets its
    # statistics, and its planner then skipped the index (payment metrics, 10M events)
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0018_models_in_use")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO accounts (id, name, kind, created_at) "
            "VALUES ('a1', 'A', 'personal', '2026-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, "
            "idempotency_key, created_at) VALUES ('a1', 'grant', 5, 5, 'k1', '2026-01-01')"
        )
        conn.exec_driver_sql("ANALYZE")
    assert "ix_ledger_entries_account_created" in _stats(engine)
    upgrade(engine)
    assert "ix_ledger_entries_account_created" in _stats(engine)


def test_a_never_analyzed_sqlite_database_is_not_analyzed_by_migrations(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
            is None
        )
