"""The monthly evidence pack for auditors (SPEC 2.6).

One directory of plain files an auditor can read without the bot:

    report.md          the readable report: what ran where, violations, exceptions, audit
    policies.json      every policy per environment with its mode per rule and readiness
    violations.json    result totals per environment, per policy, failing namespaces
    exceptions.json    the exception register (ticket, requester, approver, expiry)
    audit.jsonl        the month's audit entries, every field, one JSON object per line
    audit-chain.json   the chain head at export time and the result of verifying the chain
    MANIFEST           sha256 of every file above

Each audit line carries the fields its hash covers, so anyone can recompute the chain with
`sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False))` (see
`bot.audit`). The head published here is an anchor: a later `audit verify` checks the chain
still passes through it, which catches a rewritten or truncated tail.

Building the pack is pure; `EvidenceInputs` is gathered by the service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.audit import AuditEntry, VerifyReport, format_timestamp
from bot.backup.bundle import sha256
from bot.found_exceptions import FoundException
from bot.ports.exception_register import RegisterEntry
from bot.ports.snapshot import Snapshot

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
FORMAT = "policy-bot-evidence/1"


def parse_month(text: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a `YYYY-MM` month; ValueError when it is not one."""
    match = MONTH.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a month like 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(now: datetime) -> str:
    """The last complete month before `now` (what the monthly job exports)."""
    year, month = now.year, now.month - 1
    if month == 0:
        year, month = year - 1, 12
    return f"{year:04d}-{month:02d}"


def register_from_clusters(
    environment: str, found: Sequence[FoundException]
) -> list[RegisterEntry]:
    """Register entries for PolicyExceptions read from a cluster (no store record)."""
    return [
        RegisterEntry(
            environment=environment,
            name=e.name,
            namespace=e.namespace,
            policies=e.policies,
            state="active" if e.managed else "unmanaged",
            ticket=e.ticket,
            requester=None,
            approver=None,
            created_at=None,
            expires_at=e.expires_at,
        )
        for e in found
    ]


@dataclass(frozen=True)
class EvidenceInputs:
    month: str
    generated_at: datetime
    bot_version: str
    snapshots: Sequence[Snapshot]
    register: Sequence[RegisterEntry]
    register_source: str  # "store" or "clusters"
    audit_entries: Sequence[AuditEntry]
    head: AuditEntry | None
    verify: VerifyReport
    backups: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (id, summary)


@dataclass(frozen=True)
class EvidencePack:
    month: str
    files: Mapping[str, bytes]
    summary: Mapping[str, Any]

    @property
    def report(self) -> bytes:
        return self.files["report.md"]


def build_evidence(inputs: EvidenceInputs) -> EvidencePack:
    """Every file of the pack, deterministic for the same inputs."""
    policies = {s.environment: _policies(s) for s in inputs.snapshots}
    violations = {s.environment: _violations(s) for s in inputs.snapshots}
    register = [e.to_json() for e in sorted(inputs.register, key=_register_order)]
    chain = {
        "head": _entry_ref(inputs.head),
        "month_entries": len(inputs.audit_entries),
        "month_first": _entry_ref(inputs.audit_entries[0] if inputs.audit_entries else None),
        "month_last": _entry_ref(inputs.audit_entries[-1] if inputs.audit_entries else None),
        "verify": {
            "ok": inputs.verify.ok,
            "checked": inputs.verify.checked,
            "first_bad_id": inputs.verify.first_bad_id,
            "reason": inputs.verify.reason,
            "description": inputs.verify.describe(),
        },
    }
    files: dict[str, bytes] = {
        "policies.json": _json(policies),
        "violations.json": _json(violations),
        "exceptions.json": _json({"source": inputs.register_source, "entries": register}),
        "audit.jsonl": "".join(
            json.dumps(_entry_json(e), sort_keys=True, ensure_ascii=False) + "\n"
            for e in inputs.audit_entries
        ).encode(),
        "audit-chain.json": _json(chain),
    }
    files["report.md"] = _report(inputs, policies, violations, chain).encode()
    manifest = {
        "format": FORMAT,
        "month": inputs.month,
        "generated_at": _time(inputs.generated_at),
        "bot_version": inputs.bot_version,
        "files": {name: sha256(data) for name, data in sorted(files.items())},
    }
    files["MANIFEST"] = _json(manifest)
    summary = {
        "month": inputs.month,
        "environments": len(inputs.snapshots),
        "policies": sum(len(p) for p in policies.values() if isinstance(p, list)),
        "exceptions": len(register),
        "audit_entries": len(inputs.audit_entries),
        "chain_ok": inputs.verify.ok,
        "head_id": inputs.head.id if inputs.head else None,
        "head_hash": inputs.head.hash if inputs.head else None,
    }
    return EvidencePack(inputs.month, dict(sorted(files.items())), summary)


def _policies(snap: Snapshot) -> list[dict[str, Any]] | dict[str, str]:
    if snap.error is not None:
        return {"error": snap.error.user_message}
    return [
        {
            "kind": p.kind,
            "name": p.name,
            "namespace": p.namespace,
            "mode": p.mode.value,
            "ready": p.ready,
            "rules": [
                {
                    "rule": r.rule,
                    "action": r.action.value,
                    "overrides": [o.describe() for o in r.overrides],
                    "source": r.source,
                }
                for r in p.rules
            ],
        }
        for p in snap.policies
    ]


def _violations(snap: Snapshot) -> dict[str, Any]:
    if snap.error is not None:
        return {"error": snap.error.user_message}
    tally = snap.tally
    by_policy = []
    for (legacy, ref), counts in sorted(tally.by_policy.items(), key=lambda kv: kv[0][1]):
        by_policy.append(
            {
                "policy": ref,
                "engine": "kyverno.io" if legacy else "policies.kyverno.io",
                **{r: counts.get(r, 0) for r in ("fail", "warn", "error", "pass", "skip")},
                "failing_namespaces": dict(
                    sorted((tally.failing_namespaces.get((legacy, ref)) or {}).items())
                ),
            }
        )
    return {
        "reports": tally.reports,
        "totals": {r: tally.totals.get(r, 0) for r in ("fail", "warn", "error", "pass", "skip")},
        "by_policy": by_policy,
    }


def _report(
    inputs: EvidenceInputs,
    policies: Mapping[str, Any],
    violations: Mapping[str, Any],
    chain: Mapping[str, Any],
) -> str:
    lines = [
        f"# Kyverno policy evidence · {inputs.month}",
        "",
        f"Generated {_time(inputs.generated_at)} by policy-bot {inputs.bot_version}. "
        "Policy modes and violations are as read from each cluster at that time; "
        "the audit trail covers the whole month.",
        "",
        "## Policies and modes",
        "",
    ]
    for env, listed in policies.items():
        if isinstance(listed, dict):
            lines += [f"### {env}", "", f"Not readable: {listed['error']}", ""]
            continue
        modes: dict[str, int] = {}
        for p in listed:
            modes[p["mode"]] = modes.get(p["mode"], 0) + 1
        counted = ", ".join(f"{n} {m}" for m, n in sorted(modes.items()))
        lines += [f"### {env}", "", f"{len(listed)} policies ({counted or 'none'}).", ""]
        if listed:
            lines += ["| policy | kind | mode | ready |", "|---|---|---|---|"]
            for p in listed:
                ref = f"{p['namespace']}/{p['name']}" if p["namespace"] else p["name"]
                ready = {True: "yes", False: "no", None: "not reported"}[p["ready"]]
                lines.append(f"| {_cell(ref)} | {p['kind']} | {p['mode']} | {ready} |")
            lines.append("")
    lines += ["## Violations", ""]
    for env, summary in violations.items():
        if "error" in summary:
            lines += [f"- **{env}**: not readable: {summary['error']}"]
            continue
        totals = summary["totals"]
        lines.append(
            f"- **{env}**: {totals['fail']} fail · {totals['warn']} warn · "
            f"{totals['error']} error · {totals['pass']} pass ({summary['reports']} reports)"
        )
        failing = sorted(
            (p for p in summary["by_policy"] if p["fail"]), key=lambda p: (-p["fail"], p["policy"])
        )
        for p in failing[:20]:
            spots = ", ".join(
                f"{ns} {n}"
                for ns, n in sorted(p["failing_namespaces"].items(), key=lambda kv: -kv[1])[:5]
            )
            lines.append(f"  - {_cell(p['policy'])}: {p['fail']} fail ({spots})")
        if len(failing) > 20:
            lines.append(f"  - … and {len(failing) - 20} more failing policies (violations.json)")
    lines += ["", "## Exception register", ""]
    lines.append(
        "From the bot's request records, plus PolicyExceptions found in the clusters that no "
        "record accounts for (state `unmanaged`: created outside the bot)."
        if inputs.register_source == "store"
        else "Read from the clusters' PolicyExceptions (no request records were available)."
    )
    lines.append("")
    if inputs.register:
        lines += [
            "| environment | exception | policies | state | ticket | requester | approver"
            " | expires |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in sorted(inputs.register, key=_register_order):
            lines.append(
                f"| {e.environment} | {_cell(e.namespace)}/{_cell(e.name)} | "
                f"{_cell(', '.join(e.policies))} | {e.state} | {_cell(e.ticket or '—')} | "
                f"{_cell(e.requester or '—')} | {_cell(e.approver or '—')} | "
                f"{_time(e.expires_at) or 'never'} |"
            )
    else:
        lines.append("No exceptions.")
    verify = chain["verify"]
    head = chain["head"]
    lines += [
        "",
        "## Audit trail",
        "",
        f"{chain['month_entries']} entries this month (audit.jsonl).",
        f"Chain check at export: {verify['description']}.",
    ]
    if head:
        lines.append(
            f"Chain head: entry {head['id']}, hash `{head['hash']}`. Keep this line: "
            "`policy-bot audit verify` checks later that the chain still passes through it."
        )
    if inputs.backups:
        lines += ["", "## Backups this month", ""]
        lines += [f"- {bid}: {text}" for bid, text in inputs.backups]
    return "\n".join(lines) + "\n"


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": format_timestamp(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "environment": entry.environment,
        "target": entry.target,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _entry_ref(entry: AuditEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"id": entry.id, "hash": entry.hash, "at": format_timestamp(entry.at)}


def _register_order(entry: RegisterEntry) -> tuple[str, str, str]:
    return (entry.environment, entry.namespace, entry.name)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
