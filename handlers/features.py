"""Every capability's Slack entry points, in the order `/policy help` lists them.

Each entry registers its actions, views and jobs on the Bolt app and returns its `/policy`
subcommands; the composition root calls them all once.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers import backup, doctor, exceptions, promotion, status
from handlers.commands import Subcommand

Feature = Callable[[AsyncApp, Services], list[Subcommand]]

FEATURES: tuple[Feature, ...] = (
    status.register,
    exceptions.register,
    doctor.register,
    promotion.register,
    backup.register,
)
