"""`python -m soak`: SOAK_MINUTES (10) of flows under faults, then the invariants.

SOAK_FAULTS (comma-separated kinds of `soak.faults.RATES`) limits the faults to those.
SOAK_KEEP=DIR keeps the world's files (the replicas' logs among them) in DIR, which must not exist.
SOAK_SEED picks the fault schedule (random when unset; printed, so a run can be repeated).
Exits 1 when an invariant is violated. Not a test: `make test` does not run it.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bot.alerts.tables import alert_messages, alert_notifications
from bot.notices.tables import PENDING, notices
from soak import faults, invariants, users
from soak.stage import Stage, running_stage
from soak.tally import Tally

SETTLE_S = 240.0
"""How long the world may take to catch up once the faults are over (back-offs, retries)."""


async def quiet(stage: Stage, deadline: float) -> None:
    """Wait until neither outbox (nor the alert inbox) holds anything pending."""
    while time.monotonic() < deadline:
        try:
            async with stage.database.connect() as conn:
                notes = await conn.scalar(
                    sa.select(sa.func.count()).where(notices.c.state == PENDING)
                )
                alerts = await conn.scalar(
                    sa.select(sa.func.count()).where(alert_messages.c.pending.is_(True))
                )
                inbox = await conn.scalar(
                    sa.select(sa.func.count()).where(alert_notifications.c.applied.is_(False))
                )
            busy = (notes or 0) + (alerts or 0) + (inbox or 0)
        except Exception as exc:  # the store was just restarted: ask again
            print(f"  waiting for the outboxes: {exc!s:.120}", flush=True)
            busy = 1
        if not busy:
            return
        await asyncio.sleep(2)


async def soak(minutes: float, seed: int, kinds: list[str], workdir: Path) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    script = users.Script()
    plan = faults.schedule(rng, minutes, kinds)
    print(f"fault schedule (seed {seed}):")
    print("\n".join(f.line() for f in plan), flush=True)
    async with running_stage(workdir, rng) as stage:
        print(f"world ready; soaking for {minutes:g} min", flush=True)
        stop = asyncio.Event()
        started = stage.started = time.monotonic()
        people = [
            asyncio.create_task(users.person(stage, script, tally, kind, stop))
            for kind in users.FLOWS
        ]
        indexer = asyncio.create_task(faults.index_jira(stage, stop))
        schedule = asyncio.create_task(faults.run_schedule(stage, plan, tally, started))
        await asyncio.sleep(minutes * 60)
        await schedule  # the last held fault ends
        stop.set()
        await asyncio.gather(*people, indexer)
        print("flows stopped; healing and letting the bot catch up …", flush=True)
        await faults.heal(stage)
        deadline = time.monotonic() + SETTLE_S
        await users.settle_decisions(stage, script, deadline)
        await quiet(stage, deadline)
        await invariants.check_all(stage, script, tally)
    return tally


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "10"))
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1 << 31))
    kinds = [k.strip() for k in os.environ.get("SOAK_FAULTS", "").split(",") if k.strip()]
    kinds = kinds or list(faults.RATES)
    unknown = set(kinds) - set(faults.RATES)
    if unknown:
        print(f"SOAK_FAULTS: unknown {sorted(unknown)}; known: {', '.join(faults.RATES)}")
        return 2
    began = time.monotonic()
    keep = os.environ.get("SOAK_KEEP")
    if keep:  # the replicas' logs, the backups, PostgreSQL's and the cluster's files stay
        workdir = Path(keep)
        workdir.mkdir(parents=True, exist_ok=False)
        tally = asyncio.run(soak(minutes, seed, kinds, workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="policy-bot-soak-") as tmp:
            tally = asyncio.run(soak(minutes, seed, kinds, Path(tmp)))
    print(tally.report(seed=seed, minutes=minutes, took_s=time.monotonic() - began))
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
