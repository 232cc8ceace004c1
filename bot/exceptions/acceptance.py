"""Where Kyverno accepts PolicyExceptions from, read from its admission controller.

An exception created in a namespace Kyverno does not watch, or while the feature is off, is
admitted with a warning and then silently ignored (reference: kyverno.md 3.1). The flags
live on the admission controller's container: `--enablePolicyException` and
`--exceptionNamespace` (`*` means every namespace). Kyverno 1.13 and later default to
"off", and an empty namespace means exceptions are ignored entirely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from bot.errors import BotError

ADMISSION_SELECTOR = "app.kubernetes.io/component=admission-controller"


class PathReader(Protocol):
    async def get_path(self, path: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Acceptance:
    """What the admission controller's flags say; `known` False when they could not be read."""

    known: bool
    enabled: bool = False
    namespace: str | None = None
    source: str = ""
    reason: str = ""

    def accepts(self, namespace: str) -> bool | None:
        """Whether an exception in `namespace` takes effect; None when unknown."""
        if not self.known:
            return None
        return self.enabled and self.namespace in ("*", namespace)


async def read_acceptance(
    cluster: PathReader, *, namespaces: Sequence[str] = ("kyverno",)
) -> Acceptance:
    """The flags of the Kyverno admission controller Deployment.

    Looked for cluster-wide first; least-privilege RBAC only lets the bot read Deployments in
    Kyverno's namespace, so a refused cluster-wide list falls back to `namespaces`.
    """
    selector = quote(ADMISSION_SELECTOR, safe="")
    paths = [f"/apis/apps/v1/deployments?labelSelector={selector}"] + [
        f"/apis/apps/v1/namespaces/{ns}/deployments?labelSelector={selector}" for ns in namespaces
    ]
    reason = "no Kyverno admission controller Deployment was found"
    for path in paths:
        try:
            listing = await cluster.get_path(path)
        except BotError as err:
            reason = _short(err.user_message)
            continue
        for deployment in listing.get("items") or ():
            found = acceptance_of(deployment)
            if found is not None:
                return found
        if path == paths[0]:
            break  # the cluster-wide list was allowed and found nothing
    return Acceptance(known=False, reason=reason)


def acceptance_of(deployment: Mapping[str, Any]) -> Acceptance | None:
    """The flags of one Deployment, or None when none of its containers runs Kyverno."""
    meta = deployment.get("metadata") or {}
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in containers.get("containers") or ():
        args = [str(a) for a in (container.get("args") or ())]
        image = str(container.get("image") or "")
        if "kyverno" not in image and not any(a.lstrip("-").startswith("exception") for a in args):
            continue
        flags = parse_flags(args)
        enabled = flags.get("enablePolicyException", "false").lower() in ("true", "1", "t")
        namespace = flags.get("exceptionNamespace") or None
        return Acceptance(
            known=True,
            enabled=enabled and namespace is not None,
            namespace=namespace,
            source=f"Deployment {meta.get('namespace', '?')}/{meta.get('name', '?')}",
        )
    return None


def parse_flags(args: Sequence[str]) -> dict[str, str]:
    """Go `flag` syntax: `-name`, `--name`, `--name=value`, `--name value`."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        if not sep:
            following = args[i] if i < len(args) else None
            if name.startswith("enable") or following is None or following.startswith("-"):
                value = "true"  # a boolean flag given alone
            else:
                value = following
                i += 1
        flags[name] = value
    return flags


def _short(text: str) -> str:
    return text if len(text) <= 160 else text[:159] + "…"
