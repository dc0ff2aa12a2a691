"""sign-in: OIDC identity on users (issuer + subject, unique), last sign-in, who invited

A user signs in with an OpenID Connect provider; (oidc_issuer, oidc_subject) is the
stable identity and is unique, so two concurrent first sign-ins of the same person
can create only one user (and so one personal account). A user row without a subject
is an invitation: the first sign-in with that (verified) email claims it.

Revision ID: 0005_auth
Revises: 0004_plans
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_auth"
down_revision: str | Sequence[str] | None = "0004_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oidc_issuer", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("invited_by", sa.String(length=320), nullable=True))
        batch_op.create_unique_constraint(
            "uq_users_oidc_issuer_oidc_subject", ["oidc_issuer", "oidc_subject"]
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=320), nullable=True))
        batch_op.create_index("ix_api_keys_account_id", ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_account_id")
        batch_op.drop_column("created_by")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_oidc_issuer_oidc_subject", type_="unique")
        batch_op.drop_column("invited_by")
        batch_op.drop_column("last_sign_in_at")
        batch_op.drop_column("oidc_subject")
        batch_op.drop_column("oidc_issuer")
