"""Backups, restores and evidence packs as one service for Slack, the scheduler and the CLI.

A backup reads every requested environment in parallel (one that is down is reported failed
while the others are backed up), builds one bundle, diffs each environment against its
previous good backup, writes every configured target (a failing target is reported, the
others are still written), records the run in the catalog and the audit trail.

Restore is two steps so a person sees what would happen before it happens: `plan_restore`
(admins only) loads the bundle, dry-runs it and stores the plan; `confirm_restore` applies
it once. For production a second admin must confirm: whoever asked cannot click Restore.
Permission checks live here, so every entry point gets them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot import __version__
from bot.audit import VerifyReport
from bot.backup.bundle import (
    ID_PATTERN,
    Bundle,
    BundleError,
    EnvironmentBackup,
    LoadedBundle,
    backup_id,
    read_bundle,
    tarball,
    untar,
)
from bot.backup.catalog import Catalog, PlanRecord
from bot.backup.collect import collect_environment
from bot.backup.diff import EnvironmentDiff, diff_environment, environment_files
from bot.backup.evidence import (
    EvidenceInputs,
    EvidencePack,
    build_evidence,
    parse_month,
    register_from_clusters,
)
from bot.backup.git import GitTarget
from bot.backup.restore import (
    PlanItem,
    RestorePlan,
    RestoreResult,
    apply_restore,
    plan_restore,
)
from bot.backup.s3 import Credentials, S3Client, S3Target
from bot.backup.serialization import load_yaml
from bot.backup.targets import DirectoryTarget, Stored, Target, TargetError, read_directory
from bot.clock import Clock
from bot.errors import BotError, UnknownEnvironment
from bot.ports.cluster import Cluster
from bot.ports.exception_register import ExceptionRegister, RegisterEntry
from bot.ports.helm_values import BackedUpValues
from bot.ports.snapshot import StatusOverview
from bot.roles import Role, RoleChecker
from bot.settings import BackupTarget, Settings
from bot.store.audit_trail import AuditTrail
from bot.store.database import Database

log = logging.getLogger(__name__)

PLAN_TTL = timedelta(hours=1)
PLAN_ID_PREFIX = "rp-"
Progress = Callable[[str, EnvironmentBackup | None], Awaitable[None]]
"""Called with (environment, None) when reading starts and with the result when done."""


class NotAllowed(BotError):
    """The user lacks the role (or is the wrong person) for this step."""


@dataclass(frozen=True)
class BackupReport:
    bundle: Bundle
    started_at: datetime
    finished_at: datetime
    diffs: tuple[EnvironmentDiff, ...]
    stored: tuple[Stored, ...]

    @property
    def id(self) -> str:
        return self.bundle.id

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def environments(self) -> tuple[EnvironmentBackup, ...]:
        return self.bundle.environments

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.environments) and all(s.ok for s in self.stored)

    def tarball(self) -> bytes:
        return tarball(self.bundle.files, root=self.id, mtime=self.bundle.created_at)


@dataclass(frozen=True)
class PlanView:
    """A stored restore plan as shown to people."""

    record: PlanRecord
    plan: RestorePlan
    production: bool


@dataclass(frozen=True)
class RestoreOutcome:
    record: PlanRecord
    result: RestoreResult | None
    already: bool = False  # the plan had been applied (or was being applied) before


@dataclass(frozen=True)
class EvidenceReport:
    pack: EvidencePack
    stored: tuple[Stored, ...]


def build_targets(settings: Settings) -> list[Target]:
    """The configured targets, in config order."""
    return [_target(spec, settings) for spec in settings.backup.targets]


def _target(spec: BackupTarget, settings: Settings) -> Target:
    if spec.type == "dir":
        assert spec.path is not None  # settings validation
        return DirectoryTarget(spec.path, keep=spec.keep)
    if spec.type == "git":
        assert spec.path is not None
        return GitTarget(spec.path, remote=spec.remote, branch=spec.branch)
    assert spec.bucket is not None
    backup = settings.backup
    key_id, secret = backup.s3_access_key_id, backup.s3_secret_access_key
    credentials = None  # without both keys, the AWS SDK's default chain finds credentials
    if key_id and secret:
        credentials = Credentials(
            key_id.get_secret_value(),
            secret.get_secret_value(),
            backup.s3_session_token.get_secret_value() if backup.s3_session_token else None,
        )
    client = S3Client(
        bucket=spec.bucket,
        region=spec.region,
        credentials=credentials,
        endpoint_url=spec.endpoint_url,
        timeout_s=spec.timeout_s,
        max_attempts=spec.max_attempts,
        multipart_threshold=spec.multipart_threshold_mib * 1024 * 1024,
        sse=spec.sse,
        sse_kms_key_id=spec.sse_kms_key_id,
    )
    return S3Target(client, prefix=spec.prefix, keep=spec.keep)


class BackupService:
    def __init__(
        self,
        *,
        settings: Settings,
        clusters: Mapping[str, Cluster],
        database: Database,
        audit: AuditTrail,
        clock: Clock,
        roles: RoleChecker | None = None,
        status: StatusOverview | None = None,
        exceptions: ExceptionRegister | None = None,
        targets: Sequence[Target] | None = None,
    ) -> None:
        self.settings = settings
        self.clusters = dict(clusters)
        self.catalog = Catalog(database)
        self._db = database
        self._audit = audit
        self._clock = clock
        self._roles = roles
        self._status = status
        self._exceptions = exceptions
        self.targets = list(targets) if targets is not None else build_targets(settings)
        self._lock = asyncio.Lock()
        self._values_read: dict[tuple[str, str], tuple[str, BackedUpValues | None]] = {}
        """(environment, release) -> (backup id, its values): a bundle is read once, not on
        every doctor run that compares the deployed values with it."""

    @property
    def environments(self) -> list[str]:
        return [e.name for e in self.settings.environments]

    def is_production(self, environment: str) -> bool:
        """Production: the environment named so, else the last one of the ladder."""
        names = self.environments
        if "production" in names:
            return environment == "production"
        return bool(names) and environment == names[-1]

    async def last_backup(self, environment: str) -> datetime | None:
        """When the newest successful backup of `environment` finished (None: never)."""
        return await self.catalog.last_success(environment)

    async def helm_values(self, environment: str, release: str) -> BackedUpValues | None:
        """The values of `release` in the newest good backup of `environment` (for the
        doctor's drift check); None when there is no such backup or it cannot be read."""
        latest = await self.catalog.latest_good(environment)
        if latest is None:
            return None
        known = self._values_read.get((environment, release))
        if known is not None and known[0] == latest:
            return known[1]
        try:
            bundle, _ = await self.load(latest, environment)
        except BotError:
            log.warning("cannot read the last backup for a values check", exc_info=True)
            return None
        found: BackedUpValues | None = None
        status = bundle.environment_status(environment) or {}
        for entry in status.get("helm") or ():
            data = bundle.files.get(str(entry.get("file", "")))
            if entry.get("release") == release and data is not None:
                values = load_yaml(data)
                found = BackedUpValues(latest, values if isinstance(values, dict) else {})
                break
        self._values_read[(environment, release)] = (latest, found)
        return found

    # -- backup ------------------------------------------------------------------------

    async def backup(
        self,
        environments: Sequence[str] | None = None,
        *,
        trigger: str,
        actor: str,
        progress: Progress | None = None,
    ) -> BackupReport:
        names = list(environments) if environments else self.environments
        for name in names:
            if name not in self.clusters:
                raise UnknownEnvironment(name, self.environments)
        async with self._lock:
            return await self._backup(names, trigger=trigger, actor=actor, progress=progress)

    async def _backup(
        self, names: list[str], *, trigger: str, actor: str, progress: Progress | None
    ) -> BackupReport:
        started = self._clock.now()
        bid = await self._unique_id(backup_id(started))
        releases = self.settings.backup.helm_releases

        async def one(name: str) -> EnvironmentBackup:
            if progress is not None:
                await _quietly(progress(name, None))
            result = await collect_environment(self.clusters[name], helm_releases=releases)
            if progress is not None:
                await _quietly(progress(name, result))
            return result

        results = await asyncio.gather(*(one(n) for n in names))
        bundle = Bundle(bid, started, __version__, tuple(results))
        manifest = await asyncio.to_thread(bundle.manifest)
        diffs = []
        for env in results:
            if not env.ok:
                continue
            previous = await self.catalog.previous_manifest(env.environment, before=bid)
            diffs.append(
                diff_environment(
                    env.environment,
                    environment_files(manifest, env.environment),
                    environment_files(previous[1], env.environment) if previous else None,
                    previous_id=previous[0] if previous else None,
                )
            )
        files = await asyncio.to_thread(lambda: bundle.files)
        message = commit_message(bundle, diffs)
        ok_names = [e.environment for e in results if e.ok]
        stored = await asyncio.gather(
            *(self._store(t, bid, files, started, message, ok_names) for t in self.targets)
        )
        finished = self._clock.now()
        report = BackupReport(bundle, started, finished, tuple(diffs), tuple(stored))
        await self.catalog.record(
            backup_id=bid,
            started_at=started,
            finished_at=finished,
            trigger=trigger,
            actor=actor,
            summary=_summary(report),
            stored=[_stored_json(s) for s in stored],
            manifest=manifest,
            environments={e.environment: (e.ok, sum(e.counts.values()), e.error) for e in results},
        )
        await self._audit.append(
            actor=actor,
            action="backup.run",
            outcome="ok" if report.ok else "partial",
            target=bid,
            details={
                "trigger": trigger,
                "environments": {e.environment: e.ok for e in results},
                "objects": {e.environment: sum(e.counts.values()) for e in results},
                "stored": [s.display if s.ok else f"{s.target}: {s.error}" for s in stored],
            },
        )
        return report

    async def _unique_id(self, base: str) -> str:
        candidate, n = base, 1
        while await self.catalog.exists(candidate):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    async def _store(
        self,
        target: Target,
        bid: str,
        files: Mapping[str, bytes],
        at: datetime,
        message: str,
        environments: Sequence[str],
    ) -> Stored:
        started = time.monotonic()
        try:
            stored = await target.store_backup(
                bid, files, at=at, message=message, environments=environments
            )
        except (TargetError, BundleError, OSError) as err:
            log.warning("backup target failed", extra={"target": target.describe()})
            return Stored(target.kind, "", target.describe(), error=str(err))
        log.info(
            "backup stored",
            extra={"target": stored.display, "seconds": round(time.monotonic() - started, 2)},
        )
        return stored

    # -- loading -----------------------------------------------------------------------

    async def load(self, backup_id_: str, environment: str) -> tuple[LoadedBundle, str]:
        """The bundle of `backup_id_` checked for `environment`, and where it came from."""
        if not ID_PATTERN.match(backup_id_):
            raise BotError(
                f"`{backup_id_[:40]}` is not a backup id; they look like b-20261128-020000."
            )
        entry = await self.catalog.get(backup_id_)
        locations: list[tuple[str, str]] = []
        if entry is not None:
            locations = [
                (str(s["target"]), str(s["location"])) for s in entry.stored if s.get("ok")
            ]
        for configured in self.targets:
            # A backup taken by the command line into a target directory has no catalog row.
            if isinstance(configured, DirectoryTarget):
                candidate = configured.path / backup_id_
                if await asyncio.to_thread(candidate.is_dir):
                    locations.append(("dir", str(candidate)))
        order = {"dir": 0, "s3": 1, "git": 2}
        problems: list[str] = []
        for kind, location in sorted(dict.fromkeys(locations), key=lambda kl: order[kl[0]]):
            source = next((t for t in self.targets if t.kind == kind), None)
            if source is None:
                continue
            try:
                files = await source.load_backup(location)
                bundle = await asyncio.to_thread(read_bundle, files, environment=environment)
            except (TargetError, BundleError, OSError) as err:
                problems.append(f"{kind} {location}: {err}")
                continue
            status = bundle.environment_status(environment) or {}
            if status.get("status") != "ok":
                raise BotError(
                    f"Backup {backup_id_} has no copy of *{environment}*: it failed then "
                    f"({status.get('error', 'unknown error')})."
                )
            return bundle, f"{kind} {location}"
        if not locations:
            raise BotError(f"There is no backup {backup_id_}. `/policy backup` lists recent ones.")
        raise BotError(
            f"Backup {backup_id_} could not be read from any target: " + "; ".join(problems)
        )

    # -- restore -----------------------------------------------------------------------

    async def plan_restore(self, backup_id_: str, environment: str, *, user: str) -> PlanView:
        await self._require_admin(user, "restore")
        if environment not in self.clusters:
            raise UnknownEnvironment(environment, self.environments)
        bundle, source = await self.load(backup_id_, environment)
        plan = await plan_restore(self.clusters[environment], bundle, environment)
        record = PlanRecord(
            id=f"{PLAN_ID_PREFIX}{secrets.token_hex(6)}",
            backup_id=backup_id_,
            environment=environment,
            source=source,
            requested_by=user,
            created_at=self._clock.now(),
            state="pending",
            items=tuple(i.to_json() for i in plan.items),
            decided_by=None,
            decided_at=None,
            result=None,
        )
        await self.catalog.save_plan(record)
        await self._audit.append(
            actor=user,
            action="restore.plan",
            outcome="ok",
            environment=environment,
            target=backup_id_,
            details={
                "plan": record.id,
                "counts": plan.counts,
                "source": source,
                **({"api_warnings": dict(plan.warnings)} if plan.warnings else {}),
            },
        )
        return PlanView(record, plan, self.is_production(environment))

    async def plan(self, plan_id: str) -> PlanView | None:
        record = await self.catalog.plan(plan_id)
        if record is None:
            return None
        plan = RestorePlan(record.environment, tuple(PlanItem.from_json(i) for i in record.items))
        return PlanView(record, plan, self.is_production(record.environment))

    async def confirm_restore(self, plan_id: str, *, user: str) -> RestoreOutcome:
        view = await self.plan(plan_id)
        if view is None:
            raise BotError("This restore plan no longer exists. Run `/policy restore` again.")
        record = view.record
        await self._require_admin(user, "confirm a restore")
        if record.state != "pending":
            return RestoreOutcome(record, None, already=True)
        if view.production and user == record.requested_by:
            raise NotAllowed(
                f"*{record.environment}* is production: another admin must confirm the "
                "restore you asked for."
            )
        if self._clock.now() - record.created_at > PLAN_TTL:
            raise BotError(
                "This dry run is more than an hour old; the cluster may have changed since. "
                f"Run `/policy restore {record.backup_id} {record.environment}` again."
            )
        if not await self.catalog.claim_plan(plan_id, user=user, at=self._clock.now()):
            fresh = await self.catalog.plan(plan_id)
            return RestoreOutcome(fresh or record, None, already=True)
        bundle, _ = await self.load(record.backup_id, record.environment)
        result = await apply_restore(self.clusters[record.environment], bundle, record.environment)
        state = "applied" if result.ok else "failed"
        summary = {
            "applied": len(result.applied),
            "failed": [f"{i.kind} {i.ref}: {i.detail}" for i in result.failed][:50],
            "skipped": len(result.skipped),
            **({"api_warnings": dict(result.warnings)} if result.warnings else {}),
        }
        await self.catalog.finish_plan(plan_id, state=state, result=summary)
        await self._audit.append(
            actor=user,
            action="restore.apply",
            outcome="ok" if result.ok else "partial",
            environment=record.environment,
            target=record.backup_id,
            details={"plan": plan_id, "requested_by": record.requested_by, **summary},
        )
        done = await self.catalog.plan(plan_id)
        return RestoreOutcome(done or record, result)

    async def _require_admin(self, user: str, what: str) -> None:
        if self._roles is None:
            return  # the command line: whoever runs it holds the kubeconfig
        if not await self._roles.has(user, Role.ADMIN):
            raise NotAllowed(f"Only admins may {what}: {self._roles.describe(Role.ADMIN)}.")

    # -- evidence ----------------------------------------------------------------------

    async def evidence(self, month: str, *, actor: str) -> EvidenceReport:
        try:
            start, end = parse_month(month)
        except ValueError:
            raise BotError(f"`{month[:20]}` is not a month; write it like 2026-11.") from None
        now = self._clock.now()
        if start > now:
            raise BotError(f"{month} has not started yet.")
        if self._status is None:
            raise BotError("Evidence packs need the status service.")
        snapshots = await self._status.overview()
        register, source = await self._register(snapshots, start, end)
        entries = await self._audit.entries(since=start, until=end)
        head = await self._audit.head()
        verify = await self.verify_audit()
        history = [
            (e.id, _history_line(e.summary))
            for e in await self.catalog.recent(limit=500)
            if start <= e.started_at < end
        ]
        pack = await asyncio.to_thread(
            build_evidence,
            EvidenceInputs(
                month=month,
                generated_at=now,
                bot_version=__version__,
                snapshots=snapshots,
                register=register,
                register_source=source,
                audit_entries=entries,
                head=head,
                verify=verify,
                backups=tuple(sorted(history)),
            ),
        )
        message = f"Evidence pack {month}"
        stored = await asyncio.gather(
            *(self._store_evidence(t, month, pack.files, now, message) for t in self.targets)
        )
        await self.catalog.record_evidence(
            month=month,
            created_at=now,
            actor=actor,
            head=(head.id, head.hash) if head else None,
            stored=[_stored_json(s) for s in stored],
        )
        await self._audit.append(
            actor=actor,
            action="evidence.export",
            outcome="ok" if all(s.ok for s in stored) else "partial",
            target=month,
            details={**pack.summary, "stored": [s.display for s in stored if s.ok]},
        )
        return EvidenceReport(pack, tuple(stored))

    async def verify_audit(self) -> VerifyReport:
        """The chain check, anchored at every head published in an evidence pack."""
        return await self._audit.verify(anchors=await self.catalog.published_heads())

    async def _store_evidence(
        self, target: Target, month: str, files: Mapping[str, bytes], at: datetime, message: str
    ) -> Stored:
        try:
            return await target.store_evidence(month, files, at=at, message=message)
        except (TargetError, OSError) as err:
            return Stored(target.kind, "", target.describe(), error=str(err))

    async def _register(
        self, snapshots: Sequence[Any], start: datetime, end: datetime
    ) -> tuple[list[RegisterEntry], str]:
        """The bot's records when that feature is there, plus every PolicyException found
        in a cluster that no record accounts for (an auditor must see those too)."""
        stored = (
            None
            if self._exceptions is None
            else list(await self._exceptions.in_force_between(start, end))
        )
        recorded = {(e.environment, e.namespace, e.name) for e in stored or ()}
        found = [
            entry
            for snap in snapshots
            for entry in register_from_clusters(snap.environment, snap.exceptions)
            if (entry.environment, entry.namespace, entry.name) not in recorded
        ]
        if stored is None:
            return found, "clusters"
        return stored + found, "store"


def commit_message(bundle: Bundle, diffs: Sequence[EnvironmentDiff]) -> str:
    """`Backup <id>: dev +1 ~2, qac no change` and one line per change below."""
    parts = []
    for env in bundle.environments:
        if not env.ok:
            parts.append(f"{env.environment} failed")
            continue
        diff = next((d for d in diffs if d.environment == env.environment), None)
        if diff is None or diff.previous_id is None:
            parts.append(f"{env.environment} {sum(env.counts.values())} objects (first backup)")
        elif diff.empty:
            parts.append(f"{env.environment} no change")
        else:
            counts = [
                f"{sign}{len(items)}"
                for sign, items in (("+", diff.added), ("-", diff.removed), ("~", diff.changed))
                if items
            ]
            if diff.helm_changed:
                counts.append("helm values")
            parts.append(f"{env.environment} {' '.join(counts)}")
    lines = [f"Backup {bundle.id}: {', '.join(parts)}", ""]
    for diff in diffs:
        for sign, items in (("+", diff.added), ("-", diff.removed), ("~", diff.changed)):
            lines += [f"{sign} {diff.environment}: {k.describe()}" for k in items]
        lines += [f"~ {diff.environment}: helm values {r}" for r in diff.helm_changed]
    return "\n".join(lines).rstrip() + "\n"


def _summary(report: BackupReport) -> dict[str, Any]:
    return {
        "environments": {
            e.environment: {
                "ok": e.ok,
                "error": e.error,
                "objects": sum(e.counts.values()),
                "counts": dict(e.counts),
            }
            for e in report.environments
        },
        "changes": {
            d.environment: {
                "previous": d.previous_id,
                "added": len(d.added),
                "removed": len(d.removed),
                "changed": len(d.changed),
            }
            for d in report.diffs
        },
    }


def _history_line(summary: Mapping[str, Any]) -> str:
    envs = summary.get("environments") or {}
    return " · ".join(
        f"{name} {'ok' if e.get('ok') else 'failed'} ({e.get('objects', 0)} objects)"
        for name, e in sorted(envs.items())
    )


def _stored_json(stored: Stored) -> dict[str, Any]:
    return {
        "target": stored.target,
        "location": stored.location,
        "display": stored.display,
        "changed": stored.changed,
        "ok": stored.ok,
        "error": stored.error,
    }


async def _quietly(awaitable: Awaitable[None]) -> None:
    """Progress reports are best effort: a failed Slack update must not fail the backup."""
    try:
        await awaitable
    except Exception:
        log.warning("backup progress report failed", exc_info=True)


def load_path(path: Path) -> dict[str, bytes]:
    """The files of a bundle given as a directory or a .tar.gz (for the command line)."""
    if path.is_dir():
        return read_directory(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(f"cannot read {path}: {err.strerror or err}") from None
    return untar(data)
