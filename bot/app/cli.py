"""Command line (SPEC 3.1): run the bot, check a config, migrate the store, verify the audit
trail, back up and restore without Slack."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.clock import SYSTEM_CLOCK
from bot.promotion.config import load_promotion_config
from bot.settings import Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="policy-bot: Slack ChatOps for Kyverno"
    )
    parser.add_argument("--config", type=Path, help="config file (default: $POLICY_BOT_CONFIG)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the bot (the default)")
    run.add_argument("--config", type=Path, dest="sub_config", help=argparse.SUPPRESS)
    check = sub.add_parser(
        "check-config", help="validate the config file and reach each dependency"
    )
    check.add_argument("--config", type=Path, dest="sub_config", help="config file")
    migrate = sub.add_parser(
        "migrate", help="bring the store's schema up to date (the bot also does it at start)"
    )
    migrate.add_argument("--config", type=Path, dest="sub_config", help="config file")
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit trail's hash chain")
    verify.add_argument("--config", type=Path, dest="sub_config", help="config file")
    backup = sub.add_parser(
        "backup", help="back up an environment (or all) into a directory, without Slack"
    )
    backup.add_argument("--config", type=Path, dest="sub_config", help="config file")
    backup.add_argument("--env", required=True, help="environment name, or `all`")
    backup.add_argument(
        "--to", type=Path, required=True, help="directory; the bundle goes to DIR/<backup id>/"
    )
    restore = sub.add_parser(
        "restore", help="restore a backup bundle into an environment, without Slack"
    )
    restore.add_argument("--config", type=Path, dest="sub_config", help="config file")
    restore.add_argument("--env", required=True, help="environment to restore into")
    restore.add_argument(
        "--from",
        type=Path,
        required=True,
        dest="source",
        help=(
            "a bundle directory (holding MANIFEST), its .tar.gz, or the folder backups were "
            "written to (its newest bundle is used, and named)"
        ),
    )
    restore.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    config = getattr(args, "sub_config", None) or args.config or env.get("POLICY_BOT_CONFIG")
    if not config:
        print("error: give --config PATH or set POLICY_BOT_CONFIG", file=sys.stderr)
        return EXIT_USAGE
    if args.command in ("backup", "restore", "migrate"):
        env = without_slack(env)
    try:
        settings = load_settings(Path(config), env)
        load_promotion_config(settings)  # its section is validated by its own module
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check-config":
        return asyncio.run(_check(settings))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "audit":
        return asyncio.run(_verify(settings))
    if args.command == "backup":
        from bot.app.backup_cli import run_backup

        return asyncio.run(run_backup(settings, args.env, args.to, clock=SYSTEM_CLOCK))
    if args.command == "restore":
        from bot.app.backup_cli import run_restore

        return asyncio.run(
            run_restore(settings, args.env, args.source, dry_run=args.dry_run, clock=SYSTEM_CLOCK)
        )
    from bot.app import serve

    asyncio.run(serve(settings))
    return EXIT_OK


def without_slack(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with placeholder Slack secrets where unset: backup and restore never call Slack,
    and must work in a disaster where only the config and a kubeconfig are at hand."""
    placeholders = {
        "SLACK_BOT_TOKEN": "xoxb-not-used-by-the-command-line",
        "SLACK_SIGNING_SECRET": "not-used-by-the-command-line",
        "SLACK_APP_TOKEN": "xapp-not-used-by-the-command-line",
    }
    return {**placeholders, **{k: v for k, v in env.items() if v}}


async def _check(settings: Settings) -> int:
    from bot.app.checks import check_dependencies

    print("config: ok")
    results = await check_dependencies(settings)
    for name, problem in results:
        print(f"{name}: {problem or 'ok'}")
    return EXIT_OK if all(problem is None for _, problem in results) else EXIT_FAILED


async def _migrate(settings: Settings) -> int:
    from bot.store import open_database, schema_state
    from bot.store.errors import StoreError, StoreUnavailable

    try:
        async with await open_database(settings.store.url) as db:
            print(f"schema before: {(await schema_state(db)).describe()}")
            applied = await db.migrate(clock=SYSTEM_CLOCK)
            print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
            print(f"schema after: {(await schema_state(db)).describe()}")
    except StoreUnavailable as err:
        print(f"store unavailable: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as err:  # SchemaTooNew, MigrationFailed
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


async def _verify(settings: Settings) -> int:
    from bot.store.audit_trail import verify_audit_trail
    from bot.store.errors import StoreError, StoreUnavailable

    try:
        report = await verify_audit_trail(settings.store.url, clock=SYSTEM_CLOCK)
    except StoreUnavailable as err:
        print(f"store unavailable: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    if report.ok:
        print(report.describe())
        return EXIT_OK
    print(report.describe(), file=sys.stderr)
    return EXIT_FAILED
