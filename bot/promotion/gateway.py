"""The cluster gateway promotion writes through: server-side apply, plus merge patches.

Server-side apply cannot remove an element of an `x-kubernetes-list-type: set` list that
another field manager owns; it only adds its own. `spec.validationActions` of the
policies.kyverno.io kinds is such a set, so applying `[Deny]` over a GitOps-owned
`[Audit, Warn]` leaves `[Audit, Warn, Deny]`. When that happens the bot replaces the list
with a JSON merge patch (field manager `policy-bot`, guarded by the resourceVersion the apply
returned), which is how Kubernetes hands a set over to a new owner.

Promotion keeps gateways of its own (same environments, same settings): a long readiness
wait or a report scan for a plan never queues behind `/policy status` on one thread pool.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3

from bot.errors import ClusterForbidden, ClusterUnavailable
from bot.kinds import Kind
from bot.kube.gateway import FIELD_MANAGER, ClusterGateway, Conflict, Invalid, NotFound

MERGE_PATCH = "application/merge-patch+json"


class PromotionGateway(ClusterGateway):
    async def merge_patch(
        self, kind: Kind, name: str, patch: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """JSON merge patch of one object, recorded under field manager `policy-bot`."""
        path = f"{kind.path(namespace)}/{name}"
        return await self._call(lambda: self._merge_patch(path, patch))

    def _merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        api = self._api()
        try:
            # The body goes in as a dict: the client serialises it for any JSON media type.
            _, url, headers, body, _ = api.param_serialize(
                method="PATCH",
                resource_path=path,
                query_params=[("fieldManager", FIELD_MANAGER)],
                header_params={"Accept": "application/json", "Content-Type": MERGE_PATCH},
                body=patch,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(
                "PATCH",
                url,
                header_params=headers,
                body=body,
                _request_timeout=(min(3.0, self.env.timeout_s), self.env.timeout_s),
            )
            data: bytes = response.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(self.name, str(exc)[:120]) from None
        status = int(response.status)
        if status == 404:
            raise NotFound(path)
        if status == 409:
            raise Conflict(_message(data))
        if status == 422:
            raise Invalid(_message(data))
        if status in (401, 403):
            raise ClusterForbidden(self.name, "patch", path)
        if status >= 400:
            raise ClusterUnavailable(self.name, f"HTTP {status} from {path}: {_message(data)}")
        result: dict[str, Any] = json.loads(data)
        return result


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or "")[:300]
    except ValueError:
        return data[:300].decode("utf-8", "replace")
