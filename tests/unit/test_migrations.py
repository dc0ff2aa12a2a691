"""The Alembic history is one linear chain (no database has been deployed from a
branch, so the revisions were rewritten into one)."""

from alembic.script import ScriptDirectory

from pricing_core.adapters.storage import alembic_config


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
