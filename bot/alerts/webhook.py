"""Alertmanager webhook payloads (version "4") parsed into frozen domain objects.

Parsing happens once, at the HTTP edge: everything behind it receives a `Notification` whose
required fields are present and typed, so no service ever looks into a raw dict. Models allow
extra keys because newer Alertmanager releases add fields (0.28 added per-webhook timeouts,
later ones may add more) and an unknown key must not turn a valid notification into a 400 that
Alertmanager keeps re-sending every `group_interval`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

AlertStatus = Literal["firing", "resolved"]

SUPPORTED_VERSION = "4"
ZERO_TIME_YEAR = 1
"""Alertmanager writes `0001-01-01T00:00:00Z` as `endsAt` of every firing alert."""


class ParseError(ValueError):
    """The body is not a usable Alertmanager notification; `reason` says why, for a person."""

    def __init__(self, reason: str, *, code: str = "malformed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class Alert(_Wire):
    """One alert of a group as Alertmanager last reported it."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F]+$")

    @field_validator("starts_at", "ends_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (RFC 3339, e.g. ...Z)")
        return value.astimezone(UTC)

    @field_validator("ends_at", mode="after")
    @classmethod
    def _zero_is_unset(cls, value: datetime | None) -> datetime | None:
        return None if value is not None and value.year == ZERO_TIME_YEAR else value

    @property
    def firing(self) -> bool:
        return self.status == "firing"


class Notification(_Wire):
    """One webhook POST: one flush of one alert group."""

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    status: AlertStatus
    receiver: str
    alerts: tuple[Alert, ...] = Field(min_length=1)
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(default={}, alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)

    @field_validator("alerts", mode="after")
    @classmethod
    def _unique_fingerprints(cls, alerts: tuple[Alert, ...]) -> tuple[Alert, ...]:
        seen: set[str] = set()
        for alert in alerts:
            if alert.fingerprint in seen:
                raise ValueError(f"fingerprint {alert.fingerprint} appears twice")
            seen.add(alert.fingerprint)
        return alerts

    def dedup_key(self) -> str:
        """Identity of what this notification says, independent of who sent it or when.

        An Alertmanager retry, a reminder after `repeat_interval` and the same flush from an HA
        peer carry the same group and the same alert states, so they share this key. `endsAt`
        is left out on purpose: an alert that resolves by `resolve_timeout` gets a different
        end time on each peer. `startsAt` stays in, so an alert that fires again later is new.
        """
        states = sorted(
            f"{a.fingerprint} {a.status} {a.starts_at.isoformat()}" for a in self.alerts
        )
        digest = hashlib.sha256()
        digest.update(self.group_key.encode())
        for line in states:
            digest.update(b"\n" + line.encode())
        return digest.hexdigest()


def parse_notification(body: bytes) -> Notification:
    """Parse a webhook body, or raise `ParseError` with a reason a person can act on."""
    try:
        # Fast path (pydantic's own JSON parser); the slow one below explains failures.
        return Notification.model_validate_json(body)
    except ValidationError:
        pass
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParseError(f"body is not JSON ({err})", code="not_json") from None
    if not isinstance(document, dict):
        raise ParseError("body must be a JSON object (an Alertmanager webhook notification)")
    version = document.get("version")
    if version != SUPPORTED_VERSION:
        raise ParseError(
            f"unsupported webhook version {version!r}; policy-bot reads Alertmanager's "
            f'version "{SUPPORTED_VERSION}"',
            code="unsupported_version",
        )
    try:
        return Notification.model_validate(document)
    except ValidationError as err:
        raise ParseError(_describe(err)) from None


def _describe(err: ValidationError, limit: int = 3) -> str:
    problems = [f"{_location(e['loc'])}: {e['msg']}" for e in err.errors()[:limit]]
    more = err.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "invalid notification: " + "; ".join(problems) + suffix


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(body)"
