"""The overview's per-environment lines that come from other features."""

from datetime import UTC, datetime, timedelta

from bot.status import Snapshot
from handlers.render import status as render

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def overview_text(snap: Snapshot) -> str:
    return "\n".join(
        b["text"]["text"] for b in render.overview([snap], now=NOW, share=None) if "text" in b
    )


def test_age_of_the_last_backup() -> None:
    three_hours = Snapshot("dev", backups_known=True, last_backup=NOW - timedelta(hours=3))
    assert "Last backup: 3 h ago (2026-11-28 09:00 UTC)" in overview_text(three_hours)
    days = Snapshot("dev", backups_known=True, last_backup=NOW - timedelta(days=9))
    assert "Last backup: 9 days ago" in overview_text(days)
    never = Snapshot("dev", backups_known=True)
    assert "Last backup: none yet (`/policy backup`)" in overview_text(never)
    assert "Last backup" not in overview_text(Snapshot("dev"))
