"""Alembic environment: one set of migrations for SQLite and PostgreSQL."""

from alembic import context
from sqlalchemy import pool

from pricing_core.adapters import (  # noqa: F401  (registers tables)
    schema_billing,
    schema_notify,
    schema_payments,
    schema_prices,
    schema_rollups,
)
from pricing_core.adapters.schema import metadata
from pricing_core.adapters.storage import make_engine

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(
        config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        connection.execution_options(pricing_write=True)
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
