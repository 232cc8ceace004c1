"""A kubeconfig's static credentials, read without the kubernetes SDK.

Importing the SDK costs a fresh process about 60 ms (its package loads its config loader with
OAuth and requests, its websocket, dynamic and watch clients): a third of what
`python -m bot backup` spends on imports. Most kubeconfigs name a server, its CA and a client
certificate or a token, which need none of that: those are read here, with the SDK's meanings
(a `*-data` key wins over its file key, even when empty; relative files are relative to the
kubeconfig's folder; a token file is read once; `insecure-skip-tls-verify` and
`tls-server-name` apply; certificates only for an https server).

Everything else is the SDK's (`None` from `read_static`): exec plugins and auth providers (their
tokens expire and refresh), proxies, a `KUBECONFIG`-style list of files, in-cluster
credentials, and any kubeconfig this reader does not fully understand, so that a broken one is
reported in the SDK's words.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

USER_KEYS = frozenset(
    {
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "token",
        "tokenFile",
        "username",
        "password",
        "extensions",
    }
)
"""The user entries read here; a user with any other (`exec`, `auth-provider`, `as`, …) is
the SDK's."""

CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "extensions",
    }
)
"""The cluster entries read here; a cluster with any other (`proxy-url`, …) is the SDK's."""


@dataclass(frozen=True)
class PemSource:
    """A certificate or key, as a file or as its PEM bytes (decoded from a `*-data` key)."""

    file: str | None = None
    data: bytes | None = None

    @property
    def given(self) -> bool:
        return bool(self.file or self.data)


@dataclass(frozen=True)
class StaticCredentials:
    """Where the API server is and how to prove who we are: nothing that expires."""

    host: str
    verify: bool = True
    ca: PemSource = PemSource()
    client_cert: PemSource = PemSource()
    client_key: PemSource = PemSource()
    server_name: str | None = None
    authorization: str | None = None
    """The `Authorization` header's value (`Bearer …` or `Basic …`), if any."""


def read_static(path: Path, context: str | None) -> StaticCredentials | None:
    """The credentials of `context` (default: the current one) in the kubeconfig at `path`,
    or None when they are not static or the file is not plainly readable: ask the SDK."""
    if os.pathsep in str(path):  # the SDK merges a list of files
        return None
    file = path.expanduser()
    try:
        with file.open(encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        return _static(config, file.parent.absolute(), context)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, binascii.Error):
        return None


def _static(config: Any, base: Path, context: str | None) -> StaticCredentials | None:
    if not isinstance(config, Mapping):
        return None
    name = context if context is not None else config.get("current-context")
    chosen = _named(config.get("contexts"), name, "context")
    if chosen is None:
        return None
    cluster = _named(config.get("clusters"), chosen["cluster"], "cluster")
    user: Mapping[str, Any] | None = {}
    if chosen.get("user") and config.get("users"):
        user = _named(config["users"], chosen["user"], "user")
    if not isinstance(cluster, Mapping) or not isinstance(user, Mapping):
        return None
    if set(cluster) - CLUSTER_KEYS or set(user) - USER_KEYS or "server" not in cluster:
        return None
    host = str(cluster["server"]).rstrip("/")
    tls = host.startswith("https")
    return StaticCredentials(
        host=host,
        verify=not cluster["insecure-skip-tls-verify"]
        if "insecure-skip-tls-verify" in cluster
        else True,
        ca=_pem(cluster, "certificate-authority", base) if tls else PemSource(),
        client_cert=_pem(user, "client-certificate", base) if tls else PemSource(),
        client_key=_pem(user, "client-key", base) if tls else PemSource(),
        server_name=cluster.get("tls-server-name"),
        authorization=_authorization(user, base),
    )


def _named(entries: Any, name: Any, kind: str) -> Mapping[str, Any] | None:
    """The `kind` body of the one entry called `name` in a kubeconfig list (None: absent,
    or ambiguous, which the SDK reports)."""
    if not isinstance(entries, list) or name is None:
        return None
    found = [e for e in entries if isinstance(e, Mapping) and e.get("name") == name]
    if len(found) != 1:
        return None
    body = found[0].get(kind)
    return body if isinstance(body, Mapping) else None


def _pem(section: Mapping[str, Any], key: str, base: Path) -> PemSource:
    data_key = f"{key}-data"
    if data_key in section:
        data = section[data_key]
        return PemSource(data=base64.standard_b64decode(data) if data else None)
    if key in section:
        file = _beside(base, section[key])
        if not file.is_file():
            raise ValueError(f"file does not exist: {file}")  # the SDK says so
        return PemSource(file=str(file))
    return PemSource()


def _authorization(user: Mapping[str, Any], base: Path) -> str | None:
    if "token" in user:
        token = user["token"]
    elif "tokenFile" in user:
        token = _beside(base, user["tokenFile"]).read_text()
    else:
        token = None
    if token:
        return f"Bearer {token}"
    if "username" in user and "password" in user:
        pair = user["username"] + ":" + user["password"]
        return urllib3.util.make_headers(basic_auth=pair)["authorization"]
    return None


def _beside(base: Path, name: str) -> Path:
    """A file named in the kubeconfig: relative to its folder, `..` resolved by name (as the
    SDK does, `os.path.normpath`)."""
    return Path(os.path.normpath(base / name))
