"""`/policy status` answers: golden JSON for the overview, one environment and one policy,
the first line carrying the verdict, and a notification text with the figures.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from bot.errors import ClusterUnavailable
from bot.playground.slack_emulator import validate_blocks
from bot.policies import Mode
from bot.ports.snapshot import Snapshot
from handlers.render import status as render
from tests.goldens import golden_for
from tests.harness import blocks_text
from tests.unit import status_samples as samples
from tests.unit.status_samples import NOW

golden = golden_for("status")


def first_line(blocks: list[dict[str, Any]]) -> str:
    """What a reader sees first after the header and the share button."""
    body = [b for b in blocks if b["type"] in ("section", "context")]
    return blocks_text(body[:1]).splitlines()[0]


def lines(blocks: list[dict[str, Any]]) -> int:
    return len([line for line in blocks_text(blocks).splitlines() if line.strip()])


def overview_text(snap: Snapshot) -> str:
    return blocks_text(render.overview([snap], now=NOW, share=None))


def test_overview_golden_one_line_per_environment() -> None:
    text, blocks = render.overview_message(samples.four_environments(), now=NOW, share='{"q":[]}')
    golden("overview", (text, blocks))
    assert blocks[0]["text"]["text"] == "Policy status · 4 environments · 09:14 UTC"
    assert blocks[1]["block_id"] == "status_share"  # "Post in channel" at the top
    words = blocks_text(blocks)
    assert (
        ":red_circle: *dev* · 38 policies · Enforce 12 · Audit 23 · mixed 3 · fail 311 · warn 40"
        in words
    )
    assert "*staging* · 31 policies · Enforce 29 · Audit 2 · fail 0 · warn 3 · *1 not ready*" in (
        words
    )
    assert "not ready" not in words.split("*production*")[1].split("\n")[0]
    assert "Top failing:* require-requests-limits (dev 180, qac 61) · disallow-latest-tag" in words
    assert words.count("Last backup") == 1 and words.count("1.19.0") == 1
    assert "production admission 2/3, 1 failing check, 2 warnings · qac 1 warning" in words
    # Ten lines where the old overview had 28 for the same four environments.
    assert lines(blocks) <= 11
    assert text.startswith("Policy status · 4 environments · 09:14 UTC: dev fail 311 warn 40")
    assert "staging fail 0 warn 3 (1 not ready)" in text


def test_overview_names_an_unreachable_environment_in_its_line() -> None:
    snaps = samples.four_environments()
    snaps[2] = Snapshot("staging", error=ClusterUnavailable("staging", "connection refused"))
    text, blocks = render.overview_message(snaps, now=NOW, share=None)
    golden("overview_unreachable", (text, blocks))
    assert ":warning: *staging* · Environment *staging* is unreachable" in blocks_text(blocks)
    assert "staging unreachable" in text
    assert all(b["type"] != "actions" for b in blocks)


def test_age_of_the_last_backup() -> None:
    three_hours = Snapshot("dev", backups_known=True, last_backup=NOW - timedelta(hours=3))
    assert "Last backup:* 3 h ago (2026-11-28 06:14 UTC)" in overview_text(three_hours)
    days = Snapshot("dev", backups_known=True, last_backup=NOW - timedelta(days=9))
    assert "Last backup:* 9 days ago" in overview_text(days)
    never = Snapshot("dev", backups_known=True)
    assert "Last backup:* none yet (`/policy backup`)" in overview_text(never)
    assert "Last backup" not in overview_text(Snapshot("dev"))
    apart = [three_hours, dataclasses.replace(never, environment="qac")]
    assert "Last backup:* dev 3 h ago" in blocks_text(render.overview(apart, now=NOW, share=None))


def test_environment_view_failing_first_the_rest_as_names_per_mode() -> None:
    dev = samples.four_environments()[0]
    text, blocks = render.environment_message(dev, now=NOW, share='{"q":["dev"]}')
    golden("environment", (text, blocks))
    words = blocks_text(blocks)
    assert blocks[0]["text"]["text"] == "dev · 38 policies · 09:14 UTC"
    assert first_line(blocks).startswith(":red_circle: *dev* · 38 policies")
    attention = words.index("Needs a look (4)")
    assert attention < words.index("*No failures:*")
    assert "`require-requests-limits` · ClusterPolicy · mixed · ready · 180 fail" in words
    assert "Enforce (11): block-stale-images, disallow-capabilities" in words
    assert "Kinds served" not in words and "ready · 0 fail" not in words
    assert lines(blocks) < 20
    assert text == (
        "dev · 38 policies · 09:14 UTC: dev fail 311 warn 40 · "
        "top failing require-requests-limits 180"
    )


def test_environment_view_shows_not_ready_and_kinds_other_than_clusterpolicy() -> None:
    staging = samples.four_environments()[2]
    vpol = samples.policy("vpol-deny", Mode.ENFORCE, kind="ValidatingPolicy")
    staging = dataclasses.replace(staging, policies=(*staging.policies, vpol))
    blocks = render.environment(staging, now=NOW, share=None)
    words = blocks_text(blocks)
    assert (
        "`restrict-ingress-classes` · ClusterPolicy · Audit · :x: not ready: webhook not ready"
        in words
    )
    assert "vpol-deny (ValidatingPolicy)" in words
    assert not validate_blocks(blocks)


def test_environment_view_of_many_policies_stays_inside_the_limits() -> None:
    many = tuple(
        samples.policy(f"policy-with-a-rather-long-name-{i:04}", Mode.AUDIT) for i in range(600)
    )
    snap = Snapshot("dev", policies=many)
    blocks = render.environment(snap, now=NOW, share=None)
    assert not validate_blocks(blocks)
    assert "more" in blocks_text(blocks)


def test_policy_view_starts_with_the_verdict_and_next_step() -> None:
    text, blocks = render.policies_message((samples.require_labels(),), share='{"q":["x"]}')
    golden("policy_blocked", (text, blocks))
    assert blocks[0]["text"]["text"] == "require-labels · ClusterPolicy · 1 rule"
    assert first_line(blocks) == (
        ":no_entry: *Next: staging (Enforce) — blocked:* 3 failing "
        "(gate: at most 0 failing results in qac)"
    )
    assert sum(1 for b in blocks if b["type"] == "divider") >= 3  # environments apart
    assert text == "require-labels: next staging (Enforce) blocked · dev fail 41, qac fail 3"


def test_policy_view_when_the_next_step_passes() -> None:
    text, blocks = render.policies_message((samples.require_labels(blocked=False),), share=None)
    golden("policy_ready", (text, blocks))
    assert first_line(blocks).startswith(
        ":white_check_mark: *Next: staging (Enforce) — ready to promote*"
    )
    assert "ready to promote" in text


def test_a_bare_name_for_two_kinds_shows_both_views() -> None:
    legacy = samples.require_labels()
    cel = dataclasses.replace(
        legacy,
        name="ValidatingPolicy/require-labels",
        environments=tuple(
            dataclasses.replace(
                e,
                policy=dataclasses.replace(e.policy, kind="ValidatingPolicy") if e.policy else None,
            )
            for e in legacy.environments
        ),
    )
    legacy = dataclasses.replace(legacy, name="ClusterPolicy/require-labels")
    text, blocks = render.policies_message((legacy, cel), share='{"q":["require-labels"]}')
    golden("policy_two_kinds", (text, blocks))
    headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    assert headers == [
        "ClusterPolicy/require-labels · ClusterPolicy · 1 rule",
        "ValidatingPolicy/require-labels · ValidatingPolicy · 1 rule",
    ]
    assert "2 policies have this name" in blocks_text(blocks)
    assert sum(1 for b in blocks if b["type"] == "actions") == 1
    assert text.count("blocked") == 2
