"""The SQLAlchemy tables the code queries (`adapters.schema`) describe exactly the
database the migrations build, on both back ends: a column, index, unique or foreign
key changed in one place and not the other is a difference here."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pricing_core.adapters import (  # noqa: F401
    schema,
    schema_billing,
    schema_notify,
    schema_payments,
    schema_prices,
)


def test_the_migrated_database_and_the_schema_module_agree(engine):
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert differences == []


def test_a_difference_would_be_reported(engine):
    """The comparison can fail: a foreign key the migrations dropped (0009) is found."""
    extra = sa.MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(extra)
    events = extra.tables["usage_events"]
    events.append_constraint(sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), extra)
    assert [d[0] for d in differences] == ["add_fk"]
