"""Filing a request's JIRA ticket once, even when JIRA loses an answer and its search lags.

`Tickets.ensure` looks for the request's label before it creates, so a retried approval finds
the ticket an earlier attempt filed. That holds only once JIRA's search lists the ticket:
Cloud's search is eventually consistent, and an issue created a moment ago may not be found
yet. So a create whose answer was lost is remembered on the request (`ticket_tried_at`, in
the store: a restart keeps it), and until the search has had `search_lag_s` to catch up, a
retry that still does not find the ticket waits instead of filing a second one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from bot.errors import BotError
from bot.exceptions.model import ExceptionRequest, RequestId
from bot.exceptions.ports import Tickets
from bot.jira.adapter import TicketDraft, TicketOutcomeUnknown


class TicketNotListedYet(BotError):
    """An earlier create may have filed the ticket, and JIRA's search does not list it yet."""

    def __init__(self, tried_at: datetime, retry_at: datetime) -> None:
        super().__init__(
            f"JIRA has not yet listed the ticket the bot may have filed at {tried_at:%H:%M} "
            "UTC (its search lags behind new issues), and filing another now could make a "
            f"second one. Nothing was changed; try again after {retry_at:%H:%M:%S} UTC."
        )
        self.retry_at = retry_at


class TicketTries(Protocol):
    """Where a request's uncertain creates are remembered (the request store)."""

    async def set_ticket_tried(self, rid: RequestId, at: datetime) -> None: ...


async def file_ticket(
    tickets: Tickets,
    remember: TicketTries,
    request: ExceptionRequest,
    draft: TicketDraft,
    *,
    now: datetime,
) -> str:
    """The key of the request's ticket: found by its label, else filed, never filed twice."""
    tried = request.ticket_tried_at
    if tried is not None:
        retry_at = tried + timedelta(seconds=tickets.search_lag_s)
        if now < retry_at:
            found = await tickets.find(draft.fingerprint)
            if found is None:
                raise TicketNotListedYet(tried, retry_at)
            return found.key
    try:
        ticket = await tickets.ensure(draft)
    except TicketOutcomeUnknown:
        await remember.set_ticket_tried(request.id, now)
        raise
    return ticket.key
