"""The bot's state store: SQLite for one replica, PostgreSQL for several.

Open it with `open_database(settings.store.url)`, run `migrate()` once at start (it applies
the schema history in `schema_history/`, see `bot.store.migrations`), and hand the
`Database` to the repositories that need it (`AuditTrail`, ...).
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
from bot.store.migrations import SchemaState, pending_migrations, schema_state

__all__ = [
    "AuditTrail",
    "Database",
    "InvalidStoreUrl",
    "MigrationFailed",
    "SchemaState",
    "SchemaTooNew",
    "StoreError",
    "StoreUnavailable",
    "UtcDateTime",
    "advisory_key",
    "open_database",
    "pending_migrations",
    "schema_state",
    "verify_audit_trail",
]
