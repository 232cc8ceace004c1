"""Schema migrations of the exception register (versions 200-299), listed in
`bot.store.migrations`.

The store's registry imports this module while `bot.store` itself is still loading, so the
table definitions (which need the store's `metadata`) are imported when a migration runs,
not when this module is imported.
"""

from __future__ import annotations

import sqlalchemy as sa


def create_exception_tables_v1(conn: sa.Connection) -> None:
    """Migration 200: requests, reminders and quarterly reviews, as first shipped."""
    from bot.exceptions.tables import create_exception_tables_v1 as create

    create(conn)
