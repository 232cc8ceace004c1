"""Who may decide on an exception, checked in the service so every entry point gets it.

Approvers decide, and never on their own request (SPEC 2.3). A refusal is a `Refused`
error whose message says why, in the words of UX.md, and it is written to the audit trail
like every other decision.
"""

from __future__ import annotations

from bot.errors import BotError
from bot.exceptions.model import ExceptionRequest, RequestId
from bot.exceptions.ports import Audit, Roles
from bot.roles import Role


class Refused(BotError):
    """The person may not do this, or it cannot be done in the request's current state."""


class ApprovalFailed(BotError):
    """The approval ran into trouble (JIRA, the cluster); the request is pending again."""


class UnknownRequest(BotError):
    def __init__(self, rid: str) -> None:
        super().__init__(
            f"There is no exception request {rid}. It may belong to another installation "
            "of the bot; `/policy exceptions` lists the active ones."
        )


SELF_APPROVAL = "You requested this exception, so someone else must approve it."
SELF_DENIAL = "You requested this exception, so someone else must decide on it."
SELF_REVIEW = "You requested this exception, so someone else must review it."


class Authority:
    def __init__(self, *, roles: Roles, audit: Audit) -> None:
        self._roles = roles
        self._audit = audit

    async def require(
        self,
        request: ExceptionRequest,
        user: str,
        *,
        action: str,
        verb: str,
        self_refusal: str | None,
    ) -> None:
        """Raise Refused unless `user` is an approver (and not the requester, when refused)."""
        if not await self._roles.has(user, Role.APPROVER):
            await self.refused(
                user, action, request.id, request.environment, reason="not an approver"
            )
            raise Refused(
                f"Only approvers ({self._roles.describe(Role.APPROVER)}) can {verb} exceptions."
            )
        if self_refusal is not None and user == request.requester:
            await self.refused(user, action, request.id, request.environment, reason="own request")
            raise Refused(self_refusal)

    async def refused(
        self, user: str, action: str, rid: RequestId, environment: str | None, *, reason: str
    ) -> None:
        await self._audit.append(
            actor=user,
            action=action,
            outcome="refused",
            environment=environment,
            target=rid,
            details={"reason": reason},
        )
