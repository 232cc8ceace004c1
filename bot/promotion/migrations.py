"""Schema migrations of promotion (versions 400-499), listed in `bot.store.migrations`.

The store's registry imports this module while `bot.store` itself is still loading, so the
table definitions (which need the store's `metadata`) are imported when a migration runs,
not when this module is imported.
"""

from __future__ import annotations

import sqlalchemy as sa


def create_plans_v1(conn: sa.Connection) -> None:
    """Migration 400: `promotion_plans` as first shipped."""
    from bot.promotion.records import create_plans_v1 as create

    create(conn)


def create_records_v1(conn: sa.Connection) -> None:
    """Migration 401: `promotion_records` as first shipped."""
    from bot.promotion.records import create_records_v1 as create

    create(conn)
