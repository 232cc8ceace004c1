"""Client for Alertmanager's silences API v2 (`POST /api/v2/silences`,
`DELETE /api/v2/silence/{id}`).

Small on purpose: the Silence and Unsilence buttons need one call each. It owns an aiohttp
session created on first use (inside the running loop) and closed by `close()`; every request
has a total timeout.
Failures become `SilenceFailed` whose message tells the person who clicked what to do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.errors import BotError

log = logging.getLogger(__name__)


class SilenceFailed(BotError):
    """Alertmanager did not create the silence; `user_message` says why and what to do."""


class SilenceNotFound(SilenceFailed):
    """The silence id given for an update (or to expire) is unknown to Alertmanager, or
    already expired there."""


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }


def equal_matchers(labels: Mapping[str, str]) -> tuple[Matcher, ...]:
    """Exact matchers for a label set, in a stable order."""
    return tuple(Matcher(k, v) for k, v in sorted(labels.items()) if v)


def _rfc3339(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class AlertmanagerSilences:
    def __init__(self, *, base_url: str, timeout_s: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def expire(self, silence_id: str) -> None:
        """Expire a silence now (Alertmanager keeps it, expired, for its retention time).

        Raises `SilenceNotFound` when Alertmanager does not know the id or the silence has
        already ended: it is read first, because Alertmanager answers 200 to expiring an
        expired silence and 500 to expiring an unknown one.
        """
        url = f"{self._base_url}/api/v2/silence/{quote(silence_id, safe='')}"
        gone = SilenceNotFound(
            f"Alertmanager no longer has silence `{silence_id}` in force: it expired or was "
            "removed there."
        )
        status, text = await self._call("GET", url)
        if status == 404:
            raise gone
        if status == 200:
            try:
                state = (json.loads(text).get("status") or {}).get("state")
            except (ValueError, AttributeError):
                state = None
            if state == "expired":
                raise gone
        status, text = await self._call("DELETE", url)
        if status == 200:
            return
        if status == 404 or "not found" in text or "already expired" in text:
            raise gone
        reason = " ".join(text.split())[:300] or f"HTTP {status}"
        raise SilenceFailed(
            f"Alertmanager refused to expire the silence (HTTP {status}: {reason}). The silence "
            "is still in place; expire it from Alertmanager's own page."
        )

    async def _call(self, method: str, url: str) -> tuple[int, str]:
        try:
            async with self._client().request(method, url) as response:
                return response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as err:
            log.warning("Alertmanager unsilence failed", extra={"url": url, "error": repr(err)})
            raise SilenceFailed(
                f"Alertmanager at {self._base_url} did not answer ({type(err).__name__}), so the "
                "silence is still in place. Try again in a minute, or expire it from "
                "Alertmanager's own page."
            ) from err

    async def create(
        self,
        *,
        matchers: tuple[Matcher, ...],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
        silence_id: str | None = None,
    ) -> str:
        """Create a silence (or extend `silence_id`) and return its id."""
        if not matchers:
            raise SilenceFailed("A silence needs at least one label to match; this group has none.")
        body: dict[str, Any] = {
            "matchers": [m.to_json() for m in matchers],
            "startsAt": _rfc3339(starts_at),
            "endsAt": _rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        if silence_id is not None:
            body["id"] = silence_id
        url = f"{self._base_url}/api/v2/silences"
        try:
            async with self._client().post(url, json=body) as response:
                text = await response.text()
                status = response.status
                data: Any = await response.json(content_type=None) if status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            log.warning("Alertmanager silence call failed", extra={"url": url, "error": repr(err)})
            raise SilenceFailed(
                f"Alertmanager at {self._base_url} did not answer ({type(err).__name__}). "
                "Try again in a minute; if it keeps failing, silence the group from "
                "Alertmanager's own page and check `alertmanager.url`."
            ) from err
        if status == 404 and silence_id is not None:
            raise SilenceNotFound(f"Silence {silence_id} no longer exists in Alertmanager.")
        if status != 200 or not isinstance(data, dict) or not data.get("silenceID"):
            reason = " ".join(text.split())[:300] or f"HTTP {status}"
            raise SilenceFailed(
                f"Alertmanager refused the silence (HTTP {status}: {reason}). "
                "Nothing was silenced; silence the group from Alertmanager's own page."
            )
        return str(data["silenceID"])
