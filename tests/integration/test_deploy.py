"""The Helm chart: lint, render, apply to a real kube-apiserver, boot the bot from its config.

helm is built from its Go module (tools/helmbin/build.sh). Rendered manifests are checked for
what the deployment promises (non-root uid 10001, read-only root filesystem, probes on
/healthz and /readyz, secrets only by reference, SQLite on a PersistentVolumeClaim, PostgreSQL
from a Secret, no several replicas on SQLite) and then applied with `kubectl apply
--server-side` to a real API server, which validates every field against its schema. No
controller runs there, so the Deployments get no Pods; the bot itself is started from the
chart's config file as `python -m bot`, with the root filesystem read-only as in the pod.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.playground import seed
from bot.playground.child import free_port
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.settings import parse_settings
from tests.deploy.helm import REPO_ROOT, Helm, RenderError, documents, only
from tests.deploy.process import BotProcess, read_only_root
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET
from tests.kube.fixtures import ControlPlaneFactory
from tests.servers.prometheus import require_promtool

pytestmark = pytest.mark.kube

DATA = Path(__file__).parents[1] / "data" / "deploy"
STANDALONE = REPO_ROOT / "deploy" / "rbac" / "managed-cluster.yaml"
SECRET_NAMES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ALERTMANAGER_WEBHOOK_TOKEN",
    "JIRA_USER",
    "JIRA_API_TOKEN",
    "JIRA_TOKEN",
)
FAKE_SECRETS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}
PG_URL = "postgresql://policy_bot:pw@postgres.example:5432/policy_bot"
POSTGRES_TWO: dict[str, Any] = {
    "replicaCount": 2,
    "store": {"type": "postgresql", "postgresql": {"existingSecret": "policy-bot-db"}},
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"hosts": ["bot.example.com"]}]},
    "kubeconfig": {"existingSecret": "policy-bot-kubeconfigs"},
}
MONITORING: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True, "environment": "production"},
}
KYVERNO_MONITORING: dict[str, Any] = {
    "prometheusRule": {"enabled": True, "source": "kyverno", "environment": "production"},
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.build(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def plane(kube_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("deploy-plane"))
    try:
        (started,) = factory.start(1)
        with started.api_client() as api:
            seed.apply_objects(
                api,
                [
                    seed.namespace(n)
                    for n in ("kyverno", "kyverno-exceptions", "policy-reporter", "pb-sqlite")
                ],
            )
            seed.apply_objects(api, [seed.namespace("pb-pg"), seed.legacy_cluster_policy("a")])
        yield started
    finally:
        factory.stop_all()


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    (found,) = pod["containers"]
    result: dict[str, Any] = found
    return result


def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])
    return loaded


def env_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(objects)["env"]}


def test_chart_lints_clean(helm: Helm) -> None:
    for name, values in (
        ("default", None),
        ("postgres", POSTGRES_TWO),
        ("monitoring", MONITORING),
        ("monitoring-kyverno", KYVERNO_MONITORING),
        ("standalone", yaml.safe_load((REPO_ROOT / "deploy/rbac/values.yaml").read_text())),
    ):
        output = helm.lint(values, name=name)
        assert "1 chart(s) linted, 0 chart(s) failed" in output, output
        assert "[WARNING]" not in output and "[ERROR]" not in output, output


def test_sqlite_single_replica_renders_a_hardened_pod(helm: Helm) -> None:
    objects = documents(helm.template())
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment"]
        + ["ClusterRole", "ClusterRoleBinding"]
        + ["Role", "RoleBinding"] * 3
    )
    assert "Secret" not in kinds, "secrets are referenced, never rendered"
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = container(objects)
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 10001 and security["runAsNonRoot"] is True
    assert main["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}

    # Writable: the data volume (the PVC) and /tmp; the config file is mounted read-only.
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert set(mounts) == {"/etc/policy-bot/config.yaml", "/var/lib/policy-bot", "/tmp"}
    assert mounts["/etc/policy-bot/config.yaml"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = only(objects, "PersistentVolumeClaim")
    assert volumes[mounts["/var/lib/policy-bot"]["name"]] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]

    # Secrets (SPEC 3.2) come from the existing Secret, never as values.
    env = env_of(objects)
    assert env["POLICY_BOT_CONFIG"]["value"] == "/etc/policy-bot/config.yaml"
    assert env["PYTHONDONTWRITEBYTECODE"]["value"] == "1"
    for name in SECRET_NAMES:
        assert set(env[name]) == {"name", "valueFrom"}, name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "policy-bot"
    assert env["SLACK_BOT_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional") is None
    assert "POLICY_BOT_STORE_URL" not in env

    # The config file is one the bot accepts, with the store on the volume.
    settings = parse_settings(config_of(objects), FAKE_SECRETS)
    assert settings.store.url == "sqlite:////var/lib/policy-bot/state.db"
    assert settings.server.port == 3000
    assert [e.name for e in settings.environments] == ["production"]
    assert pod["automountServiceAccountToken"] is True  # production is in_cluster
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_image_and_chart_agree_on_user_and_writable_paths(helm: Helm) -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "\nUSER 10001:10001\n" in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final and "HOME=/var/lib/policy-bot" in final
    assert "useradd --system --uid 10001" in final
    objects = documents(helm.template())
    security = container(objects)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (10001, 10001)
    env = env_of(objects)
    assert env["HOME"]["value"] == "/var/lib/policy-bot" and env["TMPDIR"]["value"] == "/tmp"


def test_postgresql_two_replicas_read_the_url_from_a_secret(helm: Helm) -> None:
    objects = documents(helm.template(POSTGRES_TWO))
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    env = env_of(objects)
    assert env["POLICY_BOT_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "policy-bot-db",
        "key": "store-url",
    }
    config = config_of(objects)
    assert "store" not in config
    settings = parse_settings(config, {**FAKE_SECRETS, "POLICY_BOT_STORE_URL": PG_URL})
    assert settings.store.url == PG_URL
    budget = only(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    # Kubeconfigs for other clusters: a read-only Secret volume.
    mounts = {m["mountPath"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["/etc/policy-bot/kubeconfig"]["readOnly"] is True
    # Only Slack's path is published.
    ingress = only(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/slack/events"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"replicaCount": 2},
            "replicaCount is 2 but store.type is sqlite: SQLite is a file on one volume and "
            "cannot be shared by several replicas. Set store.type=postgresql",
        ),
        ({"store": {"type": "mysql"}}, 'store.type must be sqlite or postgresql, not "mysql"'),
        ({"config": {"store": {"url": PG_URL}}}, "config.store is managed by the chart"),
        ({"secrets": {"existingSecret": ""}}, "secrets.existingSecret must name the Secret"),
        (
            {"prometheusRule": {"enabled": True, "source": "prometheus"}},
            'prometheusRule.source must be policy-reporter or kyverno, not "prometheus"',
        ),
    ],
)
def test_bad_values_fail_rendering_with_what_to_do(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(RenderError) as refused:
        helm.template(values)
    assert message in refused.value.message


def test_monitoring_renders_the_violation_alert(helm: Helm) -> None:
    objects = documents(helm.template(MONITORING))
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    rules = only(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    (expected,) = yaml.safe_load((DATA / "kyverno-policy-violation-rule.yaml").read_text())
    expected["labels"]["environment"] = "production"
    assert rules == [expected]


def test_kyverno_source_renders_the_rule_on_kyvernos_own_metrics(helm: Helm) -> None:
    objects = documents(helm.template(KYVERNO_MONITORING))
    rules = only(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    (expected,) = yaml.safe_load((DATA / "kyverno-metrics-violation-rule.yaml").read_text())
    expected["labels"]["environment"] = "production"
    assert rules == [expected]
    expr = rules[0]["expr"]
    assert "kyverno_policy_results_total" in expr and "policy_report_result" not in expr
    # The default stays Policy Reporter's rule.
    default = only(documents(helm.template(MONITORING)), "PrometheusRule")
    assert "policy_report_result" in default["spec"]["groups"][0]["rules"][0]["expr"]


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("values", "unit_test"),
    [(MONITORING, None), (KYVERNO_MONITORING, "kyverno-metrics-rule-test.yaml")],
    ids=["policy-reporter", "kyverno"],
)
def test_prometheus_accepts_the_rendered_rules(
    helm: Helm, values: dict[str, Any], unit_test: str | None, tmp_path: Path
) -> None:
    promtool = require_promtool()
    rule = only(documents(helm.template(values)), "PrometheusRule")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    check = subprocess.run(
        [str(promtool), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    if unit_test is not None:
        # When it fires and resolves, evaluated by Prometheus' engine on series with the
        # labels Kyverno really exports (the test file reads rules.yml beside it).
        shutil.copy(DATA / unit_test, tmp_path / unit_test)
        run = subprocess.run(
            [str(promtool), "test", "rules", str(tmp_path / unit_test)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_standalone_rbac_manifest_is_the_charts_rendering(helm: Helm) -> None:
    rendered = helm.template(
        files=[REPO_ROOT / "deploy" / "rbac" / "values.yaml"],
        show_only=["templates/managed-cluster-rbac.yaml"],
    )
    shipped = STANDALONE.read_text()
    assert shipped.endswith(rendered), "run deploy/rbac/generate.sh"
    objects = documents(shipped)
    chart_rules = only(documents(helm.template()), "ClusterRole")["rules"]
    assert only(objects, "ClusterRole")["rules"] == chart_rules
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"} == {
        "kyverno",
        "kyverno-exceptions",
        "policy-reporter",
    }


def test_rendered_charts_apply_to_a_real_control_plane(helm: Helm, plane: ControlPlane) -> None:
    for namespace, release, values in (
        ("pb-sqlite", "policy-bot-a", None),
        ("pb-pg", "policy-bot-b", POSTGRES_TWO),
    ):
        text = helm.template(values, release=release, namespace=namespace)
        objects = documents(text)
        applied = plane.kubectl("apply", "--server-side", "-f", "-", input=text).stdout
        assert applied.count("serverside-applied") == len(objects), applied
        stored = json.loads(
            plane.kubectl("get", "deployment", "-n", namespace, release, "-o", "json").stdout
        )
        assert stored["spec"]["replicas"] == (1 if values is None else 2)
        rendered_pod = only(objects, "Deployment")["spec"]["template"]["spec"]
        stored_pod = stored["spec"]["template"]["spec"]
        assert stored_pod["securityContext"] == rendered_pod["securityContext"]
        (stored_container,) = stored_pod["containers"]
        assert stored_container["securityContext"] == container(objects)["securityContext"]
        assert stored_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    names = plane.kubectl("get", "clusterroles", "-o", "name").stdout.split()
    assert {
        "clusterrole.rbac.authorization.k8s.io/policy-bot-a-managed-cluster",
        "clusterrole.rbac.authorization.k8s.io/policy-bot-b-managed-cluster",
    } <= set(names)


def test_helm_install_against_the_control_plane_prints_the_receiver(
    helm: Helm, plane: ControlPlane
) -> None:
    result = helm.run(
        "install",
        "pb-notes",
        str(REPO_ROOT / "deploy" / "chart" / "policy-bot"),
        "--namespace",
        "pb-pg",
        "--dry-run=server",
        kubeconfig=plane.kubeconfig,
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "url: http://pb-notes-policy-bot.pb-pg.svc:3000/alertmanager" in notes
    assert "credentials_file:" in notes and "type: Bearer" in notes


async def test_bot_boots_from_the_charts_config_with_a_read_only_root(
    helm: Helm, plane: ControlPlane, slack_emulator: SlackEmulator, tmp_path: Path
) -> None:
    prefix = read_only_root()
    if prefix is None:
        pytest.skip("mount namespaces are not permitted here (needs root): cannot make / read-only")
    data = tmp_path / "data"  # plays /var/lib/policy-bot; /tmp stays writable as in the pod
    port = free_port()
    objects = documents(
        helm.template(
            {
                "containerPort": port,
                "config": {
                    "slack": {"mode": "http", "channels": {"reports": "C0REPORTS"}},
                    "environments": [{"name": "dev", "kubeconfig": str(plane.kubeconfig)}],
                    "backup": {"targets": [{"type": "dir", "path": str(data / "backups")}]},
                },
                "store": {"sqlite": {"path": str(data / "state.db")}},
            }
        )
    )
    data.mkdir()
    config = data / "config.yaml"
    config.write_text(only(objects, "ConfigMap")["data"]["config.yaml"])
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_emulator.base_url,
        "HOME": str(data),
    }
    bot = BotProcess.start(
        "ro-root", config=config, port=port, env=env, workdir=data, prefix=prefix
    )
    try:
        await bot.wait_until_ready("/readyz")
        client = SignedSlackClient(bot.url, SIGNING_SECRET, slack_emulator)
        try:
            answer = await client.command("/policy", "backup dev", user="U0ADMIN", channel="C0X")
            assert answer.status == 200
            await slack_emulator.wait_until(
                lambda: any((data / "backups").glob("*/MANIFEST")), timeout=30
            )
        finally:
            await client.close()
        assert await bot.terminate() == 0
    finally:
        bot.kill()
    log = bot.log.read_text()
    assert "Read-only file system" not in log, log
    assert (data / "state.db").is_file()
