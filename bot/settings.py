"""Settings: the YAML file of SPEC 3.5 plus the secrets of SPEC 3.2, parsed once at start.

Everything downstream receives a frozen slice of `Settings`; nothing else reads the
environment. Validation happens here, at start, so a missing signing secret or a typo in a
key fails the boot with the key path named instead of failing on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")


class SettingsError(Exception):
    """The configuration cannot be used; `problems` names each key path and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _slack_id(value: str) -> str:
    if not SLACK_ID.match(value):
        raise ValueError(f"{value!r} is not a Slack id (like C0123ABC or U0123ABC)")
    return value


SlackId = Annotated[str, Field(min_length=2, max_length=32)]


class ServerSettings(_Frozen):
    host: str = "0.0.0.0"  # the container port is the boundary
    port: int = Field(default=3000, ge=1, le=65535)
    shutdown_timeout_s: float = Field(default=20.0, gt=0, le=300)


class StoreSettings(_Frozen):
    url: str = "sqlite:////var/lib/policy-bot/state.db"
    notice_retention_days: int = Field(default=30, ge=1, le=3650)
    """How long messages the bot sent (or Slack refused) stay in its outbox before they are
    forgotten; a message edited later than that is edited by the ts its feature keeps."""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.startswith("sqlite:///") or value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError("use sqlite:////absolute/path.db or postgresql://user@host/db")


class RoleMembers(_Frozen):
    users: tuple[SlackId, ...] = ()
    usergroups: tuple[SlackId, ...] = ()

    @field_validator("users", "usergroups")
    @classmethod
    def _ids(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_slack_id(v) for v in values)


class Roles(_Frozen):
    approvers: RoleMembers = RoleMembers()
    promoters: RoleMembers = RoleMembers()
    admins: RoleMembers = RoleMembers()


class Channels(_Frozen):
    alerts: SlackId | None = None
    approvals: SlackId | None = None
    reports: SlackId | None = None


class SlackSettings(_Frozen):
    mode: Literal["socket", "http"] = "http"
    channels: Channels = Channels()
    roles: Roles = Roles()
    api_url: str = DEFAULT_SLACK_API_URL
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    usergroup_cache_s: float = Field(default=300.0, ge=0)
    # Secrets, from the environment only (SPEC 3.2).
    bot_token: SecretStr
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None

    @model_validator(mode="after")
    def _mode_secrets(self) -> SlackSettings:
        if self.mode == "http" and not _has(self.signing_secret):
            raise ValueError("SLACK_SIGNING_SECRET must be set when slack.mode is http")
        if self.mode == "socket" and not _has(self.app_token):
            raise ValueError("SLACK_APP_TOKEN (xapp-...) must be set when slack.mode is socket")
        return self


class Environment(_Frozen):
    name: str = Field(min_length=1, max_length=63)
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    timeout_s: float = Field(default=8.0, gt=0, le=60)
    page_size: int = Field(default=500, ge=10, le=5000)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("must be lower-case letters, digits and '-' (a DNS label)")
        return value


class ExceptionSettings(_Frozen):
    namespace: str = "kyverno-exceptions"
    default_days: int = Field(default=30, ge=1)
    max_days: int = Field(default=90, ge=1, le=3650)
    remind_days_before: tuple[int, ...] = (7, 1)
    review_cron: str = "0 9 1 1,4,7,10 *"
    """Quarterly review of every active exception (09:00 UTC on the first day of a quarter)."""
    sweep_every_s: int = Field(default=300, ge=30, le=3600)
    """How often expired exceptions are removed and reminders go out."""

    @model_validator(mode="after")
    def _coherent(self) -> ExceptionSettings:
        if not DNS_LABEL.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a valid namespace name")
        if self.default_days > self.max_days:
            raise ValueError("default_days must not exceed max_days")
        return self


class JiraSettings(_Frozen):
    url: str
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,9}$")
    issue_type: str = "Task"
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    search_lag_s: float = Field(default=120.0, ge=0, le=3600)
    """How long JIRA's search may take to list a new issue (Cloud's is eventually consistent):
    after a create that got no answer, no second ticket is filed within this time."""
    user: str | None = None
    api_token: SecretStr | None = None
    token: SecretStr | None = None
    close_transitions: tuple[str, ...] = ("Done", "Close Issue", "Closed", "Resolve Issue")
    """Workflow transitions tried, in order, when an exception ends (names differ per workflow)."""

    @model_validator(mode="after")
    def _auth(self) -> JiraSettings:
        cloud = self.user is not None and _has(self.api_token)
        if not cloud and not _has(self.token):
            raise ValueError("set JIRA_USER and JIRA_API_TOKEN (Cloud) or JIRA_TOKEN (Data Center)")
        return self


class AlertRoute(_Frozen):
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    channel: SlackId | None = None
    channels: tuple[SlackId, ...] = ()

    @model_validator(mode="after")
    def _has_target(self) -> AlertRoute:
        if not self.channel and not self.channels:
            raise ValueError("a route needs channel or channels")
        for pattern in self.match_re.values():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f"match_re {pattern!r} is not a regular expression: {err}"
                ) from err
        return self

    @property
    def targets(self) -> tuple[str, ...]:
        return ((self.channel,) if self.channel else ()) + self.channels


class AlertmanagerSettings(_Frozen):
    url: str | None = None
    policy_reporter_url: str | None = None
    routes: tuple[AlertRoute, ...] = ()
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    per_channel_rate: float = Field(default=1.0, gt=0, le=10)
    burst: int = Field(default=3, ge=1, le=20)
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_token: SecretStr | None = None


class HelmRelease(_Frozen):
    name: str
    namespace: str


class BackupTarget(_Frozen):
    type: Literal["dir", "git", "s3"]
    path: Path | None = None
    remote: str | None = None
    branch: str = "main"
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    keep: int = Field(default=30, ge=1)
    # s3 only: each call's connect and read timeout, attempts per call (retries included),
    # the size from which uploads go in parts, and encryption at rest.
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    max_attempts: int = Field(default=3, ge=1, le=10)
    multipart_threshold_mib: int = Field(default=8, ge=5, le=5120)
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None

    @field_validator("sse", mode="before")
    @classmethod
    def _sse(cls, value: Any) -> Any:
        if value is None or value in ("AES256", "aws:kms"):
            return value
        raise ValueError(
            f"{value!r} is not a server-side encryption; use AES256 (keys managed by S3) "
            "or aws:kms (AWS KMS keys, optionally with sse_kms_key_id)"
        )

    @model_validator(mode="after")
    def _complete(self) -> BackupTarget:
        if self.type in ("dir", "git") and self.path is None:
            raise ValueError(f"a {self.type} target needs path (an absolute directory)")
        if self.path is not None and not self.path.is_absolute():
            raise ValueError(f"path {str(self.path)!r} must be absolute")
        if self.type == "s3" and not self.bucket:
            raise ValueError("an s3 target needs bucket")
        s3_only = sorted(
            {"timeout_s", "max_attempts", "multipart_threshold_mib", "sse", "sse_kms_key_id"}
            & self.model_fields_set
        )
        if self.type != "s3" and s3_only:
            verb = "applies" if len(s3_only) == 1 else "apply"
            raise ValueError(f"{', '.join(s3_only)} {verb} to s3 targets only")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        return self


class BackupSettings(_Frozen):
    cron: str | None = "0 2 * * *"
    evidence_cron: str | None = "0 3 1 * *"  # the monthly evidence pack, for the month before
    helm_releases: tuple[HelmRelease, ...] = ()
    targets: tuple[BackupTarget, ...] = ()
    # Secrets, from the environment only (AWS_ACCESS_KEY_ID, ...), for s3 targets.
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_session_token: SecretStr | None = None


class StatusSettings(_Frozen):
    cache: bool = True
    """Follow each environment's policies, exceptions and reports by watch, so `/policy
    status` answers from memory instead of listing every report (needs RBAC `watch`)."""
    stale_after_s: float = Field(default=0.0, ge=0, le=3600)
    """How long the cache may still answer, saying "as of", while a watch is broken; 0: a
    broken watch means a fresh list, so an unreachable cluster is named at once."""
    health_every_s: float = Field(default=60.0, gt=0, le=3600)
    """With the cache, how often each environment's Kyverno health line is read in the
    background; the overview shows it "as of" once it is three times as old."""


class DigestSettings(_Frozen):
    """The daily digest in the reports channel (or `channel`); no `digest:` key, no digest."""

    cron: str = "0 8 * * *"
    channel: SlackId | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # Imported here: the scheduler is not loaded by commands that never schedule (the
        # command-line backup and restore start faster without it).
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as err:
            raise ValueError(
                f'{value!r} is not a cron expression (five fields, like "0 8 * * 1-5"): {err}'
            ) from None
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return None if value is None else _slack_id(value)


class PromotionSettings(_Frozen):
    """Kept open on purpose: stages and gates are parsed by the promotion module."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Settings(_Frozen):
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    slack: SlackSettings
    environments: tuple[Environment, ...] = Field(min_length=1)
    exceptions: ExceptionSettings = ExceptionSettings()
    jira: JiraSettings | None = None
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    backup: BackupSettings = BackupSettings()
    promotion: PromotionSettings = PromotionSettings()
    status: StatusSettings = StatusSettings()
    digest: DigestSettings | None = None

    @model_validator(mode="after")
    def _digest_channel(self) -> Settings:
        if self.digest is not None and not (self.digest.channel or self.slack.channels.reports):
            raise ValueError("digest needs a channel: set digest.channel or slack.channels.reports")
        return self

    def digest_channel(self) -> str | None:
        """Where the digest goes: its own channel, else the reports channel; None: off."""
        if self.digest is None:
            return None
        return self.digest.channel or self.slack.channels.reports

    @field_validator("environments")
    @classmethod
    def _unique(cls, envs: tuple[Environment, ...]) -> tuple[Environment, ...]:
        names = [e.name for e in envs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"environment names must be unique; repeated: {', '.join(dupes)}")
        return envs

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)


def _has(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


_ENV_SECRETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SLACK_BOT_TOKEN", ("slack", "bot_token")),
    ("SLACK_SIGNING_SECRET", ("slack", "signing_secret")),
    ("SLACK_APP_TOKEN", ("slack", "app_token")),
    ("SLACK_API_URL", ("slack", "api_url")),
    ("JIRA_USER", ("jira", "user")),
    ("JIRA_API_TOKEN", ("jira", "api_token")),
    ("JIRA_TOKEN", ("jira", "token")),
    ("ALERTMANAGER_WEBHOOK_TOKEN", ("alertmanager", "webhook_token")),
    ("AWS_ACCESS_KEY_ID", ("backup", "s3_access_key_id")),
    ("AWS_SECRET_ACCESS_KEY", ("backup", "s3_secret_access_key")),
    ("AWS_SESSION_TOKEN", ("backup", "s3_session_token")),
)
_SECRET_KEYS = {path for _, path in _ENV_SECRETS if path[-1] != "api_url" and path[-1] != "user"}
_ENV_NAME = {path: name for name, path in _ENV_SECRETS}
STORE_URL_ENV = "POLICY_BOT_STORE_URL"
"""Overrides `store.url`: a PostgreSQL URL carries a password, so a deployment hands it in
from a Secret instead of writing it into the config file (which may still name SQLite)."""


def parse_settings(document: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate a parsed YAML document merged with the secrets from `env`."""
    data: dict[str, Any] = {k: v for k, v in document.items()}
    problems: list[str] = []
    for path in _SECRET_KEYS:
        if _lookup(data, path) is not None:
            problems.append(
                f"{'.'.join(path)}: secrets never live in the config file; set {_ENV_NAME[path]}"
            )
    if problems:
        raise SettingsError(problems)
    for name, path in _ENV_SECRETS:
        value = env.get(name)
        if value and (path[0] != "jira" or isinstance(data.get("jira"), dict)):
            section = data.setdefault(path[0], {})
            if not isinstance(section, dict):
                continue
            data[path[0]] = {**section, path[1]: value}
    store_url = env.get(STORE_URL_ENV, "").strip()
    if store_url:
        section = data.get("store")
        data["store"] = {**(section if isinstance(section, dict) else {}), "url": store_url}
    if not isinstance(data.get("slack"), dict) or "bot_token" not in data["slack"]:
        data.setdefault("slack", {})
        if isinstance(data["slack"], dict):
            problems.append("slack.bot_token: SLACK_BOT_TOKEN (xoxb-...) must be set")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        problems.extend(_describe(e) for e in err.errors() if not _is_bot_token_missing(e))
        raise SettingsError(problems) from None
    if problems:
        raise SettingsError(problems)
    return settings


def load_settings(path: Path, env: Mapping[str, str]) -> Settings:
    """Read the YAML file at `path` and validate it with the secrets from `env`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SettingsError([f"{path}: cannot read the config file ({err.strerror})"]) from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise SettingsError([f"{path}: not valid YAML: {err}"]) from None
    if not isinstance(document, dict):
        raise SettingsError([f"{path}: the top level must be a mapping of sections"])
    return parse_settings(document, env)


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _is_bot_token_missing(error: Any) -> bool:
    return tuple(error.get("loc", ())) == ("slack", "bot_token") and error["type"] == "missing"


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown key (check the spelling against the configuration reference)"
    return f"{loc or '(top level)'}: {message}"
