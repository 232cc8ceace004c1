"""S3-compatible storage as a backup target, through the AWS SDK (boto3).

The only module that talks to the AWS SDK (ruff's banned-api keeps it so). boto3 is
synchronous, so every call runs in a worker thread (`asyncio.to_thread`) and the event loop
never waits on it. Each store gets one boto3 client, built on first use in a worker thread
(building it resolves credentials, which may mean a metadata or STS call) and shared by
every later call: clients are thread-safe, sessions are not.

- Bounded: botocore's connect and read timeouts are the target's `timeout_s`, and failed
  calls are retried in botocore's "standard" mode (throttling, 5xx, broken connections) up
  to `max_attempts` attempts in all.
- Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when the
  settings carry them; otherwise boto3's default chain (environment, shared config and
  credentials files with AWS_PROFILE, web identity / IRSA via AWS_ROLE_ARN +
  AWS_WEB_IDENTITY_TOKEN_FILE, container and instance metadata).
- `endpoint_url` points at MinIO, Ceph or any S3-compatible store (path-style addressing,
  and checksums only where the API requires them, which such stores understand); without
  it, AWS S3 of the configured region is used.
- Bundles above the multipart threshold are uploaded in parts; `sse` asks the store to
  encrypt objects at rest (AES256, or aws:kms with an optional key id).

Each backup is one object, `<prefix><YYYY>/<MM>/<DD>/<id>.tar.gz` (the same reproducible
tarball Slack gets), with its MANIFEST beside it as `<id>.MANIFEST.json`; evidence packs go
to `<prefix>evidence/<YYYY-MM>.tar.gz`. Retention keeps the newest `keep` backups.
Failures are `TargetError`s whose message says what went wrong and what to change.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot.backup.bundle import ID_PATTERN, MANIFEST, tarball, untar
from bot.backup.targets import Stored, TargetError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client as Boto3Client

MIB = 1024 * 1024
T = TypeVar("T")
_CREDENTIALS_HELP = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared "
    "credentials file, or give the bot a role (on EKS: the ServiceAccount annotation "
    "eks.amazonaws.com/role-arn, Helm value serviceAccount.annotations)"
)
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class S3Client:
    """The few S3 calls a backup needs (put, get, list, delete), off the event loop."""

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        credentials: Credentials | None = None,
        endpoint_url: str | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 3,
        multipart_threshold: int = 8 * MIB,
        sse: Literal["AES256", "aws:kms"] | None = None,
        sse_kms_key_id: str | None = None,
    ) -> None:
        """`credentials` None: boto3's default chain finds them."""
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._credentials = credentials
        checksums: dict[str, Any] = {}
        if endpoint_url:
            # Newer SDKs add CRC checksums to every upload; many S3-compatible stores
            # reject them, and none needs them where the API does not.
            checksums = {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            }
        self._config = Config(
            region_name=region,
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            **checksums,
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_threshold,
            max_concurrency=4,
        )
        self._encryption: dict[str, str] = {}
        if sse:
            self._encryption["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._encryption["SSEKMSKeyId"] = sse_kms_key_id
        self._client: Boto3Client | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or f"https://s3.{self.region}.amazonaws.com"

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        extra = {"ContentType": content_type, **self._encryption}

        def upload() -> None:
            self._s3().upload_fileobj(
                io.BytesIO(data), self.bucket, key, ExtraArgs=extra, Config=self._transfer
            )

        await self._call("write", key, upload)

    async def get(self, key: str) -> bytes:
        def download() -> bytes:
            body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"]
            with body:
                return body.read()

        return await self._call("read", key, download)

    async def delete(self, key: str) -> None:
        def delete() -> None:
            self._s3().delete_object(Bucket=self.bucket, Key=key)

        await self._call("delete", key, delete)

    async def list(self, prefix: str) -> list[str]:
        """Every key under `prefix` (ListObjectsV2, page by page)."""

        def keys() -> list[str]:
            pages = (
                self._s3()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=prefix)
            )
            return [item["Key"] for page in pages for item in page.get("Contents", [])]

        return await self._call("list", prefix, keys)

    def _s3(self) -> Boto3Client:
        """The store's client, built once (in a worker thread: it may fetch credentials)."""
        with self._lock:
            if self._client is None:
                given = self._credentials
                session = boto3.session.Session(
                    aws_access_key_id=given.access_key_id if given else None,
                    aws_secret_access_key=given.secret_access_key if given else None,
                    aws_session_token=given.session_token if given else None,
                    region_name=self.region,
                )
                self._client = session.client(
                    "s3", endpoint_url=self.endpoint_url, config=self._config
                )
            return self._client

    async def _call(self, action: str, key: str, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except NoCredentialsError:
            with self._lock:
                self._client = None  # credentials may appear later (a role, a mounted file)
            raise TargetError(
                f"S3 found no AWS credentials to {action} s3://{self.bucket}/{key}: "
                f"{_CREDENTIALS_HELP}."
            ) from None
        except (ClientError, BotoCoreError) as err:
            raise TargetError(self._explain(err, action, key)) from None

    def _explain(self, err: Exception, action: str, key: str) -> str:
        where = f"s3://{self.bucket}/{key}"
        if isinstance(err, ConnectTimeoutError | ReadTimeoutError):
            return (
                f"S3 at {self.endpoint} did not answer within {self.timeout_s:g} s "
                f"({self.max_attempts} attempt(s)) to {action} {where}: check that the store "
                "is up and reachable from the bot, or raise `timeout_s` of the s3 target."
            )
        if isinstance(err, BotoConnectionError | HTTPClientError):
            return (
                f"S3 at {self.endpoint} did not answer ({type(err).__name__}: {err}) to "
                f"{action} {where} after {self.max_attempts} attempt(s): check `endpoint_url` "
                "and `region` of the s3 target and the network between the bot and the store."
            )
        if isinstance(err, PartialCredentialsError | ProfileNotFound | CredentialRetrievalError):
            return f"S3 could not get AWS credentials ({err}): {_CREDENTIALS_HELP}."
        if not isinstance(err, ClientError):
            return f"S3 could not {action} {where}: {type(err).__name__}: {err}"
        error = err.response.get("Error", {})
        code = error.get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = f"HTTP {status} {code}".strip()
        if err.operation_name.startswith("AssumeRole"):
            return (
                f"AWS STS refused the bot's role ({detail}: {error.get('Message', '')}): check "
                "AWS_ROLE_ARN, the web identity token and the role's trust policy."
            )
        if code == "NoSuchBucket":
            return (
                f"S3 bucket {self.bucket} does not exist at {self.endpoint} ({detail}): "
                "create it, or correct `bucket`, `endpoint_url` or `region` of the s3 target."
            )
        if code in ("NoSuchKey", "404") or (status == 404 and action == "read"):
            return f"S3 has no object {where} ({detail}): it was deleted or never written."
        if code.startswith("KMS") or "kms" in str(error.get("Message", "")).lower():
            return (
                f"S3 could not {action} {where} with KMS encryption ({detail}): check "
                "`sse_kms_key_id` and that the bot's AWS identity may use that key "
                "(kms:GenerateDataKey, kms:Decrypt)."
            )
        if code in _DENIED or status == 403:
            return (
                f"S3 refused to {action} {where} ({detail}): the bot's AWS identity lacks "
                "permission on the bucket, or its credentials are wrong or expired. Check "
                "AWS_* / AWS_PROFILE / the role, and the IAM and bucket policies."
            )
        if code in _BUSY or status >= 500:
            return (
                f"S3 kept failing to {action} {where} after {self.max_attempts} attempt(s) "
                f"({detail}): the store is overloaded or down. The next backup tries again; "
                "raise `max_attempts` of the s3 target if this is frequent."
            )
        message = error.get("Message", "")
        return f"S3 could not {action} {where} ({detail}{': ' + message if message else ''})."


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
