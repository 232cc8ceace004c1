"""The S3 target: SigV4 against AWS's published example, then against moto's S3 server.

moto runs as its own process on 127.0.0.1 (its server mode speaks the S3 REST API), so the
client is tested over the wire as against MinIO or AWS. moto does not check signatures; the
signing itself is checked against the example AWS publishes, byte for byte.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.backup.bundle import MANIFEST, tarball
from bot.backup.s3 import Credentials, S3Client, S3Target, sign
from bot.backup.targets import TargetError
from bot.clock import SYSTEM_CLOCK

AT = datetime(2026, 11, 28, 2, tzinfo=UTC)
EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_signature_matches_the_aws_documentation_example() -> None:
    # "Example: GET Object" of the S3 SigV4 documentation (Authenticating Requests).
    headers = sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        "",
        b"",
        region="us-east-1",
        credentials=EXAMPLE,
        at=datetime(2013, 5, 24, tzinfo=UTC),
        extra={"Range": "bytes=0-9"},
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


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


def _client(url: str, bucket: str, secret: str = "secret") -> S3Client:
    return S3Client(
        clock=SYSTEM_CLOCK,
        bucket=bucket,
        region="us-east-1",
        credentials=Credentials("testing", secret),
        endpoint_url=url,
        timeout_s=10,
    )


async def test_backups_evidence_and_retention_on_s3(moto_url: str) -> None:
    client = _client(moto_url, "policy-backups")
    await client._request("PUT", "")  # create the bucket (the bot never does)
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
    assert (
        stored[2][0].location == "s3://policy-backups/kyverno/2026/11/30/b-20261122-020000.tar.gz"
    )
    assert stored[2][0].display == "s3://policy-backups/kyverno/2026/11/30/"
    keys = sorted(await client.list("kyverno/"))
    assert keys == [
        "kyverno/2026/11/29/b-20261121-020000.MANIFEST.json",
        "kyverno/2026/11/29/b-20261121-020000.tar.gz",
        "kyverno/2026/11/30/b-20261122-020000.MANIFEST.json",
        "kyverno/2026/11/30/b-20261122-020000.tar.gz",
    ]  # keep: 2
    result, files = stored[2]
    assert await target.load_backup(result.location) == files
    assert await client.get(keys[-1]) == tarball(
        files, root="b-20261122-020000", mtime=AT + timedelta(days=2)
    )
    evidence = await target.store_evidence("2026-11", {"report.md": b"# r\n"}, at=AT, message="")
    assert evidence.location == "s3://policy-backups/kyverno/evidence/2026-11.tar.gz"
    assert len(await client.list("kyverno/")) == 5  # evidence is never pruned


async def test_missing_bucket_and_unreachable_endpoint_are_clear_errors(moto_url: str) -> None:
    target = S3Target(_client(moto_url, "no-such-bucket"), prefix="", keep=3)
    with pytest.raises(TargetError, match="HTTP 404 NoSuchBucket"):
        await target.store_backup(
            "b-20261128-020000", {MANIFEST: b"{}"}, at=AT, message="", environments=[]
        )
    closed = S3Target(_client(f"http://127.0.0.1:{_free_port()}", "x"), prefix="", keep=3)
    with pytest.raises(TargetError, match="did not answer"):
        await closed.store_backup(
            "b-20261128-020000", {MANIFEST: b"{}"}, at=AT, message="", environments=[]
        )
