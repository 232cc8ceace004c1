"""User-facing sentences that are not tied to one renderer, kept in one place."""

from __future__ import annotations

SUBCOMMANDS = (
    "help",
    "status",
    "exception",
    "exceptions",
    "backup",
    "restore",
    "promote",
    "demote",
    "audit",
    "doctor",
)
UNEXPECTED = (
    ":boom: Something went wrong on the bot's side while answering `/policy {text}`. "
    "It has been logged; try again, and tell the platform team if it keeps happening."
)
CLICK_FAILED = (
    "Something went wrong on the bot's side, and it may not have happened. "
    "It has been logged; look at the message before trying again."
)
STORE_DOWN = (
    "The bot's database is not reachable right now, so this stopped before it was "
    "done. What was done so far is kept, and doing it again picks it up from there: try "
    "again in a couple of minutes."
)
NOT_ALLOWED = "Only {role} may do this: {who}."
NOT_YET = (
    "`/policy {sub}` is not available in this version of policy-bot yet. "
    "`/policy help` lists what is."
)
UNKNOWN = "There is no `/policy {sub}` subcommand."
DID_YOU_MEAN = "Did you mean `/policy {sub}`?"
SHARED_BY = "Shared by <@{user}>"
