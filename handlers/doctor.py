"""`/policy doctor [ENV]`, and the Kyverno health line of the `/policy status` overview."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.doctor.service import DoctorService
from bot.errors import BotError
from handlers.listener import Answer, Invocation, Listeners, Subcommand
from handlers.render import doctor as render
from handlers.render import kit

ENVIRONMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class DoctorHandler:
    def __init__(self, doctor: DoctorService) -> None:
        self._doctor = doctor

    async def command(self, inv: Invocation) -> Answer:
        if not inv.args:
            return render.reports_message(await self._doctor.examine_all())
        return await self.answer(inv.args)

    async def answer(self, args: Sequence[str]) -> list[kit.Block]:
        """Blocks for `doctor` with `args`, which are validated here, never trusted."""
        if not args:
            return render.reports(await self._doctor.examine_all())
        if len(args) > 1 or not ENVIRONMENT.match(args[0]) or len(args[0]) > 63:
            shown = kit.escape(" ".join(args)[:60])
            raise BotError(
                f"`{shown}` is not an environment name. Usage: `/policy doctor [ENV]`; "
                f"environments: {', '.join(self._doctor.environments)}."
            )
        return render.report(await self._doctor.examine(args[0]))


def listeners(*, doctor: DoctorService) -> Listeners:
    handler = DoctorHandler(doctor)
    return Listeners(
        subcommands=(
            Subcommand(
                "doctor",
                "doctor [ENV]",
                "Kyverno health checked against the runbook: replicas, resources, exceptions, "
                "resource filters, Helm history",
                handler.command,
            ),
        )
    )
