"""Schema migrations of backups, restores and evidence packs (versions 300-399).

Listed in `bot.store.migrations`. The store's registry imports this module while `bot.store`
itself is still loading, so the tables are imported when a migration runs.
"""

from __future__ import annotations

import sqlalchemy as sa


def create_backup_tables_v1(conn: sa.Connection) -> None:
    """Migration 300: `backups` and `backup_environments`."""
    from bot.backup.tables import create_backup_tables_v1 as create

    create(conn)


def create_restore_plans_v1(conn: sa.Connection) -> None:
    """Migration 301: `restore_plans`."""
    from bot.backup.tables import create_restore_plans_v1 as create

    create(conn)


def create_evidence_packs_v1(conn: sa.Connection) -> None:
    """Migration 302: `evidence_packs`."""
    from bot.backup.tables import create_evidence_packs_v1 as create

    create(conn)
