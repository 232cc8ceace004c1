"""Schema migrations of the notice outbox (versions 500-599), listed in `bot.store.migrations`.

Tables are imported when a migration runs, not when this module is imported (the store's
registry loads it while `bot.store` is still loading).
"""

from __future__ import annotations

import sqlalchemy as sa


def create_notices_v1(conn: sa.Connection) -> None:
    """Migration 500: `notices` as first shipped."""
    from bot.notices.tables import create_notices_v1 as create

    create(conn)
