"""After approval: expiry, reminders, renewal and the quarterly review (SPEC 2.3).

The scheduled jobs call these with the firing time; each is safe to run twice, because
every change is a conditional update that only one run wins (the scheduler also runs each
firing once across replicas). Cluster deletions are idempotent, so an exception whose
deletion failed (cluster down) simply stays `active` and is retried by the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.errors import BotError
from bot.exceptions.authority import SELF_REVIEW, Refused
from bot.exceptions.manifests import BOT, EXPIRES_AT, MANAGED_BY, REQUEST_ID
from bot.exceptions.model import ExceptionRequest, RequestId, Review, State
from bot.exceptions.ports import Event
from bot.exceptions.service import CLAIM_LEASE, ExceptionService, already
from bot.kinds import Family
from bot.policies import parse_time

log = logging.getLogger(__name__)

UNPOSTED_GRACE = timedelta(minutes=1)
TICKET_STATUS_TIMEOUT_S = 20.0
REVIEW_CHUNK = 20


class Lifecycle:
    def __init__(self, service: ExceptionService, *, close_transitions: Sequence[str]) -> None:
        self._svc = service
        self._store = service.store
        self._close_transitions = tuple(close_transitions)

    # -- expiry ------------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> list[ExceptionRequest]:
        """Remove what has expired; returns the requests this run expired."""
        expired: list[ExceptionRequest] = []
        for request in await self._store.requests([State.ACTIVE], expiring_before=now):
            try:
                if await self._end(request, State.EXPIRED, by=BOT, now=now):
                    expired.append(await self._svc.load(request.id))
            except BotError as err:
                # Stays active; the next sweep tries again (the cluster may be back by then).
                log.warning(
                    "could not remove an expired exception",
                    extra={"request": request.id, "error": err.user_message},
                )
        await self._sweep_orphans(now)
        for request in await self._store.unposted(created_before=now - UNPOSTED_GRACE):
            await self._svc.post(request)
        await self._release_interrupted(now)
        return expired

    async def _release_interrupted(self, now: datetime) -> None:
        """Approvals whose process died or lost its database part-way stay `approving`; once
        their claim has lapsed, they go back to `pending` and their message says so, so that
        anyone can finish them (Approve picks up the ticket and PolicyException made so far)."""
        for request in await self._store.requests([State.APPROVING]):
            claimed_at = request.claimed_at
            if claimed_at is None or claimed_at > now - CLAIM_LEASE:
                continue
            error = (
                f"The approval by <@{request.approver}> was interrupted before it finished "
                "(the bot restarted or lost its database). What it made so far is kept: "
                "click Approve to finish it."
            )
            if not await self._store.release_stale(request.id, claimed_at=claimed_at, error=error):
                continue  # it finished, or somebody took it over, meanwhile
            released = await self._svc.load(request.id)
            await self._audit(
                released,
                BOT,
                "exception.approve",
                outcome="interrupted",
                details={"approver": request.approver, "ticket": request.ticket},
            )
            await self._svc.notifier.refresh_request(released)

    async def _end(
        self, request: ExceptionRequest, state: State, *, by: str, now: datetime
    ) -> bool:
        """Delete the PolicyException, then record the end; False when another run did it."""
        if request.exception_name and request.exception_namespace:
            cluster = self._svc.cluster(request.environment)
            kind = next(
                (
                    k
                    for k in await cluster.kinds()
                    if k.spec.family is Family.EXCEPTION
                    and k.spec.group == (request.exception_group or "kyverno.io")
                ),
                None,
            )
            if kind is not None:
                await cluster.delete(
                    kind, request.exception_name, namespace=request.exception_namespace
                )
        if not await self._store.end(request.id, state, by=by, now=now):
            return False
        ended = await self._svc.load(request.id)
        event = Event.EXPIRED if state is State.EXPIRED else Event.REVOKED
        # The state change is audited first: what follows only tells people about it.
        await self._audit(
            ended, by, f"exception.{'expire' if state is State.EXPIRED else 'revoke'}"
        )
        await self._svc.notifier.refresh_request(ended)
        await self._svc.notifier.announce(ended, event, now=now)
        await self._svc.notifier.tell_requester(ended, event, now=now)
        verb = "expired" if state is State.EXPIRED else f"was revoked by {by}"
        await self._close_ticket(
            ended,
            f"The Kyverno PolicyException {ended.exception_namespace}/{ended.exception_name} "
            f"in {ended.environment} {verb} and was deleted (policy-bot request {ended.id}).",
        )
        return True

    async def _sweep_orphans(self, now: datetime) -> None:
        """Delete expired PolicyExceptions the bot labelled but no active request owns
        (e.g. the store was restored from an older backup)."""
        active = {r.id for r in await self._store.requests([State.ACTIVE])}
        for environment in self._svc.catalog.environments:
            cluster = self._svc.cluster(environment)
            try:
                kinds = [k for k in await cluster.kinds() if k.spec.family is Family.EXCEPTION]
                listings = await asyncio.gather(*(cluster.list_all(k) for k in kinds))
            except BotError as err:
                log.warning(
                    "cannot sweep exceptions", extra={"environment": environment, "error": str(err)}
                )
                continue
            for kind, objs in zip(kinds, listings, strict=True):
                for obj in objs:
                    meta = obj.get("metadata") or {}
                    labels = meta.get("labels") or {}
                    expires = parse_time((meta.get("annotations") or {}).get(EXPIRES_AT))
                    owner = labels.get(REQUEST_ID)
                    if labels.get(MANAGED_BY) != BOT or expires is None or expires > now:
                        continue
                    if owner in active:
                        continue
                    await cluster.delete(kind, str(meta["name"]), namespace=meta.get("namespace"))
                    await self._audit_raw(
                        environment,
                        f"{meta.get('namespace')}/{meta.get('name')}",
                        {"reason": "expired, no active request on record", "request": owner},
                    )

    async def _close_ticket(self, request: ExceptionRequest, text: str) -> None:
        key = request.ticket or request.jira_key
        tickets = self._svc.tickets
        if tickets is None or not key:
            return
        try:
            await tickets.comment(key, text)
            await tickets.transition(key, self._close_transitions)
        except BotError:
            log.warning("could not update the ticket", extra={"key": key}, exc_info=True)

    # -- reminders ---------------------------------------------------------------------------

    async def remind(self, now: datetime) -> list[tuple[ExceptionRequest, int]]:
        """Remind requesters of exceptions expiring within `remind_days_before` (once each)."""
        days = sorted(set(self._svc.settings.remind_days_before))
        if not days:
            return []
        horizon = now + timedelta(days=max(days))
        sent: list[tuple[ExceptionRequest, int]] = []
        for request in await self._store.requests([State.ACTIVE], expiring_before=horizon):
            if request.expires_at is None or request.expires_at <= now:
                continue
            left = request.expires_at - now
            due = [d for d in days if left <= timedelta(days=d)]
            if not due or not await self._store.mark_reminded(request.id, due, now=now):
                continue
            await self._svc.notifier.tell_requester(request, Event.REMINDER, now=now)
            await self._audit(request, BOT, "exception.remind", details={"days": due[0]})
            sent.append((request, due[0]))
        return sent

    async def renewal(self, rid: RequestId, *, user: str) -> ExceptionRequest:
        """The request a Renew button stands for (to prefill a new request from it)."""
        request = await self._svc.load(rid)
        if request.state not in (State.ACTIVE, State.EXPIRED, State.REVOKED):
            raise Refused(f"Request {rid} is {request.state.value}; only approved ones renew.")
        return request

    # -- quarterly review ---------------------------------------------------------------------

    async def start_review(self, now: datetime) -> list[Review]:
        """Post the quarterly review of every active exception, in messages of at most
        `REVIEW_CHUNK` exceptions (two blocks each keep a message inside Slack's 50)."""
        active = await self._store.requests([State.ACTIVE])
        statuses = await self._ticket_statuses(active)
        chunks = [active[i : i + REVIEW_CHUNK] for i in range(0, len(active), REVIEW_CHUNK)]
        reviews: list[Review] = []
        for chunk in chunks or [[]]:
            review_id = await self._store.create_review(
                [(r.id, statuses.get(r.id)) for r in chunk], now=now
            )
            review = await self._store.review(review_id)
            assert review is not None
            await self._svc.notifier.post_review(review, now=now)
            await self._audit_raw(
                None,
                f"review-{review_id}",
                {"exceptions": [r.id for r in chunk]},
                "exception.review",
            )
            reviews.append(await self._store.review(review_id) or review)
        return reviews

    async def _ticket_statuses(self, requests: Sequence[ExceptionRequest]) -> dict[str, str]:
        tickets = self._svc.tickets
        if tickets is None:
            return {}
        statuses: dict[str, str] = {}

        async def one(request: ExceptionRequest) -> None:
            key = request.ticket or request.jira_key
            if not key:
                return
            try:
                statuses[request.id] = (await tickets.get(key)).status or "unknown"
            except BotError:
                statuses[request.id] = "unknown (JIRA did not answer)"

        try:
            async with asyncio.timeout(TICKET_STATUS_TIMEOUT_S):
                for request in requests:
                    await one(request)
        except TimeoutError:
            log.warning("ticket states incomplete for the review")
        return statuses

    async def keep(self, rid: RequestId, *, user: str, review_id: int | None) -> ExceptionRequest:
        request = await self._svc.load(rid)
        await self._svc.authority.require(
            request, user, action="exception.keep", verb="review", self_refusal=SELF_REVIEW
        )
        if request.state is not State.ACTIVE:
            raise Refused(already(request))
        now = self._svc.clock.now()
        if review_id is not None and not await self._store.decide_review_item(
            review_id, rid, decision="kept", by=user, now=now
        ):
            raise Refused(f"Request {rid} was already reviewed in this report.")
        await self._store.mark_reviewed(rid, by=user, now=now)
        kept = await self._svc.load(rid)
        await self._audit(kept, user, "exception.keep", details={"review": review_id})
        await self._svc.notifier.tell_requester(kept, Event.KEPT, now=now)
        tickets = self._svc.tickets
        key = kept.ticket or kept.jira_key
        if tickets is not None and key:
            try:
                await tickets.comment(key, f"Kept at the quarterly review by {user} (Slack).")
            except BotError:
                log.warning("could not comment on the ticket", extra={"key": key}, exc_info=True)
        await self._refresh_review(review_id, now)
        return kept

    async def revoke(self, rid: RequestId, *, user: str, review_id: int | None) -> ExceptionRequest:
        """Delete the exception now (approvers only; revoking one's own is allowed)."""
        request = await self._svc.load(rid)
        await self._svc.authority.require(
            request, user, action="exception.revoke", verb="revoke", self_refusal=None
        )
        if request.state is not State.ACTIVE:
            raise Refused(already(request))
        now = self._svc.clock.now()
        if not await self._end(request, State.REVOKED, by=user, now=now):
            raise Refused(already(await self._svc.load(rid)))
        if review_id is not None:
            await self._store.decide_review_item(
                review_id, rid, decision="revoked", by=user, now=now
            )
        await self._refresh_review(review_id, now)
        return await self._svc.load(rid)

    async def _refresh_review(self, review_id: int | None, now: datetime) -> None:
        if review_id is None:
            return
        review = await self._store.review(review_id)
        if review is not None:
            await self._svc.notifier.refresh_review(review, now=now)

    # -- audit ----------------------------------------------------------------------------------

    async def _audit(
        self,
        request: ExceptionRequest,
        actor: str,
        action: str,
        *,
        outcome: str = "ok",
        details: dict[str, object] | None = None,
    ) -> None:
        await self._svc.audit.append(
            actor=actor,
            action=action,
            outcome=outcome,
            environment=request.environment,
            target=request.id,
            details={
                "state": request.state.value,
                "exception": request.exception_name,
                "ticket": request.ticket,
                **(details or {}),
            },
        )

    async def _audit_raw(
        self,
        environment: str | None,
        target: str,
        details: dict[str, object],
        action: str = "exception.expire",
    ) -> None:
        await self._svc.audit.append(
            actor=BOT,
            action=action,
            outcome="ok",
            environment=environment,
            target=target,
            details=details,
        )
