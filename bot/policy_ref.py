"""How people name a policy in a command: a bare name, or one qualified by its kind. Pure.

One name can stand for several policies: Kyverno's own library ships `disallow-proc-mount`
as a ClusterPolicy and as a ValidatingPolicy, and a cluster migrating to the CEL types holds
both. So wherever a command takes a policy it also takes the kind, spelled as Kyverno's CRDs
spell it or by their short names (`kubectl get cpol`):

    NAME                    any kind, cluster-scoped (or `NAMESPACE/NAME`: a namespaced one)
    ValidatingPolicy/NAME   vpol/NAME, cpol/NAME, ivpol/NAME, mpol/NAME, gpol/NAME, dpol/NAME
    Policy/NAMESPACE/NAME   pol/NAMESPACE/NAME, nvpol/NAMESPACE/NAME, …

Kinds are matched case-insensitively, so `clusterpolicy/x` works too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import BotError
from bot.kinds import KIND_SPECS, Family

SHORT_NAMES: dict[str, str] = {
    "ClusterPolicy": "cpol",
    "Policy": "pol",
    "ValidatingPolicy": "vpol",
    "NamespacedValidatingPolicy": "nvpol",
    "ImageValidatingPolicy": "ivpol",
    "NamespacedImageValidatingPolicy": "nivpol",
    "MutatingPolicy": "mpol",
    "NamespacedMutatingPolicy": "nmpol",
    "GeneratingPolicy": "gpol",
    "NamespacedGeneratingPolicy": "ngpol",
    "DeletingPolicy": "dpol",
    "NamespacedDeletingPolicy": "ndpol",
}
"""The `shortNames` of Kyverno 1.19's policy CRDs."""

NAMESPACED: dict[str, bool] = {
    s.kind: s.namespaced
    for s in KIND_SPECS
    if s.family in (Family.LEGACY_POLICY, Family.CEL_POLICY)
}
_ALIASES: dict[str, str] = {
    **{kind.lower(): kind for kind in NAMESPACED},
    **{short: kind for kind, short in SHORT_NAMES.items()},
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAX_NAME = 253


class BadPolicyRef(BotError):
    pass


@dataclass(frozen=True)
class PolicyRef:
    """A policy as a person named it: its name, namespace if namespaced, kind if given."""

    name: str
    namespace: str | None = None
    kind: str | None = None

    @property
    def ref(self) -> str:
        """As reports and exceptions name it: `name` or `namespace/name`."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def accepts(self, kind: str) -> bool:
        """Whether a policy of `kind` (found under this name) is the one meant."""
        return self.kind is None or self.kind == kind

    def with_kind(self, kind: str) -> PolicyRef:
        return PolicyRef(self.name, self.namespace, kind)

    def __str__(self) -> str:
        return qualified(self.kind, self.ref) if self.kind else self.ref


def qualified(kind: str, ref: str) -> str:
    """The short, unambiguous way to type a policy: `vpol/NAME`, `pol/NAMESPACE/NAME`."""
    return f"{SHORT_NAMES.get(kind, kind)}/{ref}"


def parse_policy_ref(text: str) -> PolicyRef:
    """`text` as typed after a command; BadPolicyRef says what is wrong and how to write it."""
    parts = text.split("/")
    if len(parts) == 1:
        return PolicyRef(_name(text, text))
    kind = _ALIASES.get(parts[0].lower())
    if kind is None:
        if len(parts) == 2:
            return PolicyRef(_name(parts[1], text), _name(parts[0], text))
        raise BadPolicyRef(
            f"`{_shown(text)}` does not start with a policy kind. Write `NAME`, "
            "`NAMESPACE/NAME`, or the kind first, such as `vpol/NAME` or `pol/NAMESPACE/NAME`."
        )
    if NAMESPACED[kind]:
        if len(parts) != 3:
            raise BadPolicyRef(f"{kind} is namespaced: write `{SHORT_NAMES[kind]}/NAMESPACE/NAME`.")
        return PolicyRef(_name(parts[2], text), _name(parts[1], text), kind)
    if len(parts) != 2:
        raise BadPolicyRef(f"{kind} is cluster-wide: write `{SHORT_NAMES[kind]}/NAME`.")
    return PolicyRef(_name(parts[1], text), None, kind)


def _name(part: str, text: str) -> str:
    if not _NAME.match(part) or len(part) > MAX_NAME:
        raise BadPolicyRef(
            f"`{_shown(text)}` is not a policy name: Kubernetes names are lower case letters, "
            "digits, `-` and `.`."
        )
    return part


def _shown(text: str) -> str:
    """`text` clipped and safe inside inline code in mrkdwn: no backtick ends it early, and
    `<!channel>` or a forged link cannot work (the same escaping as the renderers')."""
    clipped = text[:60].replace("`", "'")
    return clipped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
