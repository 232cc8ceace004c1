"""Schema migrations of the alert relay (versions 100-199), listed in `bot.store.migrations`.

The store's registry imports this module while `bot.store` itself is still loading, so the
table definitions (which need the store's `metadata`) are imported when a migration runs,
not when this module is imported.
"""

from __future__ import annotations

import sqlalchemy as sa


def create_alert_tables_v1(conn: sa.Connection) -> None:
    """Migration 100: `alert_notifications` and `alert_messages` as first shipped."""
    from bot.alerts.tables import create_alert_tables_v1 as create

    create(conn)
