"""The revisions of the schema history, one module each (loaded by Alembic, not imported)."""
