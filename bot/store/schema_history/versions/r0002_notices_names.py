"""Name the notice outbox's primary key and unique constraint like every other table's.

The baseline created them unnamed (the server called them `notices_pkey` and
`notices_dedup_key_key`; SQLite has no names), while the live definition on the shared
metadata names them by its convention: `pk_notices`, `uq_notices_dedup_key`.

Revision ID: r0002_notices_names
Revises: r0001_baseline
"""

from __future__ import annotations

from alembic import op

revision: str = "r0002_notices_names"
down_revision: str | None = "r0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

_CONVENTION = {"pk": "pk_%(table_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notices RENAME CONSTRAINT notices_pkey TO pk_notices")
        op.execute(
            "ALTER TABLE notices RENAME CONSTRAINT notices_dedup_key_key TO uq_notices_dedup_key"
        )
        return
    # SQLite cannot rename a constraint: copy the table, naming the reflected (unnamed)
    # constraints by the convention on the way.
    with op.batch_alter_table("notices", recreate="always", naming_convention=_CONVENTION):
        pass


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
