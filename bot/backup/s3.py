"""S3-compatible storage as a backup target, spoken directly over aiohttp with SigV4.

Only four calls are needed (PUT, GET, ListObjectsV2, DELETE of an object), so the bot signs
them itself (AWS Signature Version 4) instead of pulling in boto3: no extra dependency, no
synchronous client to keep off the event loop, and every call has the bot's own timeout.
`endpoint_url` points at MinIO, Ceph, or any S3-compatible store (path-style addressing);
without it, AWS S3 of the configured region is used (virtual-hosted addressing).

Each backup is one object, `<prefix><YYYY>/<MM>/<DD>/<id>.tar.gz` (the same reproducible
tarball Slack gets), with its MANIFEST beside it as `<id>.MANIFEST.json`; evidence packs go
to `<prefix>evidence/<YYYY-MM>.tar.gz`. Retention keeps the newest `keep` backups.
"""

from __future__ import annotations

import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from bot.backup.bundle import ID_PATTERN, MANIFEST, tarball, untar
from bot.backup.targets import Stored, TargetError
from bot.clock import Clock

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class S3Client:
    """The few S3 calls a backup needs, signed with SigV4."""

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        credentials: Credentials,
        endpoint_url: str | None = None,
        timeout_s: float = 30.0,
        clock: Clock,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._clock = clock
        if endpoint_url:
            parts = urlsplit(endpoint_url.rstrip("/"))
            self._base = f"{parts.scheme}://{parts.netloc}{parts.path}/{quote(bucket)}"
        else:
            self._base = f"https://{bucket}.s3.{region}.amazonaws.com"

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await self._request("PUT", key, body=data, headers={"Content-Type": content_type})

    async def get(self, key: str) -> bytes:
        return await self._request("GET", key)

    async def delete(self, key: str) -> None:
        await self._request("DELETE", key)

    async def list(self, prefix: str) -> list[str]:
        """Every key under `prefix` (ListObjectsV2, following continuation tokens)."""
        keys: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            body = await self._request("GET", "", query=query)
            try:
                root = ET.fromstring(body)
            except ET.ParseError as err:
                raise TargetError(f"S3 answered a list with invalid XML: {err}") from None
            keys += [e.text or "" for e in root.iter(f"{_NS}Key")]
            truncated = (root.findtext(f"{_NS}IsTruncated") or "false") == "true"
            token = root.findtext(f"{_NS}NextContinuationToken")
            if not truncated or not token:
                return keys

    async def _request(
        self,
        method: str,
        key: str,
        *,
        body: bytes = b"",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        url = f"{self._base}/{quote(key, safe='/-_.~')}" if key else f"{self._base}/"
        query_string = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in sorted((query or {}).items())
        )
        signed = sign(
            method,
            url,
            query_string,
            body,
            region=self.region,
            credentials=self.credentials,
            at=self._clock.now(),
            extra=headers or {},
        )
        full = URL(f"{url}?{query_string}" if query_string else url, encoded=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(method, full, data=body or None, headers=signed) as response,
            ):
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise TargetError(
                f"S3 at {self._base} did not answer: {type(err).__name__} {err}".strip()
            ) from None
        if status >= 300:
            raise TargetError(f"S3 {method} {key or '/'} failed: HTTP {status} {_code(data)}")
        return data


def sign(
    method: str,
    url: str,
    query_string: str,
    body: bytes,
    *,
    region: str,
    credentials: Credentials,
    at: datetime,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 request (`url` already percent-encoded)."""
    parts = urlsplit(url)
    amz_date = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    headers = {
        "host": parts.netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
        **{k.lower(): v.strip() for k, v in extra.items()},
    }
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            query_string,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{credentials.secret_access_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def _code(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ""
    return (root.findtext("Code") or "").strip()


class S3Target:
    kind = "s3"

    def __init__(self, client: S3Client, *, prefix: str, keep: int) -> None:
        self.client = client
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.keep = keep

    def describe(self) -> str:
        return f"s3://{self.client.bucket}/{self.prefix}"

    async def store_backup(
        self,
        backup_id: str,
        files: Mapping[str, bytes],
        *,
        at: datetime,
        message: str,
        environments: Sequence[str],
    ) -> Stored:
        day = at.astimezone(UTC).strftime("%Y/%m/%d/")
        key = f"{self.prefix}{day}{backup_id}.tar.gz"
        await self.client.put(
            key, tarball(files, root=backup_id, mtime=at), content_type="application/gzip"
        )
        await self.client.put(
            f"{self.prefix}{day}{backup_id}.{MANIFEST}.json",
            files[MANIFEST],
            content_type="application/json",
        )
        await self._prune()
        url = f"s3://{self.client.bucket}/{key}"
        return Stored("s3", url, f"s3://{self.client.bucket}/{self.prefix}{day}")

    async def load_backup(self, location: str) -> dict[str, bytes]:
        prefix = f"s3://{self.client.bucket}/"
        if not location.startswith(prefix):
            raise TargetError(f"{location} is not in bucket {self.client.bucket}")
        return untar(await self.client.get(location[len(prefix) :]))

    async def store_evidence(
        self, month: str, files: Mapping[str, bytes], *, at: datetime, message: str
    ) -> Stored:
        key = f"{self.prefix}evidence/{month}.tar.gz"
        await self.client.put(
            key, tarball(files, root=f"evidence-{month}", mtime=at), content_type="application/gzip"
        )
        url = f"s3://{self.client.bucket}/{key}"
        return Stored("s3", url, url)

    async def _prune(self) -> None:
        keys = await self.client.list(self.prefix)
        backups: dict[str, list[str]] = {}
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            backup = name.split(".", 1)[0]
            if ID_PATTERN.match(backup) and not key.startswith(f"{self.prefix}evidence/"):
                backups.setdefault(backup, []).append(key)
        for backup in sorted(backups)[: max(0, len(backups) - self.keep)]:
            for key in backups[backup]:
                await self.client.delete(key)
