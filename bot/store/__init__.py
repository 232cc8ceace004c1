"""The bot's state store: SQLite for one replica, PostgreSQL for several.

Open it with `open_database(settings.store.url)`, run `migrate()` once at start, and hand
the `Database` to the repositories that need it (`AuditTrail`, ...).
"""

from bot.store.audit_trail import AuditTrail, verify_audit_trail
from bot.store.database import Database, UtcDateTime, advisory_key, open_database
from bot.store.errors import (
    InvalidStoreUrl,
    MigrationFailed,
    SchemaTooNew,
    StoreError,
    StoreUnavailable,
)
from bot.store.migrations import MIGRATIONS, Migration

__all__ = [
    "MIGRATIONS",
    "AuditTrail",
    "Database",
    "InvalidStoreUrl",
    "Migration",
    "MigrationFailed",
    "SchemaTooNew",
    "StoreError",
    "StoreUnavailable",
    "UtcDateTime",
    "advisory_key",
    "open_database",
    "verify_audit_trail",
]
