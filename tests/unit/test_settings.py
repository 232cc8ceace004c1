"""Settings are validated at start, and every problem names its key path."""

from pathlib import Path

import pytest
import yaml

from bot.settings import SettingsError, load_settings, parse_settings

ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}
MINIMAL = {"slack": {"mode": "http"}, "environments": [{"name": "dev"}]}


def problems(document, env=ENV):
    with pytest.raises(SettingsError) as info:
        parse_settings(document, env)
    return info.value.problems


def test_minimal_config_gets_the_documented_defaults():
    settings = parse_settings(MINIMAL, ENV)
    assert settings.server.port == 3000
    assert settings.store.url == "sqlite:////var/lib/policy-bot/state.db"
    assert settings.store.notice_retention_days == 30
    assert settings.exceptions.max_days == 90
    assert settings.exceptions.remind_days_before == (7, 1)
    assert settings.slack.bot_token.get_secret_value() == "xoxb-1"
    assert settings.slack.api_url == "https://slack.com/api/"


def test_spec_example_parses(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(
        """
server: {port: 3000}
store: {url: "sqlite:////var/lib/policy-bot/state.db"}
slack:
  mode: socket
  channels: {alerts: C0ALERTS, approvals: C0APPROVALS, reports: C0REPORTS}
  roles:
    approvers: {users: [U0APPROVER1], usergroups: [S0SECURITY]}
    promoters: {users: [U0OWNER1]}
    admins:    {users: [U0ADMIN1]}
environments:
  - {name: dev, kubeconfig: /path/to/kubeconfig, context: dev}
  - {name: production, context: prod}
exceptions: {namespace: kyverno-exceptions, default_days: 30, max_days: 90, remind_days_before: [7, 1]}
jira: {url: "https://jira.example.com", project: SEC, issue_type: Task}
alertmanager:
  url: "http://alertmanager:9093"
  routes: [{match: {severity: critical}, channel: C0CRITICAL}]
backup:
  cron: "0 2 * * *"
  helm_releases: [{name: kyverno, namespace: kyverno}]
  targets: [{type: dir, path: /var/lib/policy-bot/backups}]
promotion: {}
"""
    )
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "JIRA_TOKEN": "pat"}
    settings = load_settings(config, env)
    assert [e.name for e in settings.environments] == ["dev", "production"]
    assert settings.slack.roles.approvers.usergroups == ("S0SECURITY",)
    assert settings.alertmanager.routes[0].targets == ("C0CRITICAL",)
    assert settings.jira is not None and settings.jira.project == "SEC"


def test_missing_signing_secret_fails_at_start_in_http_mode():
    found = problems(MINIMAL, {"SLACK_BOT_TOKEN": "xoxb-1"})
    assert found == ["slack: SLACK_SIGNING_SECRET must be set when slack.mode is http"]


def test_missing_bot_token_is_named():
    found = problems(MINIMAL, {"SLACK_SIGNING_SECRET": "s"})
    assert "slack.bot_token: SLACK_BOT_TOKEN (xoxb-...) must be set" in found


def test_socket_mode_needs_the_app_token():
    found = problems({**MINIMAL, "slack": {"mode": "socket"}})
    assert found == ["slack: SLACK_APP_TOKEN (xapp-...) must be set when slack.mode is socket"]


def test_secrets_in_the_file_are_refused():
    found = problems({**MINIMAL, "slack": {"mode": "http", "bot_token": "xoxb-in-file"}})
    assert found == ["slack.bot_token: secrets never live in the config file; set SLACK_BOT_TOKEN"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {**MINIMAL, "server": {"port": 70000}},
            "server.port: Input should be less than or equal to 65535",
        ),
        ({**MINIMAL, "environments": []}, "environments: Tuple should have at least 1 item"),
        (
            {**MINIMAL, "environments": [{"name": "Prod!"}]},
            "environments.0.name: must be lower-case",
        ),
        ({**MINIMAL, "environments": [{"name": "a"}, {"name": "a"}]}, "repeated: a"),
        ({**MINIMAL, "store": {"url": "mysql://x"}}, "store.url: use sqlite:////absolute/path.db"),
        ({**MINIMAL, "store": {"notice_retention_days": 0}}, "store.notice_retention_days"),
        (
            {**MINIMAL, "exceptions": {"default_days": 100, "max_days": 90}},
            "default_days must not exceed",
        ),
        ({**MINIMAL, "slack": {"mode": "http", "chanels": {}}}, "slack.chanels: unknown key"),
        ({**MINIMAL, "alertmanager": {"routes": [{"match": {"a": "b"}}]}}, "a route needs channel"),
        (
            {**MINIMAL, "slack": {"mode": "http", "roles": {"admins": {"users": ["bob"]}}}},
            "is not a Slack id",
        ),
        (
            {**MINIMAL, "jira": {"url": "https://j", "project": "SEC"}},
            "set JIRA_USER and JIRA_API_TOKEN",
        ),
    ],
)
def test_bad_values_name_the_key_path(document, expected):
    assert any(expected in p for p in problems(document)), problems(document)


def test_unreadable_and_malformed_files(tmp_path: Path):
    with pytest.raises(SettingsError, match="cannot read the config file"):
        load_settings(tmp_path / "absent.yaml", ENV)
    broken = tmp_path / "broken.yaml"
    broken.write_text("slack: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken, ENV)


def test_settings_are_frozen():
    settings = parse_settings(MINIMAL, ENV)
    with pytest.raises(ValueError, match="frozen"):
        settings.server.port = 1  # type: ignore[misc]


def test_store_url_from_the_environment_overrides_the_file():
    url = "postgresql://bot:pw@db.example:5432/policy_bot"
    document = {**MINIMAL, "store": {"url": "sqlite:////var/lib/policy-bot/state.db"}}
    settings = parse_settings(document, {**ENV, "POLICY_BOT_STORE_URL": url})
    assert settings.store.url == url
    assert parse_settings(MINIMAL, {**ENV, "POLICY_BOT_STORE_URL": url}).store.url == url


def test_empty_store_url_variable_keeps_the_file_value():
    settings = parse_settings(MINIMAL, {**ENV, "POLICY_BOT_STORE_URL": "  "})
    assert settings.store.url == "sqlite:////var/lib/policy-bot/state.db"


def test_store_url_from_the_environment_is_validated():
    found = problems(MINIMAL, {**ENV, "POLICY_BOT_STORE_URL": "mysql://x"})
    assert found == ["store.url: use sqlite:////absolute/path.db or postgresql://user@host/db"]


def test_the_example_config_is_valid():
    example = Path(__file__).parent.parent.parent / "config.example.yaml"
    settings = load_settings(example, {**ENV, "JIRA_TOKEN": "pat"})
    assert [e.name for e in settings.environments] == ["dev", "qac", "staging", "production"]
    assert settings.backup.targets[0].type == "dir"


def _s3(**options):
    target = {"type": "s3", "bucket": "policy-backups", **options}
    return {**MINIMAL, "backup": {"targets": [target]}}


def test_s3_target_options_have_defaults_and_are_typed():
    (target,) = parse_settings(_s3(), ENV).backup.targets
    assert (target.timeout_s, target.max_attempts, target.multipart_threshold_mib) == (30, 3, 8)
    assert target.sse is None and target.sse_kms_key_id is None
    (target,) = parse_settings(
        _s3(sse="aws:kms", sse_kms_key_id="alias/backups", timeout_s=5, max_attempts=1), ENV
    ).backup.targets
    assert (target.sse, target.sse_kms_key_id, target.timeout_s) == ("aws:kms", "alias/backups", 5)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            _s3(sse="aes256"),
            "backup.targets.0.sse: 'aes256' is not a server-side encryption; use AES256 "
            "(keys managed by S3) or aws:kms (AWS KMS keys, optionally with sse_kms_key_id)",
        ),
        (
            _s3(sse="AES256", sse_kms_key_id="alias/backups"),
            "backup.targets.0: sse_kms_key_id needs sse: aws:kms",
        ),
        (
            _s3(multipart_threshold_mib=1),
            "backup.targets.0.multipart_threshold_mib: Input should be greater than or equal to 5",
        ),
        (
            {
                **MINIMAL,
                "backup": {"targets": [{"type": "dir", "path": "/b", "sse": "AES256"}]},
            },
            "backup.targets.0: sse applies to s3 targets only",
        ),
    ],
)
def test_bad_s3_target_options_name_the_key(document, expected):
    assert problems(document) == [expected]


def test_the_example_s3_target_is_valid():
    example = Path(__file__).parent.parent.parent / "config.example.yaml"
    lines = example.read_text().splitlines()
    start = lines.index("    # - type: s3")
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    #   "):
            break
        block.append(line)
    targets = yaml.safe_load("\n".join(line.replace("# ", "", 1) for line in block))
    (target,) = parse_settings({**MINIMAL, "backup": {"targets": targets}}, ENV).backup.targets
    assert (target.type, target.sse, target.sse_kms_key_id) == (
        "s3",
        "aws:kms",
        "alias/policy-bot-backups",
    )


def test_the_status_cache_is_on_by_default_and_can_be_turned_off():
    settings = parse_settings(MINIMAL, ENV)
    assert settings.status.cache is True and settings.status.stale_after_s == 0
    off = parse_settings({**MINIMAL, "status": {"cache": False, "stale_after_s": 20}}, ENV)
    assert off.status.cache is False and off.status.stale_after_s == 20
    assert any(
        p.startswith("status.cashe: unknown key")
        for p in problems({**MINIMAL, "status": {"cashe": False}})
    )
    assert any(
        p.startswith("status.stale_after_s:")
        for p in problems({**MINIMAL, "status": {"stale_after_s": -1}})
    )


def test_the_example_config_documents_the_status_cache():
    example = Path(__file__).parent.parent.parent / "config.example.yaml"
    document = yaml.safe_load(example.read_text())
    assert document["status"] == {"cache": True, "stale_after_s": 0, "health_every_s": 60}
    assert parse_settings(MINIMAL, ENV).status.health_every_s == 60  # the default it shows


def test_the_digest_is_off_by_default_and_goes_to_the_reports_channel():
    assert parse_settings(MINIMAL, ENV).digest_channel() is None
    reports = {"slack": {"mode": "http", "channels": {"reports": "C0REPORTS"}}}
    on = parse_settings({**MINIMAL, **reports, "digest": {}}, ENV)
    assert on.digest is not None and on.digest.cron == "0 8 * * *"
    assert on.digest_channel() == "C0REPORTS"
    own = parse_settings({**MINIMAL, **reports, "digest": {"channel": "C0DIGEST"}}, ENV)
    assert own.digest_channel() == "C0DIGEST"
    assert any("digest needs a channel" in p for p in problems({**MINIMAL, "digest": {}}))
    assert any(
        p.startswith("digest.cron:") and "not a cron expression" in p
        for p in problems({**MINIMAL, **reports, "digest": {"cron": "daily"}})
    )
    assert any(
        p.startswith("digest.chanel: unknown key")
        for p in problems({**MINIMAL, **reports, "digest": {"chanel": "C0X"}})
    )
