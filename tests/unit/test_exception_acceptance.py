"""Where Kyverno accepts exceptions from, read under least-privilege RBAC."""

from typing import Any

from bot.errors import ClusterForbidden
from bot.exceptions.acceptance import read_acceptance

DEPLOYMENT = {
    "metadata": {"name": "kyverno-admission-controller", "namespace": "kyverno"},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "image": "reg.kyverno.io/kyverno/kyverno:v1.19.0",
                        "args": [
                            "--enablePolicyException=true",
                            "--exceptionNamespace=kyverno-exceptions",
                        ],
                    }
                ]
            }
        }
    },
}


class Cluster:
    def __init__(self, *, cluster_wide: bool) -> None:
        self.cluster_wide = cluster_wide
        self.paths: list[str] = []

    async def get_path(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        if path.startswith("/apis/apps/v1/deployments"):
            if not self.cluster_wide:
                raise ClusterForbidden("dev", "list", path)
            return {"items": [DEPLOYMENT]}
        if path.startswith("/apis/apps/v1/namespaces/kyverno/deployments"):
            return {"items": [DEPLOYMENT]}
        return {"items": []}


async def test_cluster_wide_list_is_used_when_allowed() -> None:
    cluster = Cluster(cluster_wide=True)
    found = await read_acceptance(cluster)
    assert found.known and found.accepts("kyverno-exceptions") and not found.accepts("payments")
    assert len(cluster.paths) == 1


async def test_a_refused_cluster_wide_list_falls_back_to_kyvernos_namespace() -> None:
    cluster = Cluster(cluster_wide=False)
    found = await read_acceptance(cluster)
    assert found.known and found.namespace == "kyverno-exceptions"
    assert found.source == "Deployment kyverno/kyverno-admission-controller"
    assert cluster.paths[1].startswith("/apis/apps/v1/namespaces/kyverno/deployments")


async def test_nothing_readable_says_why() -> None:
    class Closed:
        async def get_path(self, path: str) -> dict[str, Any]:
            raise ClusterForbidden("dev", "list", path)

    found = await read_acceptance(Closed())
    assert not found.known and "may not list" in found.reason
