"""Block Kit for backups, restores, evidence packs and the audit chain check. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.audit import VerifyReport
from bot.backup.bundle import SPEC_BY_DIR, EnvironmentBackup, ObjectKey
from bot.backup.catalog import CatalogEntry
from bot.backup.diff import EnvironmentDiff
from bot.backup.restore import PlanItem
from bot.backup.service import BackupReport, EvidenceReport, PlanView, RestoreOutcome
from bot.backup.targets import Stored
from bot.kinds import Family
from handlers.render import kit
from handlers.render.warnings import warnings_block

CONFIRM_ACTION = "restore_confirm"
LISTED_ITEMS = 40
Text = tuple[str, list[kit.Block]]  # (fallback text, blocks)


# -- backup ----------------------------------------------------------------------------


def progress(states: Mapping[str, EnvironmentBackup | None], *, by: str) -> Text:
    """The message updated while a backup runs: one line per environment."""
    lines = []
    for env, result in states.items():
        if result is None:
            lines.append(f":hourglass_flowing_sand: *{env}* reading…")
        elif result.ok:
            lines.append(f":white_check_mark: *{env}* {_counts(result)} ({result.seconds:.1f} s)")
        else:
            lines.append(f":x: *{env}* failed")
    done = sum(1 for r in states.values() if r is not None)
    title = f"Backup running · {done}/{len(states)} environments read"
    return title, [
        kit.section(f"*{title}*"),
        kit.lines_section(lines),
        kit.context([f"Started by {by}"]),
    ]


def summary(report: BackupReport, *, by: str) -> Text:
    """The reports-channel message once a backup finished (UX.md `/policy backup`): what
    failed, if anything, in the header; then what was read, what changed, where it went."""
    envs = report.environments
    failed_envs = [e.environment for e in envs if not e.ok]
    failed_targets = [s for s in report.stored if not s.ok]
    problems = [f"{env} failed" for env in failed_envs]
    problems += [f"{s.display} failed" for s in failed_targets]
    if not report.stored:
        problems.append("nothing stored")
    figures = f"{_n(len(envs), 'environment')} · {report.seconds:.1f} s"
    if problems:
        verdict = "incomplete: " + ", ".join(problems)
        title = f"⚠️ Backup {report.id} {verdict}"
    else:
        verdict = "complete"
        title = f"✅ Backup {report.id} complete · {figures}"
    blocks: list[kit.Block] = [kit.header(title)]
    lines = []
    for env in envs:
        if env.ok:
            extra = ""
            if env.missing_kinds:
                extra = f" · no CRD for {', '.join(_kind_name(d) for d in env.missing_kinds)}"
            lines.append(f"*{env.environment}* {_counts(env)}{extra}")
        else:
            lines.append(f":x: *{env.environment}* failed: {kit.escape(env.error or '')}")
    blocks.append(kit.lines_section(lines, more="… more environments not shown"))
    blocks.append(kit.section(_changes(report.diffs)))
    blocks.append(kit.section(_stored(report.stored)))
    blocks.append(
        kit.context([f"{figures} · started by {by} · bundle attached below as {report.id}.tar.gz"])
    )
    return f"Backup {report.id} {verdict} · {figures}", blocks


def answer(report: BackupReport, *, channel: str | None) -> list[kit.Block]:
    """The ephemeral answer to whoever ran `/policy backup`."""
    failed = [e.environment for e in report.environments if not e.ok]
    broken = [s for s in report.stored if not s.ok]
    icon = ":white_check_mark:" if report.ok else ":warning:"
    text = f"{icon} Backup {report.id} finished in {report.seconds:.1f} s"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if broken:
        text += f"; {len(broken)} target(s) failed"
    where = f" Summary and bundle in <#{channel}>." if channel else ""
    return [kit.section(text + "." + where)]


def _counts(env: EnvironmentBackup) -> str:
    policies = env.count(Family.LEGACY_POLICY.value, Family.CEL_POLICY.value)
    exceptions = env.count(Family.EXCEPTION.value)
    cleanup = env.count(Family.CLEANUP.value)
    parts = [_n(policies, "policy", "policies"), _n(exceptions, "exception")]
    if cleanup:
        parts.append(_n(cleanup, "cleanup policy", "cleanup policies"))
    for helm in env.helm:
        if helm.error is None:
            parts.append(f"{kit.escape(helm.release)} values (rev {helm.revision})")
        else:
            parts.append(f"{kit.escape(helm.release)} values: {kit.escape(helm.error)}")
    return " · ".join(parts)


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _kind_name(directory: str) -> str:
    spec = SPEC_BY_DIR.get(directory)
    return spec.kind if spec is not None else directory


def _changes(diffs: Sequence[EnvironmentDiff]) -> str:
    if not diffs:
        return "Changes: none recorded (no environment was read)."
    first = [d.environment for d in diffs if d.previous_id is None]
    compared = [d for d in diffs if d.previous_id is not None]
    parts: list[str] = []
    for diff in compared:
        for sign, items in (("+", diff.added), ("−", diff.removed), ("~", diff.changed)):
            if items:
                names = ", ".join(_short(k) for k in items[:5])
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                parts.append(f"{sign}{len(items)} ({diff.environment}: {names}{more})")
        if diff.helm_changed:
            parts.append(f"~helm values ({diff.environment}: {', '.join(diff.helm_changed)})")
    previous = sorted({d.previous_id for d in compared if d.previous_id})
    since = f"Changed since {', '.join(previous)}: " if previous else ""
    text = since + (" · ".join(parts) if parts else "nothing")
    if not compared:
        text = ""
    if first:
        text += ("\n" if text else "") + f"First backup of {', '.join(first)}."
    return kit.clip(text, 2900)


def _short(key: ObjectKey) -> str:
    return kit.escape(key.ref)


def _stored(stored: Sequence[Stored]) -> str:
    if not stored:
        return ":warning: No backup targets are configured (backup.targets): nothing was stored."
    parts = []
    for s in stored:
        if s.ok:
            parts.append(kit.escape(s.display) + ("" if s.changed else " (no change, no commit)"))
        else:
            parts.append(f":x: {kit.escape(s.display)} failed: {kit.escape(s.error or '')}")
    return "Stored: " + " · ".join(parts)


def backups_list(entries: Sequence[CatalogEntry], *, now: datetime) -> list[kit.Block]:
    if not entries:
        return [kit.section("No backups yet. `/policy backup` takes one now.")]
    lines = []
    for entry in entries:
        envs = entry.summary.get("environments") or {}
        state = " · ".join(
            f"{name} {e.get('objects', 0)}" + ("" if e.get("ok") else " :x:")
            for name, e in sorted(envs.items())
        )
        age = _age(now - entry.finished_at)
        lines.append(f"`{entry.id}` · {age} ago · {entry.trigger} · {state}")
    return [
        kit.header("Recent backups"),
        kit.lines_section(lines),
        kit.context(["Restore one with `/policy restore BACKUP_ID ENV` (admins)."]),
    ]


def _age(delta: object) -> str:
    seconds = int(getattr(delta, "total_seconds", lambda: 0)())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


# -- restore ---------------------------------------------------------------------------


def plan_title(view: PlanView) -> str:
    """`Restore b-… into production · dry run: would create 1 · change 1`: the verdict of the
    dry run, also the notification text of the plan."""
    record, counts = view.record, view.plan.counts
    if counts["created"] + counts["changed"] == 0:
        verdict = "nothing to restore"
    else:
        verdict = f"would create {counts['created']} · change {counts['changed']}"
    if counts["invalid"]:
        verdict += f" · {counts['invalid']} invalid"
    return f"Restore {record.backup_id} into {record.environment} · dry run: {verdict}"


def plan(view: PlanView) -> list[kit.Block]:
    """The dry run of a restore: what it would do first, the objects after, then Restore."""
    record, counts = view.record, view.plan.counts
    acts = counts["created"] + counts["changed"]
    blocks: list[kit.Block] = [
        kit.header(plan_title(view)),
        kit.section(
            f"{counts['created']} created · {counts['changed']} changed · "
            f"{counts['unchanged']} unchanged"
            + (f" · {counts['invalid']} invalid" if counts["invalid"] else "")
            + (f" · {counts['skipped']} skipped" if counts["skipped"] else "")
            + "\nObjects not in the backup are left alone: restore never deletes."
        ),
    ]
    listed = [i for i in view.plan.items if i.action in ("created", "changed", "invalid")]
    listed += [i for i in view.plan.items if i.action == "skipped"]
    if listed:
        lines = [_item_line(i) for i in listed[:LISTED_ITEMS]]
        more = len(listed) - LISTED_ITEMS
        if more > 0:
            lines.append(f"… and {more} more")
        blocks.append(kit.lines_section(lines, more="… and more (not shown)"))
    blocks += warnings_block(record.environment, view.plan.warnings)
    blocks.append(kit.context([f"From {kit.escape(record.source)} · plan {record.id}"]))
    if acts == 0:
        blocks.append(kit.section("Nothing to restore: the environment already matches."))
        return blocks
    note = (
        f":lock: *{record.environment}* is production: another admin must click Restore."
        if view.production
        else "Admins may apply it; the dry run stays valid for an hour."
    )
    blocks.append(kit.section(note))
    blocks.append(
        kit.actions(
            [
                kit.button(
                    f"Restore into {record.environment}",
                    action_id=CONFIRM_ACTION,
                    value=record.id,
                    style="danger",
                    confirm=kit.confirm(
                        f"Restore into {record.environment}?",
                        f"Backup {record.backup_id} overwrites {counts['changed']} and creates "
                        f"{counts['created']} objects in {record.environment} now; what the "
                        "backup does not hold is left alone.",
                        ok="Restore",
                        danger=True,
                    ),
                )
            ]
        )
    )
    return blocks


def _item_line(item: PlanItem) -> str:
    icon = {
        "created": ":new:",
        "changed": ":pencil2:",
        "invalid": ":x:",
        "skipped": ":fast_forward:",
    }.get(item.action, "")
    detail = f" — {kit.escape(item.detail)}" if item.detail else ""
    return f"{icon} {item.action} {item.kind} `{kit.escape(item.ref)}`{detail}"


def restored(outcome: RestoreOutcome, *, user: str) -> list[kit.Block]:
    record = outcome.record
    if outcome.already or outcome.result is None:
        who = f"<@{record.decided_by}>" if record.decided_by else "someone"
        return [
            kit.section(
                f"This restore was already {record.state} by {who}; nothing was done twice."
            )
        ]
    result = outcome.result
    icon = ":white_check_mark:" if result.ok else ":warning:"
    text = (
        f"{icon} <@{user}> restored {record.backup_id} into *{record.environment}*: "
        f"{_n(len(result.applied), 'object')} applied"
        + (f", {len(result.failed)} failed" if result.failed else "")
        + (f", {len(result.skipped)} skipped" if result.skipped else "")
        + f" · asked by <@{record.requested_by}>"
    )
    blocks = [kit.section(text)]
    if result.failed:
        blocks.append(
            kit.lines_section(
                [
                    f":x: {i.kind} `{kit.escape(i.ref)}`: {kit.escape(i.detail)}"
                    for i in result.failed
                ],
                more="… more failures in the audit trail",
            )
        )
    blocks += warnings_block(record.environment, result.warnings)
    return blocks


# -- evidence and audit ----------------------------------------------------------------


def evidence(report: EvidenceReport, *, by: str) -> Text:
    s = report.pack.summary
    title = f"Evidence pack {s['month']}"
    chain = (
        f"chain intact, head entry {s['head_id']} `{str(s['head_hash'])[:16]}…`"
        if s["chain_ok"] and s["head_id"]
        else (
            "chain intact (empty)" if s["chain_ok"] else ":x: chain BROKEN (see audit-chain.json)"
        )
    )
    lines = [
        f"{s['environments']} environments · {s['policies']} policies · "
        f"{s['exceptions']} exceptions in the register · {s['audit_entries']} audit entries",
        f"Audit trail: {chain}",
        _stored(report.stored),
    ]
    return title, [
        kit.header(title),
        kit.section("\n".join(lines)),
        kit.context([f"Requested by {by} · report.md attached below"]),
    ]


def verify(report: VerifyReport, *, anchors: int) -> list[kit.Block]:
    if report.ok:
        text = f":white_check_mark: {kit.escape(report.describe())}."
    else:
        text = (
            f":rotating_light: {kit.escape(report.describe())}. Entries from "
            f"{report.first_bad_id} on cannot be trusted; compare with the last evidence pack."
        )
    return [
        kit.section(text),
        kit.context([f"Checked against {anchors} chain heads published in evidence packs."]),
    ]
