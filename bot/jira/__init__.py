"""JIRA tickets for exceptions: the only package that talks to the `jira` library."""

from bot.jira.adapter import (
    JiraTickets,
    TicketDraft,
    TicketNotFound,
    TicketsRejected,
    TicketsUnavailable,
    TicketTrackerError,
)

__all__ = [
    "JiraTickets",
    "TicketDraft",
    "TicketNotFound",
    "TicketTrackerError",
    "TicketsRejected",
    "TicketsUnavailable",
]
