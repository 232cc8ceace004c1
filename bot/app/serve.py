"""Run the bot: build it with the real clock, serve until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from bot.app.services import build_services
from bot.app.web import build_app
from bot.clock import SYSTEM_CLOCK
from bot.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly."""
    services = await build_services(settings, clock=SYSTEM_CLOCK)
    app = build_app(services)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    # Start-up allocated most long-lived objects; freezing them keeps full collections,
    # which otherwise take 100+ ms mid-storm, off the webhook's answer time.
    gc.collect()
    gc.freeze()
    log.info(
        "policy-bot listening", extra={"port": settings.server.port, "mode": settings.slack.mode}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
