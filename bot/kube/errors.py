"""What a cluster answered when a call did not succeed: the errors features catch.

Kept apart from the gateway, which imports the kubernetes SDK, so a feature that handles a
conflict or a missing object depends on these names only. (Unreachable clusters and RBAC
refusals are `bot.errors.ClusterUnavailable` and `ClusterForbidden`: people see those.)
"""

from __future__ import annotations


class NotFound(Exception):
    """The object does not exist (HTTP 404)."""


class Conflict(Exception):
    """The write lost a race or conflicts with another field manager (HTTP 409)."""


class Invalid(Exception):
    """The API server rejected the object (HTTP 422), e.g. by CRD schema validation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Expired(Exception):
    """The resourceVersion a watch started from is too old (HTTP 410 Gone): list again."""
