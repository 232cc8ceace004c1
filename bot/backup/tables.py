"""Tables of backups, restores and evidence packs.

- `backups`: one row per backup run: who or what started it, per-environment results, where
  each target stored it, and the gzipped MANIFEST (the next backup diffs against it).
- `backup_environments`: one row per (backup, environment), so "when was the last good
  backup of production" is one indexed query for `/policy status`.
- `restore_plans`: a dry run a person looked at; the Restore button carries its id.
- `evidence_packs`: each monthly pack with the audit chain head it published, so a later
  `audit verify` can check the chain against every head ever handed to auditors.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.store.database import UtcDateTime
from bot.store.schema import metadata


def _backups_v1() -> list[sa.Column[Any]]:
    """The columns of `backups`; the schema history creates them."""
    return [
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("stored", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=True),
    ]


def _backup_environments_v1() -> list[sa.Column[Any] | sa.Index]:
    """The columns of `backup_environments`; the schema history creates them."""
    return [
        sa.Column("backup_id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Index("ix_backup_environments_env_time", "environment", "ok", "finished_at"),
    ]


def _restore_plans_v1() -> list[sa.Column[Any]]:
    """The columns of `restore_plans`; the schema history creates them."""
    return [
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("backup_id", sa.String(40), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
    ]


def _evidence_packs_v1() -> list[sa.Column[Any]]:
    """The columns of `evidence_packs`; the schema history creates them."""
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("month", sa.String(7), nullable=False, index=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("head_id", sa.BigInteger(), nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=True),
        sa.Column("stored", sa.JSON(), nullable=False),
    ]


backups = sa.Table("backups", metadata, *_backups_v1())
backup_environments = sa.Table("backup_environments", metadata, *_backup_environments_v1())
restore_plans = sa.Table("restore_plans", metadata, *_restore_plans_v1())
evidence_packs = sa.Table("evidence_packs", metadata, *_evidence_packs_v1())
