"""The policies an exception can name, read live from the environments.

Two uses with different deadlines: the modal's policy list must be ready within Slack's
trigger window (about 3 s), so it gives up early and the modal falls back to a typed name;
checking a submitted request may take the cluster's full timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.errors import BotError, UnknownEnvironment
from bot.exceptions.model import PolicyInfo
from bot.exceptions.validation import Field, InputErrors
from bot.kinds import Family, Kind
from bot.policy_ref import parse_policy_ref, qualified
from bot.ports.cluster import Cluster

MAX_OPTIONS = 100
MAX_OPTION_VALUE = 150

POLICY_FAMILIES = (Family.LEGACY_POLICY, Family.CEL_POLICY)


class Catalog:
    def __init__(self, clusters: Mapping[str, Cluster]) -> None:
        self._clusters = dict(clusters)

    @property
    def environments(self) -> list[str]:
        return list(self._clusters)

    async def choices(self, *, timeout_s: float) -> list[str] | None:
        """Policy names of every environment for a select, or None for a typed name.

        None when an environment did not answer within `timeout_s`, or when there are more
        names than a static select may hold (100) or a name longer than an option value.
        """
        try:
            async with asyncio.timeout(timeout_s):
                listings = await asyncio.gather(*(self.policies(env) for env in self._clusters))
        except (TimeoutError, BotError):
            return None
        kinds: dict[str, set[str]] = {}
        for listing in listings:
            for p in listing:
                kinds.setdefault(p.ref, set()).add(p.kind)
        # A name two kinds share is offered once per kind, qualified (`cpol/x`, `vpol/x`).
        names = sorted(
            name
            for ref, found in kinds.items()
            for name in ([ref] if len(found) == 1 else [qualified(k, ref) for k in found])
        )
        if len(names) > MAX_OPTIONS or any(len(n) > MAX_OPTION_VALUE for n in names):
            return None
        return names

    async def policies(self, environment: str) -> list[PolicyInfo]:
        cluster = self._cluster(environment)
        kinds = [k for k in await cluster.kinds() if k.spec.family in POLICY_FAMILIES]
        listings = await asyncio.gather(*(cluster.list_all(k) for k in kinds))
        return [
            policy_info(environment, kind, obj)
            for kind, objs in zip(kinds, listings, strict=True)
            for obj in objs
        ]

    async def find(self, environment: str, text: str) -> PolicyInfo:
        """The policy `text` names in `environment` (`NAME`, `NAMESPACE/NAME`, or qualified
        by its kind, `vpol/NAME`); InputErrors when it is not there or is not one policy."""
        ref = parse_policy_ref(text)
        found = [
            p for p in await self.policies(environment) if p.ref == ref.ref and ref.accepts(p.kind)
        ]
        if not found:
            raise InputErrors(
                {
                    Field.POLICY: (
                        f"There is no policy “{text}” in {environment}. "
                        "/policy status lists the policies of each environment."
                    )
                }
            )
        if len(found) > 1:
            kinds = " and ".join(f"a {p.kind}" for p in found)
            forms = " or ".join(qualified(p.kind, p.ref) for p in found)
            raise InputErrors(
                {
                    Field.POLICY: (
                        f"“{text}” names {kinds} in {environment}: type {forms} to say which."
                    )
                }
            )
        return found[0]

    def _cluster(self, environment: str) -> Cluster:
        cluster = self._clusters.get(environment)
        if cluster is None:
            raise UnknownEnvironment(environment, list(self._clusters))
        return cluster


def policy_info(environment: str, kind: Kind, obj: Mapping[str, Any]) -> PolicyInfo:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    namespace = meta.get("namespace") if kind.spec.namespaced else None
    rules: list[str] = []
    if kind.spec.family is Family.LEGACY_POLICY:
        spec_rules = (obj.get("spec") or {}).get("rules") or ()
        autogen = ((obj.get("status") or {}).get("autogen") or {}).get("rules") or ()
        rules = [str(r.get("name", "")) for r in (*spec_rules, *autogen) if r.get("name")]
    return PolicyInfo(
        environment=environment,
        ref=f"{namespace}/{name}" if namespace else name,
        kind=kind.spec.kind,
        family=kind.spec.family,
        rules=tuple(dict.fromkeys(rules)),
    )
