"""`python -m bot backup` and `python -m bot restore`: disaster recovery without Slack.

Both need only the config file and the clusters' kubeconfigs. The store is optional: when it
answers, the restore is written to the audit trail; when it does not (it may be part of the
disaster), the command still runs and says that it could not be audited.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

from bot import __version__
from bot.backup.bundle import Bundle, BundleError, backup_id, read_bundle
from bot.backup.collect import collect_environment
from bot.backup.targets import DirectoryTarget, TargetError
from bot.clock import Clock
from bot.errors import BotError
from bot.kinds import Family
from bot.kube.gateway import ClusterGateway
from bot.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
KEEP_EVERYTHING = 1_000_000


async def run_backup(settings: Settings, environment: str, to: Path, *, clock: Clock) -> int:
    # What the process made so far (modules, settings) lives until its exit: the collections
    # that reading thousands of objects sets off no longer walk it (10-20 ms).
    gc.freeze()
    names = [e.name for e in settings.environments]
    chosen = names if environment == "all" else [environment]
    if environment != "all" and settings.environment(environment) is None:
        print(f"error: no environment {environment!r}; known: {', '.join(names)}", file=sys.stderr)
        return EXIT_USAGE
    gateways = [ClusterGateway(e) for e in settings.environments if e.name in chosen]
    # The files are written as the pages arrive, while the clusters still answer.
    started = backup_id(clock.now())
    spool = DirectoryTarget(to, keep=KEEP_EVERYTHING).spool(f"{started}-{os.getpid()}")
    try:
        try:
            results = await asyncio.gather(
                *(
                    collect_environment(
                        g, helm_releases=settings.backup.helm_releases, on_page=spool.add
                    )
                    for g in gateways
                )
            )
        finally:
            await asyncio.gather(*(g.close() for g in gateways))
        now = clock.now()
        bundle = Bundle(backup_id(now), now, __version__, tuple(results))
        files = await asyncio.to_thread(lambda: bundle.files)
        stored = await asyncio.to_thread(spool.finish, bundle.id, files)
    except TargetError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except BaseException:
        await asyncio.to_thread(spool.discard)
        raise
    for env in results:
        if env.ok:
            policies = env.count(Family.LEGACY_POLICY.value, Family.CEL_POLICY.value)
            print(
                f"{env.environment}: {policies} policies, {env.count(Family.EXCEPTION.value)} "
                f"exceptions, {env.count(Family.CLEANUP.value)} cleanup policies, "
                f"{sum(1 for h in env.helm if h.error is None)} Helm values "
                f"({env.seconds:.1f} s)"
            )
            for helm in env.helm:
                if helm.error is not None:
                    print(f"  helm {helm.namespace}/{helm.release}: {helm.error}")
        else:
            print(f"{env.environment}: FAILED: {_plain(env.error or '')}", file=sys.stderr)
    print(f"backup {bundle.id} written to {stored.location}")
    return EXIT_OK if all(e.ok for e in results) else EXIT_FAILED


async def run_restore(
    settings: Settings, environment: str, source: Path, *, dry_run: bool, clock: Clock
) -> int:
    env = settings.environment(environment)
    if env is None:
        known = ", ".join(e.name for e in settings.environments)
        print(f"error: no environment {environment!r}; known: {known}", file=sys.stderr)
        return EXIT_USAGE
    # The backup path never loads what only a restore needs.
    from bot.backup.locate import locate_bundle
    from bot.backup.restore import apply_restore, plan_restore
    from bot.backup.service import load_path

    try:
        located = await asyncio.to_thread(locate_bundle, source)
        if located.note:
            print(located.note)

        files = await asyncio.to_thread(load_path, located.path)
        bundle = await asyncio.to_thread(read_bundle, files, environment=environment)
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    gateway = ClusterGateway(env)
    try:
        plan = await plan_restore(gateway, bundle, environment)
        counts = plan.counts
        print(
            f"dry run of {bundle.id} into {environment}: "
            + ", ".join(f"{n} {action}" for action, n in counts.items())
        )
        for item in plan.items:
            if item.action != "unchanged":
                detail = f" ({item.detail})" if item.detail else ""
                print(f"  {item.action:9} {item.kind} {item.ref}{detail}")
        _print_warnings(environment, plan.warnings)
        if dry_run:
            return EXIT_FAILED if counts["invalid"] else EXIT_OK
        result = await apply_restore(gateway, bundle, environment)
    except BotError as err:
        print(f"error: {_plain(err.user_message)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await gateway.close()
    print(
        f"restored {bundle.id} into {environment}: {len(result.applied)} applied, "
        f"{len(result.failed)} failed, {len(result.skipped)} skipped"
    )
    for item in result.failed:
        print(f"  FAILED {item.kind} {item.ref}: {item.detail}", file=sys.stderr)
    _print_warnings(environment, result.warnings)
    await _audit(
        settings, environment, bundle.id, len(result.applied), len(result.failed), clock=clock
    )
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_warnings(environment: str, warnings: tuple[tuple[str, int], ...]) -> None:
    for text, count in warnings:
        print(f"  warning from {environment} ({count} objects): {text}")


async def _audit(
    settings: Settings, environment: str, bid: str, applied: int, failed: int, *, clock: Clock
) -> None:
    from bot.store.audit_trail import AuditTrail
    from bot.store.database import open_database

    try:
        async with await open_database(settings.store.url) as db:
            await AuditTrail(db, clock=clock).append(
                actor="command-line",
                action="restore.apply",
                outcome="ok" if not failed else "partial",
                environment=environment,
                target=bid,
                details={"applied": applied, "failed": failed, "via": "cli"},
            )
    except Exception as err:  # the store may be part of the disaster; say so and go on
        print(
            f"warning: the restore could not be written to the audit trail: {err}", file=sys.stderr
        )


def _plain(text: str) -> str:
    return text.replace("*", "").replace("`", "")
