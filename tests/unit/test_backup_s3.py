"""The S3 target over the wire, against moto's S3 (and STS) server on 127.0.0.1.

moto runs as its own process (its server mode speaks the S3 and STS REST APIs), so the bot's
boto3 client is tested as against MinIO or AWS. Faults come from loopback helpers in front
of it: a proxy that answers 503 SlowDown before passing requests on (and records how each
request was signed), and a server that accepts connections and never answers.

Every test runs with the AWS environment emptied, shared config files pointed at the test's
own directory and instance metadata switched off, so credentials come only from where the
test puts them and no request leaves the loopback interface.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from yarl import URL

from bot.backup.bundle import MANIFEST, tarball, untar
from bot.backup.s3 import MIB, Credentials, S3Client, S3Target
from bot.backup.service import build_targets
from bot.backup.targets import TargetError
from bot.settings import parse_settings
from tests.harness import HungServer

AT = datetime(2026, 11, 28, 2, tzinfo=UTC)
BID = "b-20261128-020000"
KEYS = Credentials("testing", "testing")
SMALL = {"dev/a.yaml": b"a: 1\n", MANIFEST: b'{"id": "b-20261128-020000"}\n'}
_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto[server] is not installed (pip install 'moto[server]')")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "moto server exited"
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials but those a test provides, and no metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def _admin(url: str) -> Any:
    """A plain boto3 client to set up and inspect the store (the bot never creates buckets)."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _bucket(url: str) -> str:
    name = f"policy-backups-{next(_names)}"
    _admin(url).create_bucket(Bucket=name)
    return name


def _client(url: str, bucket: str, **options: Any) -> S3Client:
    settings: dict[str, Any] = {"credentials": KEYS, "timeout_s": 10, **options}
    return S3Client(bucket=bucket, region="us-east-1", endpoint_url=url, **settings)


async def _store(client: S3Client, prefix: str = "") -> str:
    stored = await S3Target(client, prefix=prefix, keep=3).store_backup(
        BID, SMALL, at=AT, message="", environments=["dev"]
    )
    return stored.location


class S3Proxy:
    """A loopback HTTP proxy in front of moto: answers the first `fail` requests with 503
    SlowDown, passes the rest on, and records each request's method and headers."""

    HOP = frozenset(
        {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive"}
    )

    def __init__(self, upstream: str, *, fail: int = 0) -> None:
        self.upstream = upstream
        self.fail = fail
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""

    async def __aenter__(self) -> S3Proxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * MIB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.method, dict(request.headers)))
        if self.fail > 0:
            self.fail -= 1
            return web.Response(
                status=503,
                content_type="application/xml",
                text="<Error><Code>SlowDown</Code><Message>Please reduce your request rate."
                "</Message></Error>",
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP}
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            data=body,
            headers=headers,
        ) as upstream:
            data = await upstream.read()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in self.HOP}
            return web.Response(status=upstream.status, body=data, headers=answer)

    def signed_with(self) -> set[str]:
        """The access key ids that signed the requests."""
        return {
            h["Authorization"].split("Credential=", 1)[1].split("/", 1)[0] for _, h in self.requests
        }


async def test_backups_evidence_and_retention_on_s3(moto_url: str) -> None:
    bucket = _bucket(moto_url)
    client = _client(moto_url, bucket)
    target = S3Target(client, prefix="kyverno", keep=2)
    stored = []
    for day in range(3):
        bid = f"b-2026112{day}-020000"
        files = {"dev/a.yaml": f"a: {day}\n".encode(), MANIFEST: b'{"id": "%s"}\n' % bid.encode()}
        result = await target.store_backup(
            bid, files, at=AT + timedelta(days=day), message="", environments=["dev"]
        )
        assert result.ok
        stored.append((result, files))
    assert stored[2][0].location == f"s3://{bucket}/kyverno/2026/11/30/b-20261122-020000.tar.gz"
    assert stored[2][0].display == f"s3://{bucket}/kyverno/2026/11/30/"
    keys = sorted(await client.list("kyverno/"))
    assert keys == [
        "kyverno/2026/11/29/b-20261121-020000.MANIFEST.json",
        "kyverno/2026/11/29/b-20261121-020000.tar.gz",
        "kyverno/2026/11/30/b-20261122-020000.MANIFEST.json",
        "kyverno/2026/11/30/b-20261122-020000.tar.gz",
    ]  # keep: 2
    result, files = stored[2]
    assert await target.load_backup(result.location) == files
    # The object is the bundle's tarball (compared unpacked: gzip stamps its own header).
    assert untar(await client.get(keys[-1])) == untar(
        tarball(files, root="b-20261122-020000", mtime=AT + timedelta(days=2))
    )
    head = _admin(moto_url).head_object(Bucket=bucket, Key=keys[-1])
    assert head["ContentType"] == "application/gzip"
    evidence = await target.store_evidence("2026-11", {"report.md": b"# r\n"}, at=AT, message="")
    assert evidence.location == f"s3://{bucket}/kyverno/evidence/2026-11.tar.gz"
    assert len(await client.list("kyverno/")) == 5  # evidence is never pruned


async def test_listing_follows_every_page(moto_url: str) -> None:
    bucket = _bucket(moto_url)
    admin = _admin(moto_url)
    for n in range(1005):  # ListObjectsV2 answers at most 1,000 keys a page
        admin.put_object(Bucket=bucket, Key=f"p/{n:04d}", Body=b"")
    assert len(await _client(moto_url, bucket).list("p/")) == 1005


async def test_settings_reach_the_store_large_bundles_go_in_parts_encrypted(
    moto_url: str,
) -> None:
    bucket = _bucket(moto_url)
    document = {
        "slack": {"mode": "http"},
        "environments": [{"name": "dev"}],
        "backup": {
            "targets": [
                {
                    "type": "s3",
                    "bucket": bucket,
                    "endpoint_url": moto_url,
                    "multipart_threshold_mib": 5,
                    "sse": "AES256",
                }
            ]
        },
    }
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    (target,) = build_targets(parse_settings(document, env))
    # Random bytes do not compress: the tarball stays above 10 MiB, so three 5 MiB parts.
    files = {"dev/big.bin": random.Random(7).randbytes(11 * MIB), MANIFEST: b"{}\n"}
    stored = await target.store_backup(BID, files, at=AT, message="", environments=["dev"])
    admin = _admin(moto_url)
    key = stored.location.removeprefix(f"s3://{bucket}/")
    head = admin.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert head["ServerSideEncryption"] == "AES256"
    manifest = admin.head_object(Bucket=bucket, Key=key.replace(".tar.gz", ".MANIFEST.json"))
    assert "-" not in manifest["ETag"]  # below the threshold: one PUT
    assert manifest["ServerSideEncryption"] == "AES256"
    assert await target.load_backup(stored.location) == files


async def test_kms_encryption_names_the_key(moto_url: str) -> None:
    bucket = _bucket(moto_url)
    client = _client(moto_url, bucket, sse="aws:kms", sse_kms_key_id="alias/policy-backups")
    location = await _store(client)
    head = _admin(moto_url).head_object(Bucket=bucket, Key=location.split("/", 3)[3])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/policy-backups")


async def test_credentials_from_a_shared_credentials_file_and_aws_profile(
    moto_url: str, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(moto_url)
    (aws_env / "aws-credentials").write_text(
        "[policy-bot]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret\n"
    )
    async with S3Proxy(moto_url) as proxy:
        with pytest.raises(TargetError, match=r"found no AWS credentials.*AWS_PROFILE"):
            await _store(_client(proxy.url, bucket, credentials=None))
        assert proxy.requests == []  # nothing was sent unsigned
        monkeypatch.setenv("AWS_PROFILE", "policy-bot")
        assert await _store(_client(proxy.url, bucket, credentials=None))
    assert proxy.signed_with() == {"AKIDPROFILE"}


async def test_web_identity_credentials_from_sts(
    moto_url: str, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(moto_url)
    token = aws_env / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")  # moto takes any token
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/policy-bot")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    async with S3Proxy(moto_url) as proxy:
        assert await _store(_client(proxy.url, bucket, credentials=None))
    (key_id,) = proxy.signed_with()
    assert key_id.startswith("ASIA")  # temporary credentials STS handed out for the role
    assert all("X-Amz-Security-Token" in h for _, h in proxy.requests)


async def test_a_throttled_request_is_retried(moto_url: str) -> None:
    bucket = _bucket(moto_url)
    async with S3Proxy(moto_url, fail=1) as proxy:
        client = _client(proxy.url, bucket, max_attempts=3)
        assert await _store(client)
        assert await client.list("") != []
    # the tarball twice (503, then stored), the manifest, the listing, the list again
    assert [m for m, _ in proxy.requests] == ["PUT", "PUT", "PUT", "GET", "GET"]


async def test_retries_exhausted_is_a_clear_error(moto_url: str) -> None:
    bucket = _bucket(moto_url)
    async with S3Proxy(moto_url, fail=100) as proxy:
        with pytest.raises(TargetError) as info:
            await _store(_client(proxy.url, bucket, max_attempts=2))
    assert len(proxy.requests) == 2
    message = str(info.value)
    assert "kept failing to write" in message and "after 2 attempt(s)" in message
    assert "HTTP 503 SlowDown" in message and "max_attempts" in message


async def test_a_hung_store_times_out_within_the_configured_timeout() -> None:
    hung = HungServer()
    await hung.start()
    try:
        client = _client(f"http://127.0.0.1:{hung.port}", "x", timeout_s=0.5, max_attempts=1)
        started = time.monotonic()
        with pytest.raises(TargetError, match=r"did not answer within 0\.5 s .*timeout_s"):
            await _store(client)
        # botocore gives a PUT one second to answer "100 Continue" before sending the body,
        # then waits timeout_s for the answer: far below botocore's default 60 s.
        assert time.monotonic() - started < 20
    finally:
        await hung.stop()


async def test_missing_bucket_and_unreachable_endpoint_are_clear_errors(moto_url: str) -> None:
    with pytest.raises(TargetError, match=r"bucket no-such-bucket does not exist.*create it"):
        await _store(_client(moto_url, "no-such-bucket"))
    closed = _client(f"http://127.0.0.1:{_free_port()}", "x", max_attempts=1)
    with pytest.raises(TargetError, match=r"did not answer .*endpoint_url"):
        await _store(closed)
    with pytest.raises(TargetError, match="has no object"):
        await _client(moto_url, _bucket(moto_url)).get("gone.tar.gz")


async def test_missing_credentials_are_retried_on_the_next_call(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(moto_url)
    client = _client(moto_url, bucket, credentials=None)
    with pytest.raises(TargetError, match="found no AWS credentials"):
        await _store(client)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "late")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "late")
    assert await _store(client)
