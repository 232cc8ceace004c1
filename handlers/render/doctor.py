"""Block Kit for `/policy doctor [ENV]`: findings per environment, failures first. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.doctor.model import DoctorReport, Finding, KyvernoHealth, Verdict
from bot.helm import HelmRelease, HelmRevision
from handlers.render import kit

ICONS = {Verdict.FAIL: ":x:", Verdict.WARN: ":warning:", Verdict.PASS: ":white_check_mark:"}
ORDER = {Verdict.FAIL: 0, Verdict.WARN: 1, Verdict.PASS: 2}
HISTORY = 3  # revisions shown per release


def report(result: DoctorReport) -> list[kit.Block]:
    """One environment in full: every finding with why it matters and the values that fix it."""
    if result.error is not None:
        return [kit.section(f":warning: {result.error.user_message}")]
    blocks: list[kit.Block] = [
        kit.header(f"Kyverno health · {result.environment} · {_version(result.health)}"),
        kit.context([_where(result)]),
        kit.lines_section(
            [finding(f) for f in _sorted(result.findings)],
            more="… more findings did not fit; fix the ones above first",
        ),
    ]
    notes = _notes(result)
    if notes:
        blocks.append(kit.context(notes))
    return kit.fit(blocks)


def reports(results: Sequence[DoctorReport]) -> list[kit.Block]:
    return reports_message(results)[1]


def reports_message(results: Sequence[DoctorReport]) -> tuple[str, list[kit.Block]]:
    """Every environment: one verdict line worst first, then problems in full, passing
    checks counted."""
    title = f"Kyverno health · {len(results)} environments"
    verdict = _verdict_line(results)
    blocks: list[kit.Block] = [kit.header(title), kit.section(verdict)]
    for result in results:
        blocks.append(kit.divider())
        if result.error is not None:
            blocks.append(
                kit.section(f"*{result.environment}* · :warning: {result.error.user_message}")
            )
            continue
        blocks.append(kit.section(_title(result)))
        problems = [f for f in _sorted(result.findings) if f.verdict is not Verdict.PASS]
        passed = len(result.findings) - len(problems)
        lines = [finding(f) for f in problems]
        if passed:
            lines.append(
                f"{ICONS[Verdict.PASS]} {passed} check{'s' if passed != 1 else ''} pass"
                f" · details: `/policy doctor {result.environment}`"
            )
        blocks.append(kit.lines_section(lines, more="… more findings did not fit"))
        notes = _notes(result)
        if notes:
            blocks.append(kit.context(notes))
    plain = verdict.replace("*", "")
    for code, glyph in (
        (":x:", "❌"),
        (":warning:", "⚠️"),
        (":white_check_mark:", "✅"),
        (":grey_question:", "❔"),
    ):
        plain = plain.replace(code, glyph)
    return kit.clip(f"{title}: {plain}", kit.MAX_FALLBACK_TEXT), kit.fit(blocks)


def _verdict_line(results: Sequence[DoctorReport]) -> str:
    """`❌ production 1 failing, 2 warnings · ⚠️ qac 1 warning · ✅ dev, staging`."""
    unreachable = [r.environment for r in results if r.error is not None]
    seen = [r for r in results if r.error is None]
    not_installed = [
        r.environment for r in seen if r.health is not None and r.health.installed is False
    ]
    rest = [r for r in seen if r.environment not in not_installed]
    ranked = sorted(
        (r for r in rest if r.failures or r.warnings),
        key=lambda r: (-r.failures, -r.warnings, r.environment),
    )
    parts: list[str] = []
    if unreachable:
        parts.append(f":grey_question: *{', '.join(unreachable)}* unreachable")
    if not_installed:
        parts.append(f":x: *{', '.join(not_installed)}* Kyverno not installed")
    for r in ranked:
        counts = [
            f"{n} {word}"
            for n, word in (
                (r.failures, "failing"),
                (r.warnings, "warning" if r.warnings == 1 else "warnings"),
            )
            if n
        ]
        icon = ICONS[Verdict.FAIL] if r.failures else ICONS[Verdict.WARN]
        parts.append(f"{icon} *{r.environment}* {', '.join(counts)}")
    clean = [r.environment for r in rest if not (r.failures or r.warnings)]
    if clean:
        parts.append(f"{ICONS[Verdict.PASS]} {', '.join(clean)} pass every check")
    return " · ".join(parts)


def finding(item: Finding) -> str:
    """`icon summary`, then why it matters and the fix, each on its own line."""
    lines = [f"{ICONS[item.verdict]} {kit.escape(item.summary)}"]
    if item.why:
        lines.append(f"      {kit.escape(item.why)}")
    if item.fix:
        fixes = "  ".join(f"`{kit.escape(v)}`" for v in item.fix)
        lines.append(f"      Fix: {fixes}")
    return "\n".join(lines)


def _title(result: DoctorReport) -> str:
    health = result.health
    counts = [
        f"{n} {word}"
        for n, word in (
            (result.failures, "failing"),
            (result.warnings, "warning" if result.warnings == 1 else "warnings"),
        )
        if n
    ]
    head = f"*{result.environment}* · Kyverno {kit.escape(_version(health))}"
    helm = _helm_brief(health.helm) if health else ""
    return " · ".join([head + (f" ({helm})" if helm else ""), *counts])


def _version(health: KyvernoHealth | None) -> str:
    if health is not None and health.installed is False:
        return "not installed"
    return (health.version if health else None) or "version unknown"


def _where(result: DoctorReport) -> str:
    health = result.health
    if health is None:
        return result.environment
    how = {
        "labels": "found by its labels",
        "configured": "from backup.helm_releases",
        "default": "the default; Deployments could not be listed across namespaces",
    }.get(health.located_by, health.located_by)
    helm = _helm_brief(health.helm)
    parts = [f"namespace {health.namespace} ({how})"]
    if helm:
        parts.insert(0, helm)
    return " · ".join(kit.escape(p) for p in parts)


def _helm_brief(live: HelmRevision | None) -> str:
    if live is None:
        return ""
    when = f", deployed {_date(live.updated)}" if live.updated else ""
    return f"chart {live.chart_version}, revision {live.revision}{when}"


def _notes(result: DoctorReport) -> list[str]:
    health = result.health
    if health is None:
        return []
    notes = [_history(health, name) for name in ("kyverno", "policy-reporter")]
    if result.drift_note:
        notes.append(result.drift_note)
    return [kit.escape(n) for n in notes if n]


def _history(health: KyvernoHealth, name: str) -> str:
    release: HelmRelease | None = health.release(name)
    if release is None:
        looked = health.release_lookups.get(name, ())
        if not looked:
            return ""
        return f"Helm {name}: no release in {', '.join(looked)}"
    shown = [_revision(r) for r in reversed(release.revisions[-HISTORY:])]
    older = len(release.revisions) - HISTORY
    tail = f" · {older} older" if older > 0 else ""
    return f"Helm {name} ({release.namespace}): " + " · ".join(shown) + tail


def _revision(revision: HelmRevision) -> str:
    when = f" {_date(revision.updated)}" if revision.updated else ""
    chart = "-".join(p for p in (revision.chart, revision.chart_version) if p)
    details = [f"chart {chart}"] if chart else []
    details += [f"app {revision.app_version}"] if revision.app_version else []
    return f"r{revision.revision} {revision.status}{when}" + (
        f" ({', '.join(details)})" if details else ""
    )


def _sorted(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: ORDER[f.verdict])


def _date(when: datetime | None) -> str:
    return when.astimezone(UTC).date().isoformat() if when else ""
