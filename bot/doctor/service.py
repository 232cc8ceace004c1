"""`/policy doctor`: each environment's Kyverno read live and checked against the runbook.

Environments are examined in parallel and independently: one that does not answer yields a
report with its error while the others still answer. The last backup's Helm values, when a
backup exists, are compared with the deployed ones; the backup store is reached through the
small `BackupValues` port so the doctor does not depend on how backups are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from bot.doctor.checks import run_checks
from bot.doctor.model import DoctorReport, KyvernoHealth
from bot.doctor.reader import HealthReader
from bot.doctor.runbook import HELM_RELEASES
from bot.errors import BotError, ClusterUnavailable, UnknownEnvironment
from bot.ports.cluster import ClusterReader
from bot.ports.helm_values import BackedUpValues, BackupValues
from bot.ports.snapshot import HealthSummary


class DoctorService:
    def __init__(
        self,
        clusters: Sequence[ClusterReader],
        *,
        exceptions_namespace: str,
        releases: Mapping[str, str] | None = None,
        backups: BackupValues | None = None,
        answer_within_s: Mapping[str, float] | None = None,
    ) -> None:
        self._budget = dict(answer_within_s or {})
        self._clusters = {c.name: c for c in clusters}
        self._order = [c.name for c in clusters]
        self._exceptions_namespace = exceptions_namespace
        self._reader = HealthReader(releases)
        self._backups = backups

    @property
    def environments(self) -> list[str]:
        return list(self._order)

    async def examine(self, environment: str) -> DoctorReport:
        if environment not in self._clusters:
            raise UnknownEnvironment(environment, self._order)
        return await self._examine(environment)

    async def examine_all(self) -> list[DoctorReport]:
        return list(await asyncio.gather(*(self._examine(n) for n in self._order)))

    async def summary(self, environment: str) -> HealthSummary | None:
        """One line for `/policy status`: version, admission readiness, warning count."""
        if environment not in self._clusters:
            return None
        report = await self._examine(environment)
        if report.error is not None or report.health is None:
            return None  # status reports the environment's error itself
        health = report.health
        admission = health.controller("admission")
        installed = health.installed
        return HealthSummary(
            version=health.version,
            admission=(admission.ready, admission.desired) if admission else None,
            warnings=report.warnings,
            failures=report.failures,
            problem="not installed" if installed is False else None,
        )

    async def _examine(self, environment: str) -> DoctorReport:
        cluster = self._clusters[environment]
        budget = self._budget.get(environment)
        try:
            async with asyncio.timeout(budget):
                health, (backed_up, note) = await asyncio.gather(
                    self._reader.read(cluster), self._backed_up(environment)
                )
        except BotError as err:
            return DoctorReport(environment=environment, error=err)
        except TimeoutError:
            slow = ClusterUnavailable(environment, f"no complete answer within {budget:g} s")
            return DoctorReport(environment=environment, error=slow)
        findings = run_checks(
            health, exceptions_namespace=self._exceptions_namespace, backed_up=backed_up
        )
        return DoctorReport(
            environment=environment,
            health=health,
            findings=findings,
            drift_note=_drift_note(health, backed_up, note),
        )

    async def _backed_up(self, environment: str) -> tuple[dict[str, BackedUpValues], str | None]:
        if self._backups is None:
            return {}, "values drift not checked: backups are not configured"
        found: dict[str, BackedUpValues] = {}
        for release in HELM_RELEASES:
            values = await self._backups.helm_values(environment, release)
            if values is not None:
                found[release] = values
        return found, None if found else "values drift not checked: no backup of Helm values yet"


def _drift_note(
    health: KyvernoHealth, backed_up: Mapping[str, BackedUpValues], note: str | None
) -> str | None:
    if note is not None:
        return note if health.release("kyverno") else None
    unmatched = [name for name in backed_up if health.release(name) is None]
    if unmatched:
        return f"backed-up values of {', '.join(unmatched)} have no Helm release to compare with"
    return None
