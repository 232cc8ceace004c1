"""Errors of the state store, translated from the drivers at the store's edge.

Callers never see `sqlite3`, `asyncpg` or SQLAlchemy connection errors: an unreachable,
locked or timed-out database becomes `StoreUnavailable`, which the HTTP edge answers with 503
and `/readyz` reports as not ready. Anything else (a constraint violated by a bug) is left
as it is, because retrying it would not help.
"""


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidStoreUrl(StoreError, ValueError):
    """The configured store URL cannot be used (unknown scheme, relative SQLite path)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or did not answer within its timeout.

    Transient by nature: the same call may succeed later, so callers answer "try again"
    (HTTP 503, readiness false) instead of treating it as a bug.
    """


class SchemaTooNew(StoreError):
    """The database was migrated by a newer policy-bot than this one.

    Running older code against a newer schema could write rows the newer code does not
    expect, so the process refuses to start instead.
    """


class MigrationFailed(StoreError):
    """A migration raised; its transaction was rolled back and later ones were not run."""
