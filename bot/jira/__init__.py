"""JIRA tickets for exceptions: the only package that talks to the `jira` library."""

from bot.jira.adapter import (
    JiraTickets,
    TicketDraft,
    TicketNotFound,
    TicketOutcomeUnknown,
    TicketsRejected,
    TicketsUnavailable,
    TicketTrackerError,
)

__all__ = [
    "JiraTickets",
    "TicketDraft",
    "TicketNotFound",
    "TicketOutcomeUnknown",
    "TicketTrackerError",
    "TicketsRejected",
    "TicketsUnavailable",
]
