"""Every way a kubeconfig proves who the bot is still reaches the real API server: static
credentials (certificates and tokens, as files or inline) without the kubernetes SDK, exec
plugins through it, and a server the kubeconfig's CA does not vouch for refused."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from urllib3.exceptions import InsecureRequestWarning

from bot.errors import ClusterForbidden, ClusterUnavailable
from bot.kinds import Kind
from bot.kube.gateway import ClusterGateway
from bot.kube.transport import DirectTransport, SdkTransport
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.pki import TinyCA
from bot.settings import Environment

pytestmark = pytest.mark.kube
ROOT = Path(__file__).resolve().parents[2]


def write_kubeconfig(
    path: Path, server: str, cluster: dict[str, Any], user: dict[str, Any]
) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "plane", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "bot", "user": user}],
                "contexts": [{"name": "bot", "context": {"cluster": "plane", "user": "bot"}}],
                "current-context": "bot",
            }
        )
    )
    return path


def data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def cluster_policies(kinds: tuple[Kind, ...]) -> Kind:
    return next(k for k in kinds if k.spec.group == "kyverno.io" and k.spec.kind == "ClusterPolicy")


@pytest.fixture
def reader_token(control_plane: ControlPlane, kube_namespace: str) -> Iterator[str]:
    """A ServiceAccount token (TokenRequest) allowed to list ClusterPolicies, nothing more."""
    name = f"reader-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", kube_namespace)
    control_plane.kubectl(
        "create", "clusterrole", name, "--verb=list", "--resource=clusterpolicies.kyverno.io"
    )
    control_plane.kubectl(
        "create",
        "clusterrolebinding",
        name,
        f"--clusterrole={name}",
        f"--serviceaccount={kube_namespace}:reader",
    )
    try:
        token = control_plane.kubectl(
            "create", "token", "reader", "-n", kube_namespace, "--duration=10m"
        ).stdout.strip()
        yield token
    finally:
        control_plane.kubectl("delete", f"clusterrolebinding/{name}", f"clusterrole/{name}")


def test_a_token_kubeconfig_reads_without_importing_the_sdk(
    control_plane: ControlPlane, reader_token: str, tmp_path: Path
) -> None:
    config = write_kubeconfig(
        tmp_path / "token.kubeconfig",
        control_plane.url,
        {"certificate-authority-data": data(control_plane.pki.ca_file)},
        {"token": reader_token},
    )
    script = f"""
import asyncio, json, sys
from pathlib import Path
from bot.kube.gateway import ClusterGateway
from bot.settings import Environment

async def main():
    gw = ClusterGateway(Environment(name="dev", kubeconfig=Path({str(config)!r})))
    try:
        kinds = await gw.kinds()
        cpol = next(k for k in kinds if k.spec.group == "kyverno.io" and k.spec.kind == "ClusterPolicy")
        listed = await gw.list_all(cpol)
    finally:
        await gw.close()
    names = [o["metadata"]["name"] for o in listed]
    print(json.dumps({{"listed": names, "sdk": "kubernetes" in sys.modules}}))

asyncio.run(main())
"""
    policy = f"token-{secrets.token_hex(3)}"
    with control_plane.api_client() as api:
        seed.apply_objects(api, [seed.legacy_cluster_policy(policy)])
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    control_plane.kubectl("delete", "clusterpolicy", policy)
    answer = json.loads(out.stdout)
    assert answer["sdk"] is False
    assert policy in answer["listed"]


async def test_a_token_file_and_a_wrong_token(
    control_plane: ControlPlane, reader_token: str, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(reader_token)
    cluster = {"certificate-authority": str(control_plane.pki.ca_file)}
    good = write_kubeconfig(tmp_path / "good", control_plane.url, cluster, {"tokenFile": "token"})
    bad = write_kubeconfig(tmp_path / "bad", control_plane.url, cluster, {"token": "not-a-token"})
    gw = ClusterGateway(Environment(name="dev", kubeconfig=good))
    try:
        cpol = cluster_policies(await gw.kinds())
        await gw.list_all(cpol)
        assert isinstance(gw._api(), DirectTransport)
        with pytest.raises(ClusterForbidden):  # the reader may list, not delete
            await gw.delete(cpol, "anything")
    finally:
        await gw.close()
    refused = ClusterGateway(Environment(name="dev", kubeconfig=bad))
    try:
        with pytest.raises(ClusterForbidden):  # 401: the server does not know the token
            await refused.list_all(cpol)
    finally:
        await refused.close()


async def test_inline_client_certificate_and_an_unverified_server(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    pki = control_plane.pki
    user = {"client-certificate-data": data(pki.admin_cert), "client-key-data": data(pki.admin_key)}
    inline = write_kubeconfig(
        tmp_path / "inline",
        control_plane.url,
        {"certificate-authority-data": data(pki.ca_file)},
        user,
    )
    insecure = write_kubeconfig(
        tmp_path / "insecure", control_plane.url, {"insecure-skip-tls-verify": True}, user
    )
    for config in (inline, insecure):
        gw = ClusterGateway(Environment(name="dev", kubeconfig=config))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await gw.list_all(cluster_policies(await gw.kinds()))  # as admin
            assert isinstance(gw._api(), DirectTransport)
        finally:
            await gw.close()
        unverified = [w for w in caught if w.category is InsecureRequestWarning]
        assert bool(unverified) is (config == insecure)  # urllib3 says so, as with the SDK


async def test_a_server_the_ca_does_not_vouch_for_is_refused(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    stranger = base64.b64encode(TinyCA("someone-else").cert_pem).decode()
    config = write_kubeconfig(
        tmp_path / "stranger",
        control_plane.url,
        {"certificate-authority-data": stranger},
        {
            "client-certificate": str(control_plane.pki.admin_cert),
            "client-key": str(control_plane.pki.admin_key),
        },
    )
    gw = ClusterGateway(Environment(name="dev", kubeconfig=config, timeout_s=3))
    try:
        with pytest.raises(ClusterUnavailable, match="certificate verify failed"):
            await gw.kinds()
    finally:
        await gw.close()


async def test_an_exec_plugin_goes_through_the_sdk(
    control_plane: ControlPlane, reader_token: str, tmp_path: Path
) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": reader_token},
    }
    config = write_kubeconfig(
        tmp_path / "exec",
        control_plane.url,
        {"certificate-authority": str(control_plane.pki.ca_file)},
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
            }
        },
    )
    gw = ClusterGateway(Environment(name="dev", kubeconfig=config))
    try:
        cpol = cluster_policies(await gw.kinds())
        await gw.list_all(cpol)
        assert isinstance(gw._api(), SdkTransport)
        with pytest.raises(ClusterForbidden):  # it is the reader: it may not delete
            await gw.delete(cpol, "anything")
    finally:
        await gw.close()
