"""Exception requests and decisions: file, approve, deny (SPEC 2.3).

Approval is the part that must never happen twice nor half:

1. who: an approver, not the requester (`Authority`);
2. claim: one conditional UPDATE moves the request from `pending` to `approving`; a second
   click or a second approver loses and is told who has it;
3. ticket: the stored key, else the requester's key (verified to exist), else the ticket
   carrying the request's fingerprint label, else a new one; its key is stored at once;
4. PolicyException: created in `exceptions.namespace`; a 409 (AlreadyExists) means an
   earlier attempt made it, which is accepted only when its request-id label is ours;
5. active: the request, the approval message, the requester, a comment on the ticket.

Trouble in 3 or 4 that may pass (JIRA or the cluster unreachable, RBAC) puts the request
back to `pending` with the error shown on its message, before anything is created in the
cluster; Approve works again. Trouble that will not pass (the given ticket does not exist,
the name is taken by someone else's object) marks it `failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import NoReturn

from bot.clock import Clock
from bot.errors import BotError, UnknownEnvironment
from bot.exceptions.authority import (
    SELF_APPROVAL,
    SELF_DENIAL,
    ApprovalFailed,
    Authority,
    Refused,
    UnknownRequest,
)
from bot.exceptions.catalog import Catalog
from bot.exceptions.manifests import (
    CEL_GROUP,
    EXPIRES_AT,
    exception_name,
    is_ours,
    policy_exception,
)
from bot.exceptions.model import (
    Draft,
    ExceptionRequest,
    PolicyInfo,
    RequestId,
    State,
    new_request_id,
)
from bot.exceptions.ports import Audit, Event, Notifier, Roles, Tickets
from bot.exceptions.store import DuplicateRequestId, RequestStore
from bot.exceptions.ticketing import file_ticket
from bot.exceptions.validation import check_against_policy
from bot.jira.adapter import TicketDraft, TicketNotFound
from bot.kinds import Family, Kind
from bot.kube.errors import Conflict, Invalid, NotFound
from bot.policies import parse_time
from bot.ports.cluster import Cluster
from bot.settings import ExceptionSettings
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
"""An approval that has not finished after this long (its replica died) may be taken over."""
MIN_REASON = 3
MAX_REASON = 1000

JIRA_NOT_CONFIGURED = (
    "JIRA is not configured (no `jira` section in the bot's config), so exceptions cannot be "
    "approved: the runbook requires a ticket for every exception. Ask the platform team to "
    "configure JIRA; the request stays pending and Approve will work then."
)


class Unfulfillable(BotError):
    """The request can never be approved as it stands (it is marked failed)."""


class ExceptionService:
    def __init__(
        self,
        *,
        settings: ExceptionSettings,
        store: RequestStore,
        clusters: Mapping[str, Cluster],
        tickets: Tickets | None,
        roles: Roles,
        audit: Audit,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.catalog = Catalog(clusters)
        self._clusters = dict(clusters)
        self.tickets = tickets
        self.authority = Authority(roles=roles, audit=audit)
        self.audit = audit
        self.notifier = notifier
        self.clock = clock

    # -- reading -------------------------------------------------------------------------

    async def load(self, rid: RequestId) -> ExceptionRequest:
        request = await self.store.get(rid)
        if request is None:
            raise UnknownRequest(rid)
        return request

    def cluster(self, environment: str) -> Cluster:
        cluster = self._clusters.get(environment)
        if cluster is None:
            raise UnknownEnvironment(environment, list(self._clusters))
        return cluster

    # -- filing ----------------------------------------------------------------------------

    async def verify(self, draft: Draft) -> PolicyInfo:
        """The policy the draft names, checked live; InputErrors when it or a rule is not there."""
        policy = await self.catalog.find(draft.environment, draft.policy)
        check_against_policy(draft, policy)
        return policy

    async def file(
        self, draft: Draft, policy: PolicyInfo, *, requester: str, channel: str | None
    ) -> ExceptionRequest:
        """Store the request as pending, post it for approval and tell the requester."""
        now = self.clock.now()
        for _ in range(5):
            request = ExceptionRequest(
                id=new_request_id(),
                state=State.PENDING,
                environment=draft.environment,
                policy=policy.ref,
                policy_kind=policy.kind,
                scope=draft.scope,
                justification=draft.justification,
                days=draft.days,
                requester=requester,
                created_at=now,
                requester_channel=channel,
                jira_key=draft.jira_key,
                renewal_of=draft.renewal_of,
            )
            try:
                await self.store.insert(request)
                break
            except DuplicateRequestId:
                continue
        else:  # pragma: no cover - five collisions of 32 random bits
            raise BotError("Could not allocate a request id; try again.")
        await self.audit.append(
            actor=requester,
            action="exception.request",
            outcome="ok",
            environment=request.environment,
            target=request.id,
            details={
                "policy": request.policy,
                "kind": request.policy_kind,
                "rules": list(request.scope.rules),
                "namespaces": list(request.scope.namespaces),
                "kinds": list(request.scope.kinds),
                "names": list(request.scope.names),
                "days": request.days,
                "jira_key": request.jira_key,
                "renewal_of": request.renewal_of,
            },
        )
        await self.post(request)
        await self.notifier.tell_requester(request, Event.FILED, now=now)
        return request

    async def post(self, request: ExceptionRequest) -> None:
        """Have the request posted to the approvals channel (a request stored before the
        outbox carried these is posted by the sweep; a second call posts nothing twice)."""
        await self.notifier.post_request(request)

    # -- approving ------------------------------------------------------------------------

    async def approve(self, rid: RequestId, *, approver: str) -> ExceptionRequest:
        request = await self.load(rid)
        await self.authority.require(
            request,
            approver,
            action="exception.approve",
            verb="approve",
            self_refusal=SELF_APPROVAL,
        )
        if not request.state.open:
            await self._refuse_decided(request, approver, "exception.approve")
        if self.tickets is None:
            await self.authority.refused(
                approver, "exception.approve", rid, request.environment, reason="no jira"
            )
            raise Refused(JIRA_NOT_CONFIGURED)
        now = self.clock.now()
        if not await self.store.claim(rid, approver=approver, now=now, lease=CLAIM_LEASE):
            await self._refuse_decided(await self.load(rid), approver, "exception.approve")
        try:
            return await self._fulfil(rid, approver=approver, now=now)
        except (ApprovalFailed, Refused):
            raise
        except StoreUnavailable:
            raise  # nothing to release in a store that is down: the claim's lease lapses
        except Exception:
            log.exception("approval failed unexpectedly", extra={"request": rid})
            await self._release(
                rid,
                approver,
                "The bot hit an unexpected error while approving (it has been logged). "
                "Nothing was created; click Approve to try again.",
            )
            raise

    async def _fulfil(self, rid: RequestId, *, approver: str, now: datetime) -> ExceptionRequest:
        request = await self.load(rid)
        expires_at = now + timedelta(days=request.days)
        try:
            ticket = await self._ticket(request, expires_at)
            group, expires_at = await self._create_exception(
                request, ticket=ticket, approver=approver, expires_at=expires_at
            )
        except Unfulfillable as err:
            await self.store.fail(rid, approver=approver, now=now, error=err.user_message)
            failed = await self.load(rid)
            await self._audit_decision(failed, approver, "exception.approve", "failed")
            await self.notifier.refresh_request(failed)
            await self.notifier.tell_requester(failed, Event.FAILED, now=now)
            raise Refused(f"{err.user_message} The request is marked failed.") from None
        except BotError as err:
            await self._release(rid, approver, err.user_message)
            raise ApprovalFailed(
                f"{err.user_message} The request is still pending: click Approve to try again."
            ) from None
        activated = await self.store.activate(
            rid,
            approver=approver,
            now=now,
            expires_at=expires_at,
            name=exception_name(request),
            namespace=self.settings.namespace,
            group=group,
        )
        if not activated:
            # This attempt outlived its lease and another approver took the claim over; that
            # run finds the same ticket and object and reports, so nothing is said twice.
            log.warning("approval claim was taken over", extra={"request": rid})
            return await self.load(rid)
        active = await self.load(rid)
        # The state change is audited first: what follows only tells people about it.
        await self._audit_decision(active, approver, "exception.approve", "ok")
        await self.notifier.refresh_request(active)
        await self.notifier.tell_requester(active, Event.APPROVED, now=now)
        await self._comment(
            active,
            f"Approved in Slack by {approver} (policy-bot request {rid}). PolicyException "
            f"{active.exception_namespace}/{active.exception_name} was created in "
            f"{active.environment}; it expires {expires_at:%Y-%m-%d %H:%M} UTC.",
        )
        return active

    async def _ticket(self, request: ExceptionRequest, expires_at: datetime) -> str:
        if request.ticket:
            return request.ticket
        assert self.tickets is not None
        if request.jira_key:
            try:
                found = await self.tickets.get(request.jira_key)
            except TicketNotFound as err:
                raise Unfulfillable(
                    f"The JIRA issue {request.jira_key} given with the request does not exist "
                    f"({err.user_message}) Ask the requester to file a new request."
                ) from None
            key = found.key
        else:
            draft = self._draft(request, expires_at)
            key = await file_ticket(self.tickets, self.store, request, draft, now=self.clock.now())
        await self.store.set_ticket(request.id, key)
        return key

    def _draft(self, request: ExceptionRequest, expires_at: datetime) -> TicketDraft:
        scope = request.scope
        lines = [
            f"Kyverno PolicyException requested in Slack (policy-bot request {request.id}).",
            "",
            f"Environment: {request.environment}",
            f"Policy: {request.policy} ({request.policy_kind})",
            f"Rules: {', '.join(scope.rules) or 'all'}",
            f"Namespaces: {', '.join(scope.namespaces) or 'all'}",
            f"Kinds: {', '.join(scope.kinds)}",
            f"Names: {', '.join(scope.names) or 'all'}",
            f"Duration: {request.days} days, until {expires_at:%Y-%m-%d} (UTC)",
            f"Requested by Slack user {request.requester}",
            "",
            "Justification:",
        ]
        return TicketDraft(
            fingerprint=request.fingerprint,
            summary=(
                f"Kyverno exception: {request.policy} in {request.environment} ({request.id})"
            ),
            description="\n".join(lines),
            quoted=request.justification,
            labels=("kyverno-exception",),
            due=expires_at.date(),
        )

    async def _create_exception(
        self, request: ExceptionRequest, *, ticket: str, approver: str, expires_at: datetime
    ) -> tuple[str, datetime]:
        """Create the PolicyException; (API group, its expiry). Idempotent across retries."""
        try:
            cluster = self.cluster(request.environment)
        except UnknownEnvironment:
            raise Unfulfillable(
                f"Environment {request.environment} is no longer configured."
            ) from None
        group, obj = policy_exception(
            request,
            namespace=self.settings.namespace,
            ticket=ticket,
            approver=approver,
            expires_at=expires_at,
        )
        kind = await self._exception_kind(cluster, group)
        name = obj["metadata"]["name"]
        namespace = self.settings.namespace
        try:
            await cluster.create(kind, obj)
        except Conflict:
            # AlreadyExists: an earlier attempt made it (retried after a failure or a
            # takeover), or someone else's object holds the name; the label tells which.
            existing = await cluster.get(kind, name, namespace=namespace)
            expires_at = self._accept_existing(existing, request, expires_at)
        except Invalid as err:
            raise Unfulfillable(
                f"{request.environment} rejected the PolicyException: {err.message[:300]}"
            ) from None
        except NotFound:
            raise BotError(
                f"The namespace {namespace} does not exist in {request.environment}; create it "
                "(it is `exceptions.namespace` in the bot's config, and Kyverno's "
                "`--exceptionNamespace`)."
            ) from None
        return group, expires_at

    def _accept_existing(
        self, existing: dict[str, object] | None, request: ExceptionRequest, expires_at: datetime
    ) -> datetime:
        """An object of our name already exists: fine when an earlier attempt made it."""
        name = exception_name(request)
        if existing is None or not is_ours(existing, request):
            raise Unfulfillable(
                f"A PolicyException {self.settings.namespace}/{name} already exists in "
                f"{request.environment} and was not created for this request."
            )
        meta = existing.get("metadata")
        annotations = (meta.get("annotations") if isinstance(meta, dict) else None) or {}
        log.info("PolicyException already created by an earlier attempt", extra={"name": name})
        return parse_time(annotations.get(EXPIRES_AT)) or expires_at

    async def _exception_kind(self, cluster: Cluster, group: str) -> Kind:
        kinds = await cluster.kinds()
        for kind in kinds:
            if kind.spec.family is Family.EXCEPTION and kind.spec.group == group:
                return kind
        needs = "Kyverno 1.19 or later" if group == CEL_GROUP else "Kyverno 1.13 or later"
        raise Unfulfillable(
            f"{cluster.name} does not serve {group} PolicyExceptions ({needs} installs them)."
        )

    async def _release(self, rid: RequestId, approver: str, error: str) -> None:
        await self.store.release(rid, approver=approver, error=error)
        request = await self.load(rid)
        await self.notifier.refresh_request(request)
        await self.audit.append(
            actor=approver,
            action="exception.approve",
            outcome="error",
            environment=request.environment,
            target=rid,
            details={"error": error[:500], "ticket": request.ticket},
        )

    # -- denying ----------------------------------------------------------------------------

    async def check_can_deny(self, rid: RequestId, *, user: str) -> ExceptionRequest:
        """Before the reason modal opens: is `user` allowed, is the request still open?"""
        request = await self.load(rid)
        await self.authority.require(
            request, user, action="exception.deny", verb="deny", self_refusal=SELF_DENIAL
        )
        if request.state is not State.PENDING:
            await self._refuse_decided(request, user, "exception.deny")
        return request

    async def deny(self, rid: RequestId, *, approver: str, reason: str) -> ExceptionRequest:
        request = await self.check_can_deny(rid, user=approver)
        now = self.clock.now()
        if not await self.store.deny(rid, approver=approver, now=now, reason=reason):
            await self._refuse_decided(await self.load(rid), approver, "exception.deny")
        denied = await self.load(rid)
        await self._audit_decision(denied, approver, "exception.deny", "ok", reason=reason)
        await self.notifier.refresh_request(denied)
        await self.notifier.tell_requester(denied, Event.DENIED, now=now)
        if request.jira_key:
            await self._comment(
                denied, f"Exception request {rid} was denied in Slack by {approver}.", reason
            )
        return denied

    # -- shared ------------------------------------------------------------------------------

    async def _refuse_decided(self, request: ExceptionRequest, user: str, action: str) -> NoReturn:
        await self.audit.append(
            actor=user,
            action=action,
            outcome="duplicate",
            environment=request.environment,
            target=request.id,
            details={"state": request.state.value, "by": request.approver},
        )
        raise Refused(already(request))

    async def _comment(self, request: ExceptionRequest, text: str, quoted: str = "") -> None:
        key = request.ticket or request.jira_key
        if self.tickets is None or not key:
            return
        try:
            await self.tickets.comment(key, text, quoted=quoted)
        except BotError:
            log.warning("could not comment on the ticket", extra={"key": key}, exc_info=True)

    async def _audit_decision(
        self,
        request: ExceptionRequest,
        user: str,
        action: str,
        outcome: str,
        *,
        reason: str | None = None,
    ) -> None:
        details: dict[str, object] = {
            "state": request.state.value,
            "ticket": request.ticket,
            "exception": request.exception_name,
            "expires_at": request.expires_at,
        }
        if reason is not None:
            details["reason"] = reason
        if request.error:
            details["error"] = request.error[:500]
        await self.audit.append(
            actor=user,
            action=action,
            outcome=outcome,
            environment=request.environment,
            target=request.id,
            details=details,
        )


def already(request: ExceptionRequest) -> str:
    """Why a decision cannot be made now, from the request's state."""
    by = f" by <@{request.approver}>" if request.approver else ""
    if request.state is State.APPROVING:
        return f"Request {request.id} is being approved{by} right now."
    if request.state is State.ACTIVE:
        return f"Request {request.id} was already approved{by}."
    if request.state is State.DENIED:
        return f"Request {request.id} was already denied{by}."
    if request.state is State.FAILED:
        return f"Request {request.id} failed and cannot be approved: {request.error or ''}"
    if request.state in (State.EXPIRED, State.REVOKED):
        return f"Request {request.id} has {request.state.value}; file a new request instead."
    return f"Request {request.id} is {request.state.value}."
