"""Strip what the API server (or a controller) set on an object, keep what a person wrote.

A backed-up object must re-apply anywhere with `kubectl apply --server-side`, and two
backups of the same policies must be byte-identical whichever cluster they came from, so
everything that is per-cluster or per-write goes: status, identity and bookkeeping fields,
managedFields, the client-side-apply annotation, owner references (their uids exist only
in the source cluster; a restored object pointing at them would be garbage-collected).
Labels, annotations, finalizers and the whole spec stay. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
)
TOP_LEVEL_DROPPED = ("status",)


def clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` without server-set fields (the input is not modified)."""
    cleaned = {k: v for k, v in obj.items() if k not in TOP_LEVEL_DROPPED}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    for key in ("labels", "finalizers"):
        if not metadata.get(key):
            metadata.pop(key, None)
    cleaned["metadata"] = metadata
    return cleaned
