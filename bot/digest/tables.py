"""The `digest_figures` table: the previous digest's figures, one row named `last`."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from bot.digest.model import Figures
from bot.store.database import Database, UtcDateTime
from bot.store.schema import metadata

LAST = "last"

digest_figures = sa.Table(
    "digest_figures",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("taken_at", UtcDateTime(), nullable=False),
    sa.Column("figures", sa.Text(), nullable=False),
)


class FiguresStore:
    """The previous digest's figures, one row, kept across restarts and replicas."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def previous(self) -> Figures | None:
        query = sa.select(digest_figures.c.figures).where(digest_figures.c.name == LAST)
        async with self._db.connect() as conn:
            text = (await conn.execute(query)).scalar_one_or_none()
        return None if text is None else Figures.from_json(text)

    async def save(self, figures: Figures, *, at: datetime) -> None:
        async with self._db.begin() as conn:
            updated = await conn.execute(
                digest_figures.update()
                .where(digest_figures.c.name == LAST)
                .values(taken_at=at, figures=figures.to_json())
            )
            if not updated.rowcount:
                await conn.execute(
                    digest_figures.insert().values(
                        name=LAST, taken_at=at, figures=figures.to_json()
                    )
                )
