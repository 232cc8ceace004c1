"""Where a policy's time in stage can come from besides the object: the bot's own record of
its writes and the managedFields entry of the mode field (see `bot.ladder`).

`/policy status POLICY` and the promotion plan both ask this, so they agree on the figure.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.ladder import StageEvidence
from bot.policy_ref import PolicyRef
from bot.ports.cluster import ClusterReader
from bot.promotion.modes import mode_write
from bot.promotion.records import PromotionStore
from bot.promotion.sightings import Sighting, sight_all


class StageHistory:
    def __init__(self, store: PromotionStore, clusters: Mapping[str, ClusterReader]) -> None:
        self._store = store
        self._clusters = clusters

    async def evidence(self, ref: PolicyRef) -> dict[str, StageEvidence]:
        """Evidence per environment for the policy `ref` names (reads every environment)."""
        return await self.of(await sight_all(self._clusters, ref, failures=False))

    async def of(self, sightings: Mapping[str, Sighting]) -> dict[str, StageEvidence]:
        """Evidence per environment for a policy already read."""
        found = next((s.policy for s in sightings.values() if s.policy is not None), None)
        if found is None:
            return {}
        records = await self._store.latest_records(kind=found.kind, policy=found.ref)
        return {
            env: StageEvidence(
                record=records.get(env),
                mode_write=mode_write(s.policy.family, s.obj) if s.obj and s.policy else None,
            )
            for env, s in sightings.items()
        }
