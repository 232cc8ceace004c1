"""How the gateway's requests reach an API server.

A kubeconfig with static credentials (`bot.kube.kubeconfig`) is served by urllib3 directly:
one SSL context made once, the same pool, timeouts and no retries as the SDK's client would
use, and no import of the SDK. Every other way of reaching a cluster (exec plugins, auth
providers, proxies, in-cluster credentials, `KUBECONFIG` lists) goes through the `kubernetes`
SDK's own client, imported only then. Both answer with urllib3's response, unread.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import urllib3
from urllib3.util.ssl_ import create_urllib3_context

from bot import __version__
from bot.errors import ClusterUnavailable
from bot.kube.kubeconfig import PemSource, StaticCredentials, read_static
from bot.objects import Obj
from bot.settings import Environment

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

USER_AGENT = f"policy-bot/{__version__}"


class Transport(Protocol):
    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        *,
        headers: dict[str, str],
        body: Obj | None,
        timeout: tuple[float, float],
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; `stream`: the body is left unread (a watch), else it is read."""
        ...

    def close(self) -> None: ...


def open_transport(env: Environment, *, pool_size: int) -> Transport:
    """A transport to `env`'s API server; ClusterUnavailable when its kubeconfig cannot be
    loaded (the message says why)."""
    if not env.in_cluster and env.kubeconfig is not None:
        credentials = read_static(env.kubeconfig, env.context)
        if credentials is not None:
            try:
                return DirectTransport(credentials, pool_size=pool_size)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ClusterUnavailable(env.name, f"cannot load its kubeconfig: {exc}") from None
    return SdkTransport.load(env, pool_size=pool_size)


class DirectTransport:
    """urllib3 with a kubeconfig's static credentials."""

    def __init__(self, credentials: StaticCredentials, *, pool_size: int) -> None:
        self._host = credentials.host
        self._headers = {"User-Agent": USER_AGENT}
        if credentials.authorization:
            self._headers["authorization"] = credentials.authorization
        cert_reqs = ssl.CERT_REQUIRED if credentials.verify else ssl.CERT_NONE
        options: dict[str, Any] = {"cert_reqs": cert_reqs}
        if credentials.host.startswith("https"):
            options["ssl_context"] = ssl_context(credentials, cert_reqs)
        if credentials.server_name:
            options["server_hostname"] = credentials.server_name
        self._pool = urllib3.PoolManager(maxsize=pool_size, retries=0, **options)

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        *,
        headers: dict[str, str],
        body: Obj | None,
        timeout: tuple[float, float],
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        url = self._host + path
        if query:  # quoted as the SDK quotes them
            url += "?" + "&".join(f"{k}={quote(v)}" for k, v in query)
        return self._pool.request(
            method,
            url,
            body=None if body is None else json.dumps(body),
            headers={**self._headers, **headers},
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=not stream,
        )

    def close(self) -> None:
        self._pool.clear()


def ssl_context(credentials: StaticCredentials, cert_reqs: ssl.VerifyMode) -> ssl.SSLContext:
    """The context every connection to the server shares: its CA (the system's when the
    kubeconfig names none) and the client certificate, loaded once."""
    context = create_urllib3_context(cert_reqs=cert_reqs)
    if credentials.ca.file:
        context.load_verify_locations(cafile=credentials.ca.file)
    elif credentials.ca.data:
        context.load_verify_locations(cadata=credentials.ca.data.decode())
    else:
        context.load_default_certs()
    if credentials.client_cert.given:
        with _as_file(credentials.client_cert) as cert, _as_file(credentials.client_key) as key:
            if cert is not None:
                context.load_cert_chain(cert, key)
    return context


@contextmanager
def _as_file(source: PemSource) -> Iterator[str | None]:
    """`source` as a file for `load_cert_chain`, which reads only files; PEM bytes live in a
    private temporary file only while they are loaded."""
    if source.data is None:
        yield source.file
        return
    with tempfile.TemporaryDirectory(prefix="policy-bot-") as folder:
        path = Path(folder) / "pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(source.data)
        yield str(path)


class SdkTransport:
    """The `kubernetes` SDK's client, for credentials `bot.kube.kubeconfig` leaves to it."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    @classmethod
    def load(cls, env: Environment, *, pool_size: int) -> SdkTransport:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        configuration = k8s.Configuration()
        try:
            if env.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(env.kubeconfig) if env.kubeconfig else None,
                    context=env.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError) as exc:
            raise ClusterUnavailable(env.name, f"cannot load its kubeconfig: {exc}") from None
        configuration.retries = 0
        configuration.connection_pool_maxsize = pool_size
        return cls(k8s.ApiClient(configuration))

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        *,
        headers: dict[str, str],
        body: Obj | None,
        timeout: tuple[float, float],
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        # The client JSON-encodes dict bodies itself, but only for JSON content types; an
        # apply patch (YAML content type) must arrive already encoded.
        payload: Obj | str | None = body
        if body is not None and "json" not in headers.get("Content-Type", "json"):
            payload = json.dumps(body)
        _, url, sent, payload, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=payload,
            auth_settings=["BearerToken"],
        )
        answer = self._api.call_api(
            method, url, header_params=sent, body=payload, _request_timeout=timeout
        )
        response: urllib3.BaseHTTPResponse = answer.response
        return response

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
