"""``python -m bot playground``: start the local world and its page; Ctrl-C stops all of it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bot.playground.web import serving_page
from bot.playground.world import LADDER, running_world

FIRST_LINE = (
    "policy-bot playground: the whole bot against local clusters, Alertmanager and emulated "
    "Slack and JIRA, on loopback only.\n"
    "To run against real Slack: make run CONFIG=path/to/config.yaml"
)


STARTED = asyncio.Event()
"""Set once the page answers: a Ctrl-C before that cancels the start-up at once."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot playground", description=FIRST_LINE)
    parser.add_argument(
        "--environments",
        type=int,
        default=2,
        choices=range(1, len(LADDER) + 1),
        help="how many environments, from the end of the ladder dev, qac, staging, production",
    )
    parser.add_argument("--port", type=int, default=8080, help="the page's port on 127.0.0.1")
    parser.add_argument("--keep", type=Path, help="keep the world's files (SQLite, logs) here")
    return parser.parse_args(argv)


def _say(line: str) -> None:
    print(line, flush=True)


def _check_port(port: int) -> None:
    """Fail at once, not after the world started, when the page's port is taken."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"port {port} on 127.0.0.1 is taken ({exc}); try --port") from exc


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    started = time.monotonic()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = args.keep.resolve()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="policy-bot-playground-"))
    try:
        async with (
            running_world(workdir, environments=args.environments, progress=_say) as world,
            serving_page(world, args.port) as url,
        ):
            ready = time.monotonic() - started
            world.timings["page"] = ready
            STARTED.set()
            _say(f"ready in {ready:.1f} s: open {url}  (Ctrl-C stops everything)")
            await stop.wait()
            _say("stopping…")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    runner = asyncio.ensure_future(serve(args, stop))

    def on_signal() -> None:
        if stop.is_set() or not serving.is_set():
            runner.cancel()  # during start-up, or a second Ctrl-C: stop at once
        stop.set()

    serving = STARTED
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    with contextlib.suppress(asyncio.CancelledError):
        await runner


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _say(FIRST_LINE)
    _check_port(args.port)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(args))
    except Exception as exc:  # the world could not start: say why, without a traceback
        _say(f"the playground could not start: {type(exc).__name__}: {exc}")
        _say("(the clusters' binaries come from `make kube kyverno`, Alertmanager from Debian)")
        return 1
    _say("stopped")
    return 0
