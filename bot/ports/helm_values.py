"""The doctor asks the backups for a Kyverno release's Helm values as last stored.

The doctor compares them with the live release to show what changed since the backup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BackedUpValues:
    """The Helm values of one release as stored by the last backup."""

    backup_id: str
    values: Mapping[str, object]


class BackupValues(Protocol):
    """The Helm values of a release as the last backup of an environment stored them."""

    async def helm_values(self, environment: str, release: str) -> BackedUpValues | None: ...
