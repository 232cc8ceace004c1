"""Reading a kubeconfig's static credentials without the SDK: the SDK's meanings, and every
case it does not fully understand left to the SDK (None)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.kube.kubeconfig import PemSource, StaticCredentials, read_static

CA_PEM = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


def kubeconfig(
    folder: Path,
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    extra_contexts: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> Path:
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443/"}},
            {"name": "other", "cluster": {"server": "https://10.0.0.2"}},
        ],
        "users": [{"name": "u", "user": user or {}}, {"name": "o", "user": {"token": "other"}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u"}},
            {"name": "second", "context": {"cluster": "other", "user": "o"}},
            *extra_contexts,
        ],
        "current-context": "main",
    }
    path = folder / "config"
    path.write_text(yaml.safe_dump(body))
    return path


def test_server_ca_and_client_certificate_files_relative_to_the_kubeconfig(
    tmp_path: Path,
) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("ca.crt", "admin.crt", "admin.key"):
        (tmp_path / "pki" / name).write_text("pem")
    path = kubeconfig(
        tmp_path,
        cluster={"server": "https://10.0.0.1:6443/", "certificate-authority": "pki/ca.crt"},
        user={"client-certificate": "pki/admin.crt", "client-key": "./pki/../pki/admin.key"},
    )
    assert read_static(path, None) == StaticCredentials(
        host="https://10.0.0.1:6443",
        ca=PemSource(file=str(tmp_path / "pki/ca.crt")),
        client_cert=PemSource(file=str(tmp_path / "pki/admin.crt")),
        client_key=PemSource(file=str(tmp_path / "pki/admin.key")),
    )


def test_data_keys_win_over_files_even_when_empty(tmp_path: Path) -> None:
    encoded = base64.b64encode(CA_PEM).decode()
    path = kubeconfig(
        tmp_path,
        cluster={
            "server": "https://10.0.0.1",
            "certificate-authority-data": encoded,
            "certificate-authority": "missing.crt",
        },
        user={"client-certificate-data": "", "client-certificate": "missing.crt"},
    )
    found = read_static(path, None)
    assert found is not None
    assert found.ca == PemSource(data=CA_PEM)
    assert found.client_cert == PemSource()


def test_token_token_file_and_basic_auth(tmp_path: Path) -> None:
    assert read_static(kubeconfig(tmp_path, user={"token": "abc"}), None) == StaticCredentials(
        host="https://10.0.0.1:6443", authorization="Bearer abc"
    )
    (tmp_path / "token").write_text("from-file")
    found = read_static(kubeconfig(tmp_path, user={"tokenFile": "token"}), None)
    assert found is not None and found.authorization == "Bearer from-file"
    found = read_static(kubeconfig(tmp_path, user={"token": "", "tokenFile": "token"}), None)
    assert found is not None and found.authorization is None  # `token` present: no file
    found = read_static(kubeconfig(tmp_path, user={"username": "a", "password": "b"}), None)
    assert found is not None and found.authorization == "Basic YTpi"


def test_the_named_context_and_the_cluster_options(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path,
        cluster={
            "server": "https://10.0.0.1",
            "insecure-skip-tls-verify": True,
            "tls-server-name": "api.internal",
        },
    )
    found = read_static(path, None)
    assert found == StaticCredentials(
        host="https://10.0.0.1", verify=False, server_name="api.internal"
    )
    second = read_static(path, "second")
    assert second == StaticCredentials(host="https://10.0.0.2", authorization="Bearer other")


def test_plain_http_server_takes_no_certificates(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path,
        cluster={"server": "http://127.0.0.1:8080", "certificate-authority": "missing.crt"},
        user={"client-certificate": "missing.crt"},
    )
    assert read_static(path, None) == StaticCredentials(host="http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("cluster", "user"),
    [
        (None, {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}),
        (None, {"auth-provider": {"name": "oidc", "config": {}}}),
        (None, {"token": "abc", "as": "someone"}),
        ({"server": "https://10.0.0.1", "proxy-url": "http://proxy:3128"}, None),
        ({"certificate-authority": "ca.crt"}, None),  # no server
        ({"server": "https://10.0.0.1", "certificate-authority": "missing.crt"}, None),
        (None, {"tokenFile": "missing-token"}),
        (None, {"client-key-data": "not base64!"}),
    ],
)
def test_what_it_does_not_fully_understand_is_left_to_the_sdk(
    tmp_path: Path, cluster: dict[str, Any] | None, user: dict[str, Any] | None
) -> None:
    assert read_static(kubeconfig(tmp_path, cluster=cluster, user=user), None) is None


def test_unreadable_or_ambiguous_kubeconfigs_are_left_to_the_sdk(tmp_path: Path) -> None:
    assert read_static(tmp_path / "absent", None) is None
    assert read_static(Path(f"{tmp_path}/a:{tmp_path}/b"), None) is None  # a KUBECONFIG list
    (tmp_path / "broken").write_text("clusters: [")
    assert read_static(tmp_path / "broken", None) is None
    path = kubeconfig(tmp_path)
    assert read_static(path, "no-such-context") is None
    twice = {"name": "main", "context": {"cluster": "other", "user": "o"}}
    assert read_static(kubeconfig(tmp_path, extra_contexts=[twice]), None) is None
