"""Kyverno v1.19 running out of cluster against a local control plane (the playground's and the
tests').

The binaries and the CRDs that match them come from ``tools/kyverno/build.sh`` (Go modules,
built once into the cache). :meth:`Kyverno.start` runs the four controllers of a Helm install
as local processes the way ``cmd/internal`` and the chart configure them:

- environment: ``KYVERNO_NAMESPACE``, ``KYVERNO_SERVICEACCOUNT_NAME``, ``KYVERNO_DEPLOYMENT``,
  ``KYVERNO_POD_NAME``, ``INIT_CONFIG`` and ``METRICS_CONFIG`` (``cmd/internal/check.go`` exits
  without them), the ConfigMaps ``kyverno`` and ``kyverno-metrics`` with the chart's defaults;
- each controller authenticates with a client certificate for its chart ServiceAccount
  (``system:serviceaccount:kyverno:kyverno-<component>``), so Kyverno recognises its own
  requests as in a cluster, and those ServiceAccounts are bound to ``cluster-admin`` in place
  of the chart's narrower roles (Kyverno checks them with SubjectAccessReviews: without the
  binding a ValidatingPolicy never becomes ready and every policy apply warns);
- the admission controller serves its webhooks on a free loopback port named in ``--serverIP``
  (webhook URLs are ``https://<serverIP><path>``), the cleanup controller likewise; Kyverno's
  own certificate controller issues the serving certificates into the ``--caSecretName`` and
  ``--tlsSecretName`` Secrets; every metrics listener gets a free loopback port, so several
  Kyvernos can run side by side.

Start-up waits until every controller holds its leader lease, the webhook configurations are
registered with a CA bundle, and a probe ClusterPolicy is reported Ready. Processes are forked
like the control plane's (own session, ``PR_SET_PDEATHSIG``, reaped at exit), log into the
work directory, and their log tails are in every start-up error.

The tests' fixtures on it are ``tests/kube/kyverno.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.playground.control_plane import (
    Assets,
    ControlPlane,
    _Child,
    _free_ports,
    _launch,
    install_reaper,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "kyverno" / "build.sh"

NAMESPACE = "kyverno"
EXCEPTION_NAMESPACE = "kyverno-exceptions"
"""Where PolicyExceptions are accepted (``--exceptionNamespace``); the bot's default."""

START_TIMEOUT = 240.0
"""Four Go processes informer-syncing on two busy cores; about 20 s is usual."""

_LOG_TAIL_LINES = 30
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)

COMPONENTS = (
    "admission-controller",
    "reports-controller",
    "background-controller",
    "cleanup-controller",
)
_BINARY = {
    "admission-controller": "kyverno",
    "reports-controller": "reports-controller",
    "background-controller": "background-controller",
    "cleanup-controller": "cleanup-controller",
}
_LEASE = {
    "admission-controller": "kyverno",
    "reports-controller": "kyverno-reports-controller",
    "background-controller": "kyverno-background-controller",
    "cleanup-controller": "kyverno-cleanup-controller",
}
WEBHOOK_CONFIGURATIONS = (
    "kyverno-policy-validating-webhook-cfg",
    "kyverno-exception-validating-webhook-cfg",
    "kyverno-cleanup-validating-webhook-cfg",
)
"""ValidatingWebhookConfigurations Kyverno registers at start; the resource webhooks
(``kyverno-resource-validating-webhook-cfg``) appear only once a policy needs them."""

_RESOURCE_FILTERS = (
    "[Event,*,*]",
    "[*/*,kube-system,*]",
    "[*/*,kube-public,*]",
    "[*/*,kube-node-lease,*]",
    "[Node,*,*]",
    "[Node/?*,*,*]",
    "[APIService,*,*]",
    "[APIService/?*,*,*]",
    "[TokenReview,*,*]",
    "[SubjectAccessReview,*,*]",
    "[SelfSubjectAccessReview,*,*]",
    "[Binding,*,*]",
    "[Pod/binding,*,*]",
    "[ReplicaSet,*,*]",
    "[ReplicaSet/?*,*,*]",
    "[EphemeralReport,*,*]",
    "[ClusterEphemeralReport,*,*]",
)
"""``config.resourceFilters`` of the chart's values.yaml, without its own-release entries."""


def default_config(namespace: str = NAMESPACE) -> dict[str, str]:
    """The ``kyverno`` ConfigMap data a default Helm install (chart 3.7, Kyverno 1.19) writes."""
    webhooks = {
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", namespace],
                }
            ]
        }
    }
    return {
        "enableDefaultRegistryMutation": "true",
        "defaultRegistry": "docker.io",
        "generateSuccessEvents": "false",
        "excludeGroups": "system:nodes",
        "resourceFilters": "".join(_RESOURCE_FILTERS),
        "webhooks": json.dumps(webhooks, separators=(",", ":")),
    }


def default_metrics_config() -> dict[str, str]:
    """The ``kyverno-metrics`` ConfigMap data of a default Helm install."""
    return {
        "namespaces": json.dumps({"include": [], "exclude": []}),
        "bucketBoundaries": (
            "0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 25, 30"
        ),
    }


class KyvernoError(RuntimeError):
    """Kyverno could not be started, or one of its processes died."""


class KyvernoUnavailable(KyvernoError):
    """No Kyverno build (no Go, no network for the modules, or a failed build)."""


# --- assets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KyvernoAssets:
    """A ``tools/kyverno/build.sh`` output directory: the binaries and ``crds/``."""

    directory: Path

    @property
    def crd_dir(self) -> Path:
        return self.directory / "crds"

    @property
    def cli(self) -> Path:
        return self.directory / "kubectl-kyverno"

    def binary(self, component: str) -> Path:
        return self.directory / _BINARY[component]

    @classmethod
    def from_directory(cls, directory: Path) -> KyvernoAssets:
        """Check every binary and the CRDs are there; raise :class:`KyvernoUnavailable`."""
        assets = cls(directory)
        paths = [assets.binary(c) for c in COMPONENTS] + [assets.cli]
        missing = [str(p) for p in paths if not os.access(p, os.X_OK)]
        if not (assets.crd_dir / "PROVENANCE").is_file():
            missing.append(str(assets.crd_dir / "PROVENANCE"))
        if missing:
            raise KyvernoUnavailable(f"missing Kyverno build outputs: {', '.join(missing)}")
        return assets


def _run_build(*args: str) -> Path:
    """Run the build script; its last stdout line is the directory it made or found."""
    try:
        build = subprocess.run(
            ["bash", str(BUILD_SCRIPT), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise KyvernoUnavailable(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    lines = build.stdout.strip().splitlines()
    if build.returncode != 0 or not lines:
        tail = "\n".join(build.stderr.strip().splitlines()[-15:])
        raise KyvernoUnavailable(f"{BUILD_SCRIPT} {' '.join(args)} failed:\n{tail}")
    return Path(lines[-1])


def build_assets() -> KyvernoAssets:
    """The Kyverno build, made on first use (minutes on a cold Go cache; ``make kyverno``)."""
    return KyvernoAssets.from_directory(_run_build())


def crd_directory() -> Path:
    """Kyverno's and the report CRDs of the pinned Kyverno module (no binaries needed)."""
    directory = _run_build("--crds")
    if not (directory / "PROVENANCE").is_file():
        raise KyvernoUnavailable(f"{directory} holds no CRDs from {BUILD_SCRIPT}")
    return directory


# --- running Kyverno -----------------------------------------------------------------------------


def _service_account(component: str) -> str:
    return f"kyverno-{component}"


def _wait_until(
    ready: Callable[[], bool],
    deadline: float,
    what: str,
    alive: Callable[[], None],
    logs: Callable[[], str],
) -> None:
    while True:
        alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise KyvernoError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(0.25)


@dataclass
class Kyverno:
    """Kyverno's four controllers running against ``plane``; :meth:`stop` ends them."""

    plane: ControlPlane
    workdir: Path
    namespace: str
    exception_namespace: str
    webhook_port: int
    cleanup_port: int
    metrics_ports: dict[str, int]
    started_in: float = 0.0
    """Seconds from launching the processes to the probe policy's Ready."""
    _children: list[_Child] = field(default_factory=list, repr=False)
    _api: ApiClient | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        assets: KyvernoAssets,
        plane: ControlPlane,
        workdir: Path,
        *,
        exception_namespace: str = EXCEPTION_NAMESPACE,
        config: Mapping[str, str] | None = None,
        extra_args: Mapping[str, list[str]] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Kyverno:
        """Start Kyverno on ``plane`` (its CRDs must be those of ``assets.crd_dir``).

        ``config`` replaces the ``kyverno`` ConfigMap data (default: :func:`default_config`);
        ``extra_args`` adds flags per component name. A port lost to a race (a free port taken
        before a controller bound it) is retried once with fresh ports, as the plane does.
        """
        install_reaper()
        deadline = time.monotonic() + timeout
        options = (exception_namespace, config, extra_args)
        try:
            return cls._start_once(assets, plane, workdir, *options, deadline)
        except KyvernoError as exc:
            if not _PORT_IN_USE.search(str(exc)):
                raise
        return cls._start_once(assets, plane, workdir, *options, deadline + timeout / 2)

    @classmethod
    def _start_once(
        cls,
        assets: KyvernoAssets,
        plane: ControlPlane,
        workdir: Path,
        exception_namespace: str,
        config: Mapping[str, str] | None,
        extra_args: Mapping[str, list[str]] | None,
        deadline: float,
    ) -> Kyverno:
        workdir.mkdir(parents=True, exist_ok=True)
        webhook_port, cleanup_port, *metrics = _free_ports(2 + 2 * len(COMPONENTS))
        kyverno = cls(
            plane=plane,
            workdir=workdir,
            namespace=NAMESPACE,
            exception_namespace=exception_namespace,
            webhook_port=webhook_port,
            cleanup_port=cleanup_port,
            metrics_ports=dict(zip(COMPONENTS, metrics[: len(COMPONENTS)], strict=True)),
        )
        runtime_metrics = dict(zip(COMPONENTS, metrics[len(COMPONENTS) :], strict=True))
        try:
            kyverno._api = plane.api_client()
            kyverno._prepare_cluster(config)
            launched = time.monotonic()
            for component in COMPONENTS:
                args = kyverno._args(component, runtime_metrics[component])
                args += list((extra_args or {}).get(component, ()))
                kyverno._spawn(component, assets.binary(component), args)
            kyverno._wait_started(deadline)
            kyverno.started_in = time.monotonic() - launched
        except BaseException:
            kyverno.stop()
            raise
        return kyverno

    # --- set-up ----------------------------------------------------------------------------------

    def _prepare_cluster(self, config: Mapping[str, str] | None) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self._api)
        for name in (self.namespace, self.exception_namespace):
            try:
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            except ApiException as exc:
                if exc.status != 409:
                    raise
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"policy-bot-tests:{self.namespace}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": _service_account(c), "namespace": self.namespace}
                for c in COMPONENTS
            ],
        }
        for sa in map(_service_account, COMPONENTS):
            account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}
            self.request("POST", f"/api/v1/namespaces/{self.namespace}/serviceaccounts", account)
        code, answer = self.request(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding
        )
        if code not in (201, 409):
            raise KyvernoError(f"cannot bind Kyverno's ServiceAccounts: {answer}")
        for name, data in (
            ("kyverno", dict(config) if config is not None else default_config(self.namespace)),
            ("kyverno-metrics", default_metrics_config()),
        ):
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=name, namespace=self.namespace), data=data
            )
            try:
                core.create_namespaced_config_map(self.namespace, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                core.replace_namespaced_config_map(name, self.namespace, body)

    def _kubeconfig(self, component: str) -> Path:
        sa = _service_account(component)
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}")
        return self.plane.make_user_kubeconfig(
            f"system:serviceaccount:{self.namespace}:{sa}", groups=groups
        )

    def _args(self, component: str, runtime_metrics_port: int) -> list[str]:
        ns = self.namespace
        common = [
            f"--kubeconfig={self._kubeconfig(component)}",
            "--loggingFormat=text",
            "--disableLogColor",
            "--metricsHost=127.0.0.1",
            f"--metricsPort={self.metrics_ports[component]}",
            # the default ratio of the host's memory, four times over, is not a limit here
            "--autoMemLimitEnabled=false",
        ]
        svc = f"{_service_account(component)}.{ns}.svc"
        background_sa = f"system:serviceaccount:{ns}:{_service_account('background-controller')}"
        reports_sa = f"system:serviceaccount:{ns}:{_service_account('reports-controller')}"
        exceptions = ["--enablePolicyException", f"--exceptionNamespace={self.exception_namespace}"]
        if component == "admission-controller":
            return [
                *common,
                f"--serverIP=127.0.0.1:{self.webhook_port}",
                "--webhookServerHost=127.0.0.1",
                f"--webhookServerPort={self.webhook_port}",
                f"--caSecretName={svc}.kyverno-tls-ca",
                f"--tlsSecretName={svc}.kyverno-tls-pair",
                f"--backgroundServiceAccountName={background_sa}",
                f"--reportsServiceAccountName={reports_sa}",
                f"--controllerRuntimeMetricsAddress=127.0.0.1:{runtime_metrics_port}",
                *exceptions,
            ]
        if component == "cleanup-controller":
            return [
                *common,
                f"--serverIP=127.0.0.1:{self.cleanup_port}",
                "--cleanupServerHost=127.0.0.1",
                f"--cleanupServerPort={self.cleanup_port}",
                f"--caSecretName={svc}.kyverno-tls-ca",
                f"--tlsSecretName={svc}.kyverno-tls-pair",
            ]
        if component == "background-controller":
            return [
                *common,
                f"--controllerRuntimeMetricsAddress=127.0.0.1:{runtime_metrics_port}",
                *exceptions,
            ]
        return [*common, *exceptions]  # reports-controller

    def _spawn(self, component: str, binary: Path, args: list[str]) -> None:
        sa = _service_account(component)
        env = {
            **os.environ,
            "KYVERNO_NAMESPACE": self.namespace,
            "KYVERNO_SERVICEACCOUNT_NAME": sa,
            "KYVERNO_ROLE_NAME": f"kyverno:{component}",
            "KYVERNO_DEPLOYMENT": sa,
            "KYVERNO_POD_NAME": f"{sa}-{secrets.token_hex(4)}",
            "KYVERNO_SVC": sa,
            "INIT_CONFIG": "kyverno",
            "METRICS_CONFIG": "kyverno-metrics",
        }
        log = self.workdir / f"{component}.log"
        (self.workdir / f"{component}.args").write_text("\n".join([str(binary), *args]) + "\n")
        self._children.append(_Child(component, _launch([str(binary), *args], log, env=env), log))

    # --- readiness -------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One API call as admin: the HTTP status and the parsed answer (object or Status)."""
        assert self._api is not None, "Kyverno is stopped"
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        _, url, headers, payload, _ = self._api.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body
        )
        response = self._api.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=30
        )
        data: bytes = response.read()  # type: ignore[no-untyped-call]
        return response.status, json.loads(data) if data else {}

    def get(self, path: str) -> dict[str, Any]:
        """GET an API path as admin, parsed (``/apis/kyverno.io/v1/clusterpolicies/NAME``)."""
        status, answer = self.request("GET", path)
        if status >= 400:
            raise KyvernoError(f"GET {path}: {status} {answer.get('message', answer)}")
        return answer

    def _wait_started(self, deadline: float) -> None:
        def leases_held() -> bool:
            leases = self.get(f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases")
            held = {
                lease["metadata"]["name"]
                for lease in leases.get("items") or []
                if (lease.get("spec") or {}).get("holderIdentity")
            }
            return set(_LEASE.values()) <= held

        registered: set[str] = set()

        def webhooks_registered() -> bool:
            configs = self.get(
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
            )
            registered.clear()
            registered.update(
                c["metadata"]["name"]
                for c in configs.get("items") or []
                if c.get("webhooks")
                and all(w["clientConfig"].get("caBundle") for w in c["webhooks"])
            )
            return set(WEBHOOK_CONFIGURATIONS) <= registered

        def servers_ready() -> bool:
            return all(_https_ok(port) for port in (self.webhook_port, self.cleanup_port))

        alive, logs = self.check_alive, self.log_tails
        _wait_until(leases_held, deadline, "every Kyverno leader lease", alive, logs)
        _wait_until(
            webhooks_registered,
            deadline,
            f"Kyverno's webhook configurations {WEBHOOK_CONFIGURATIONS}",
            alive,
            lambda: f"registered with a CA bundle: {sorted(registered)}\n{logs()}",
        )
        _wait_until(servers_ready, deadline, "Kyverno's webhook servers", alive, logs)
        probe = f"policy-bot-probe-{secrets.token_hex(3)}"
        self.apply(_probe_policy(probe))
        try:
            self.wait_policy_ready(probe, timeout=max(deadline - time.monotonic(), 1.0))
        finally:
            self.delete_policy(probe)

    def policy(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """A ``kyverno.io/v1`` ClusterPolicy (or Policy in ``namespace``) as stored."""
        if namespace is None:
            return self.get(f"/apis/kyverno.io/v1/clusterpolicies/{name}")
        return self.get(f"/apis/kyverno.io/v1/namespaces/{namespace}/policies/{name}")

    def wait_policy_ready(
        self, name: str, namespace: str | None = None, *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until Kyverno reports the policy ``Ready`` (condition status True); return it."""
        seen: dict[str, Any] = {}

        def ready() -> bool:
            nonlocal seen
            seen = self.policy(name, namespace)
            conditions = (seen.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

        def logs() -> str:
            return f"last status: {seen.get('status')}\n{self.log_tails()}"

        _wait_until(
            ready, time.monotonic() + timeout, f"policy {name} Ready", self.check_alive, logs
        )
        return seen

    # --- helpers for tests -----------------------------------------------------------------------

    def api_client(self) -> ApiClient:
        """A new admin ApiClient for the plane Kyverno runs on; close it when done."""
        return self.plane.api_client()

    def apply(self, obj: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        """``kubectl apply --server-side`` of one object as admin; raises on refusal."""
        return self.plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(obj)
        )

    def delete_policy(self, name: str, namespace: str | None = None) -> None:
        """Delete a ``kyverno.io/v1`` ClusterPolicy / Policy; missing is fine."""
        kind = "clusterpolicies.kyverno.io" if namespace is None else "policies.kyverno.io"
        ns = [] if namespace is None else ["-n", namespace]
        self.plane.kubectl("delete", kind, name, *ns, "--ignore-not-found", "--wait=false")

    @contextlib.contextmanager
    def namespace_for(self, test_name: str) -> Iterator[str]:
        """A fresh namespace (deleted afterwards; it stays Terminating, as no controller runs)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
        name = f"t-{slug}-{secrets.token_hex(3)}"
        core = client.CoreV1Api(self._api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        try:
            yield name
        finally:
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)

    def metrics_url(self, component: str = "admission-controller") -> str:
        """The Prometheus endpoint of one controller."""
        return f"http://127.0.0.1:{self.metrics_ports[component]}/metrics"

    def log(self, component: str = "admission-controller") -> Path:
        return self.workdir / f"{component}.log"

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {c.log} (last {_LOG_TAIL_LINES} lines):\n"
            + "\n".join(c.tail().splitlines()[-_LOG_TAIL_LINES:])
            for c in self._children
        )

    def check_alive(self) -> None:
        """Raise with every log tail when one of the controllers has exited."""
        for child in self._children:
            code = child.popen.poll()
            if code is not None:
                raise KyvernoError(
                    f"Kyverno {child.name} exited with code {code}\n{self.log_tails()}"
                )

    def stop(self, *, remove_webhooks: bool = True) -> None:
        """Stop the controllers (SIGTERM, then SIGKILL after STOP_TIMEOUT).

        With ``remove_webhooks`` the webhook configurations Kyverno registered are deleted too,
        so a plane that keeps running does not call a server that is gone.
        """
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._api is not None:
            if remove_webhooks:
                self._remove_webhooks()
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None

    def _remove_webhooks(self) -> None:
        """Best effort: the plane may be gone already (a failed start, a session teardown)."""
        selector = "labelSelector=webhook.kyverno.io%2Fmanaged-by%3Dkyverno"
        for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            path = f"/apis/admissionregistration.k8s.io/v1/{kind}?{selector}"
            with contextlib.suppress(Exception):
                self.request("DELETE", path)


def _https_ok(port: int) -> bool:
    """Kyverno's readiness probe answers 200 once its serving certificate is loaded."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a probe only; the API server verifies the real calls
    try:
        url = f"https://127.0.0.1:{port}/health/readiness"
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _probe_policy(name: str) -> dict[str, Any]:
    """An Audit ClusterPolicy on a kind nothing in the tests creates: Ready means Kyverno
    compiled it and configured its webhooks."""
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "background": False,
            "rules": [
                {
                    "name": "probe",
                    "match": {"any": [{"resources": {"kinds": ["ConfigMap"], "names": [name]}}]},
                    "validate": {
                        "failureAction": "Audit",
                        "message": "probe",
                        "pattern": {"metadata": {"name": "?*"}},
                    },
                }
            ],
        },
    }


@contextlib.contextmanager
def on_a_plane_of_its_own(
    kyverno_assets: KyvernoAssets, kube_assets: Assets, base: Path, *, remove_webhooks: bool = True
) -> Iterator[Kyverno]:
    """Kyverno on a fresh control plane in `base`; both stopped on exit."""
    plane = ControlPlane.start(kube_assets, base / "plane", crd_dir=kyverno_assets.crd_dir)
    try:
        running = Kyverno.start(kyverno_assets, plane, base / "kyverno")
        try:
            yield running
        finally:
            running.stop(remove_webhooks=remove_webhooks)
    finally:
        plane.stop()
