"""`/policy promote` and `/policy demote` end to end: signed Slack requests in, two real
kube-apiservers ("staging" and "production") behind, every object read back from them.

The ladder used here is staging:Audit -> staging:Enforce -> production:Audit ->
production:Enforce with the gates "7 days", "0 failing results" and, into production
Enforce, "Ready in the current environment". Each test seeds policies of its own names, so
the two module-scoped control planes are shared without interference. There is no Kyverno:
readiness waits end at a short timeout unless a test writes the Ready condition itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import pytest_asyncio
from kubernetes import client as k8s

from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import EphemeralMessage, Message, SlackEmulator
from tests.harness import CHANNELS, RunningBot, bot_settings, running_bot
from tests.kube.fixtures import ControlPlaneFactory

pytestmark = pytest.mark.kube

T = TypeVar("T")
CHANNEL = "C0PLATFORM"
OWNER1, OWNER2, ADMIN, ENGINEER = "U0OWNER1", "U0OWNER2", "U0ADMIN1", "U0ENGINEER"
PROD_ENFORCE = seed.failure_action_override("Enforce", namespaces=["prod-*"])
PAYMENTS_ENFORCE = seed.failure_action_override("Enforce", namespaces=["payments-*"])
TEN_DAYS = timedelta(days=10)
READINESS_TIMEOUT_S = 1.0
PROMOTION = {
    "stages": [
        {"environment": "staging", "mode": "Audit"},
        {"environment": "staging", "mode": "Enforce"},
        {"environment": "production", "mode": "Audit"},
        {"environment": "production", "mode": "Enforce"},
    ],
    "gates": [
        {"type": "min_days", "days": 7},
        {"type": "max_failures", "max": 0},
        {"type": "ready_in_current", "to": "production:Enforce"},
    ],
    "readiness_poll_s": 0.2,
}


class ShiftedClock:
    """The real time plus an offset a test can move (policies are created 'now')."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def planes(
    kube_assets: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ControlPlane]]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("promotion-planes"))
    try:
        staging, production = factory.start(2)
        with staging.api_client() as api:
            seed.apply_objects(api, [seed.namespace(n) for n in ("shop", "payments")])
        yield {"staging": staging, "production": production}
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def apis(planes: dict[str, ControlPlane]) -> Iterator[dict[str, Any]]:
    clients = {env: plane.api_client() for env, plane in planes.items()}
    try:
        yield clients
    finally:
        for api in clients.values():
            api.close()


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@contextlib.asynccontextmanager
async def start_bot(
    planes: dict[str, ControlPlane],
    emulator: SlackEmulator,
    tmp_path: Path,
    clock: ShiftedClock,
    *,
    readiness_timeout_s: float = READINESS_TIMEOUT_S,
) -> AsyncIterator[RunningBot]:
    settings = bot_settings(
        emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": env, "kubeconfig": str(plane.kubeconfig), "timeout_s": 5}
            for env, plane in planes.items()
        ],
        extra={
            "slack": {
                "mode": "http",
                "channels": CHANNELS,
                "roles": {
                    "promoters": {"users": [OWNER1, OWNER2]},
                    "admins": {"users": [ADMIN]},
                },
            },
            "promotion": {**PROMOTION, "readiness_timeout_s": readiness_timeout_s},
        },
    )
    emulator.add_channel(CHANNEL, "platform")
    for user, name in ((OWNER1, "ana"), (OWNER2, "ben"), (ADMIN, "ada"), (ENGINEER, "sam")):
        emulator.add_user(user, name)
    async with running_bot(settings, emulator, clock=clock) as bot:
        yield bot


@pytest_asyncio.fixture
async def bot(
    planes: dict[str, ControlPlane],
    slack_emulator: SlackEmulator,
    tmp_path: Path,
    clock: ShiftedClock,
) -> AsyncIterator[RunningBot]:
    async with start_bot(planes, slack_emulator, tmp_path, clock) as running:
        yield running


# -- shared steps ------------------------------------------------------------------------


async def wait_for(condition: Callable[[], T | None], *, what: str, timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


def text_of(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def actions_of(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def seeded(env: str, apis: dict[str, Any], *objects: dict[str, Any]) -> list[dict[str, Any]]:
    return seed.apply_objects(apis[env], objects)


async def read(apis: dict[str, Any], env: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object as the API server of `env` has it now (None when absent)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = seed.plural(obj["apiVersion"], obj["kind"])
    custom = k8s.CustomObjectsApi(apis[env])

    def get() -> dict[str, Any] | None:
        try:
            found: Any = custom.get_cluster_custom_object(
                group, version, plural, obj["metadata"]["name"]
            )
            return cast(dict[str, Any], found)
        except k8s.exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise

    return await asyncio.to_thread(get)


async def set_ready(planes: dict[str, ControlPlane], env: str, name: str, generation: int) -> None:
    """Play Kyverno: report the ClusterPolicy Ready through the status subresource."""
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": "Ready",
                    "observedGeneration": generation,
                    "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        }
    }
    await asyncio.to_thread(
        planes[env].kubectl,
        "patch",
        "clusterpolicy",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the API server sets (independent of `bot.promotion.modes`)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        out["metadata"].pop(key, None)
    return out


def diff_paths(a: Any, b: Any, path: str = "") -> set[str]:
    """Every path at which two JSON documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: set[str] = set()
        for key in set(a) | set(b):
            sub = f"{path}.{key}" if path else key
            found |= {sub} if key not in a or key not in b else diff_paths(a[key], b[key], sub)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(
            *(diff_paths(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
        )
    return set() if a == b else {path}


STAGE_ANNOTATIONS = {
    "metadata.annotations.policy-bot.io/stage",
    "metadata.annotations.policy-bot.io/stage-since",
}


async def command(bot: RunningBot, emulator: SlackEmulator, user: str, text: str) -> None:
    interaction = await bot.slack.command("/policy", text, user=user, channel=CHANNEL)
    assert interaction.response.status == 200, interaction.response.text


async def promote(bot: RunningBot, emulator: SlackEmulator, user: str, name: str) -> Message:
    """`/policy promote NAME`; the plan message it posts in the channel."""
    before = {m.ts for m in emulator.parents(CHANNEL)}
    await command(bot, emulator, user, f"promote {name}")
    return await wait_for(
        lambda: next(
            (
                m
                for m in emulator.parents(CHANNEL)
                if m.ts not in before and m.text.startswith("Promotion plan")
            ),
            None,
        ),
        what=f"the plan for {name}",
    )


async def diff_of(emulator: SlackEmulator, plan: Message) -> str:
    """The field-by-field diff the bot posts in the plan's thread."""
    replies = await wait_for(
        lambda: [
            r for r in emulator.replies(CHANNEL, plan.ts) if r.text.startswith("Field-by-field")
        ],
        what="the plan's diff in its thread",
    )
    return text_of(replies[0].blocks)


async def answer(emulator: SlackEmulator, user: str, before: int) -> str:
    """The text of the next ephemeral answer to `user` (command response or chat.postEphemeral)."""

    def found() -> str | None:
        fresh: list[EphemeralMessage] = [
            e for e in emulator.ephemeral(CHANNEL, user)[before:] if e.via != "command_ack"
        ]
        if not fresh:
            return None
        return fresh[0].text or text_of(fresh[0].blocks)

    return await wait_for(found, what=f"an answer to {user}")


def seen(emulator: SlackEmulator, user: str) -> int:
    return len(emulator.ephemeral(CHANNEL, user))


async def click(
    bot: RunningBot, emulator: SlackEmulator, action: str, user: str, message: Message
) -> None:
    interaction = await bot.slack.block_action(
        action, user=user, channel=CHANNEL, message_ts=message.ts
    )
    assert interaction.response.status == 200


async def settled(emulator: SlackEmulator, message: Message, needle: str) -> Message:
    def done() -> Message | None:
        now = emulator.message(CHANNEL, message.ts)
        return now if now is not None and needle in text_of(now.blocks) else None

    return await wait_for(done, what=f"the message to say {needle!r}")


async def audit_actions(bot: RunningBot) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.outcome) for e in await bot.services.audit.entries()]


def mode_set_on(obj: dict[str, Any]) -> str:
    """The day the API server recorded the tests' write of the mode field (its managedFields
    time), which the plan dates the stage from; read off the object, not the calendar, so a
    test running over midnight agrees with the bot."""
    times = [
        m["time"] for m in obj["metadata"]["managedFields"] if m["manager"] == "policy-bot-tests"
    ]
    return times[-1][:10]


# -- gates ---------------------------------------------------------------------------------


async def test_young_policy_is_blocked_by_the_days_gate(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any]
) -> None:
    (young,) = seeded("staging", apis, seed.legacy_cluster_policy("young-policy", action="Audit"))
    plan = await promote(bot, slack_emulator, OWNER1, "young-policy")
    text = text_of(plan.blocks)
    assert "Promote young-policy: staging (Audit) → staging (Enforce)" in text
    assert (
        f":x: at least 7 days in staging (Audit): 0 days (since {mode_set_on(young)}, from the managedFields "
        "time of its mode field (policy-bot-tests))" in text
    )
    assert ":white_check_mark: at most 0 failing results in staging: 0 failing" in text
    assert "*Blocked.*" in text
    assert actions_of(plan) == ["promote_override", "promote_cancel"]
    # A forged Promote click with the plan's id is refused by the service, not by the UI.
    payload, _ = bot.slack.block_actions_payload(
        "promote_cancel", user=OWNER1, channel=CHANNEL, message_ts=plan.ts
    )
    payload["actions"][0]["action_id"] = "promote_confirm"
    before = seen(slack_emulator, OWNER1)
    assert (await bot.slack.post_payload(payload)).status == 200
    refusal = await answer(slack_emulator, OWNER1, before)
    assert refusal.startswith("This plan is blocked by failed gates: at least 7 days in staging")
    stored = await read(apis, "staging", seed.legacy_cluster_policy("young-policy"))
    assert stored is not None and stored["spec"]["validationFailureAction"] == "Audit"
    assert (OWNER1, "promotion.plan", "blocked") in await audit_actions(bot)


async def test_failing_results_block_with_the_resources_behind_them(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    name, rule = "leaky-policy", "autogen-check-for-labels"

    def report(namespace: str, app: str, *outcomes: str) -> dict[str, Any]:
        uid = f"00000000-0000-4000-8000-{abs(hash((namespace, app))) % 10**12:012d}"
        subject = seed.ResourceRef("apps/v1", "Deployment", app, namespace, uid)
        return seed.resource_report(subject, [seed.report_result(name, rule, o) for o in outcomes])  # type: ignore[arg-type]

    seeded(
        "staging",
        apis,
        seed.legacy_cluster_policy(name, action="Audit"),
        report("shop", "ledger", "fail", "fail"),
        report("payments", "api", "fail", "pass"),
        report("payments", "web", "pass"),
    )
    plan = await promote(bot, slack_emulator, OWNER1, name)
    text = text_of(plan.blocks)
    assert ":white_check_mark: at least 7 days in staging (Audit): 10 days" in text
    assert (
        ":x: at most 0 failing results in staging: 3 failing — "
        "shop Deployment/ledger ×2, payments Deployment/api ×1"
    ) in text
    assert actions_of(plan) == ["promote_override", "promote_cancel"]


async def test_readiness_gate_blocks_until_kyverno_reports_ready(
    bot: RunningBot,
    slack_emulator: SlackEmulator,
    apis: dict[str, Any],
    planes: dict[str, ControlPlane],
    clock: ShiftedClock,
) -> None:
    clock.offset = TEN_DAYS
    seeded("production", apis, seed.legacy_cluster_policy("gated-policy", action="Audit"))
    plan = await promote(bot, slack_emulator, OWNER1, "gated-policy")
    text = text_of(plan.blocks)
    assert "production (Audit) → production (Enforce)" in text
    assert ":x: Ready in production: Kyverno has not reported readiness" in text
    await set_ready(planes, "production", "gated-policy", 1)
    plan = await promote(bot, slack_emulator, OWNER1, "gated-policy")
    text = text_of(plan.blocks)
    assert ":white_check_mark: Ready in production: Ready" in text
    assert "Every gate passes. Promotions to production need a second person" in text
    assert actions_of(plan) == ["promote_confirm", "promote_cancel"]


# -- applying ------------------------------------------------------------------------------


async def test_promotion_to_production_copies_exactly_and_needs_a_second_person(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    """Legacy spec-level policy: staging (Enforce) -> production (Audit), created there."""
    clock.offset = TEN_DAYS
    source = seed.legacy_cluster_policy("copied-policy", action="Enforce", overrides=[PROD_ENFORCE])
    seeded("staging", apis, source)
    staging_before = await read(apis, "staging", source)
    assert staging_before is not None
    plan = await promote(bot, slack_emulator, OWNER1, "copied-policy")
    text = text_of(plan.blocks)
    assert "Promote copied-policy: staging (Enforce) → production (Audit)" in text
    assert "created on *production* as a copy of staging's: mode Enforce → Audit in 1 rule" in text
    assert "someone other than <@U0OWNER1> clicks Promote" in text
    assert "read from staging, production (not deployed)" in text and "resourceVersion" not in text

    before = seen(slack_emulator, OWNER1)
    await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
    refusal = await answer(slack_emulator, OWNER1, before)
    assert refusal == (
        "You asked for this promotion to production, so someone else must confirm it: "
        "promotions to production need a second person."
    )
    assert await read(apis, "production", source) is None
    assert (OWNER1, "promotion.confirm", "refused") in await audit_actions(bot)

    await click(bot, slack_emulator, "promote_confirm", OWNER2, plan)
    done = await settled(slack_emulator, plan, "Kyverno has not reported readiness within 1 s")
    assert ":hourglass: <@U0OWNER2> promoted `copied-policy` to production (Audit)" in text_of(
        done.blocks
    )
    assert actions_of(done) == []

    created = await read(apis, "production", source)
    assert created is not None
    assert diff_paths(clean(staging_before), clean(created)) == {
        "spec.validationFailureAction",
        "spec.rules[0].validate.failureAction",
        "spec.rules[0].validate.failureActionOverrides",
        "metadata.labels",
        *STAGE_ANNOTATIONS,
    }
    spec = created["spec"]
    assert spec["validationFailureAction"] == "Audit"
    assert spec["validationFailureActionOverrides"] == [PROD_ENFORCE]
    assert spec["rules"][0]["validate"]["failureAction"] == "Audit"
    assert spec["rules"][0]["validate"]["failureActionOverrides"] == [PROD_ENFORCE]
    meta = created["metadata"]
    assert meta["annotations"]["policy-bot.io/stage"] == "production:Audit"
    assert meta["annotations"]["policy-bot.io/stage-since"].startswith(
        (datetime.now(UTC) + TEN_DAYS).date().isoformat()
    )
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "policy-bot"}
    assert [(m["manager"], m["operation"]) for m in meta["managedFields"]] == [
        ("policy-bot", "Apply")
    ]
    staging_after = await read(apis, "staging", source)
    assert staging_after == staging_before, "the source is not touched"

    actions = await audit_actions(bot)
    assert (OWNER1, "promotion.plan", "ready") in actions
    assert (OWNER2, "promotion.apply", "applied") in actions
    # The bot's record now dates the stage; status shows it and the next gate.
    before_answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "status copied-policy")
    status = await wait_for(
        lambda: slack_emulator.responses[before_answers:], what="the status answer"
    )
    status_text = text_of(status[0].payload["blocks"])
    assert "Promotion stage: production (Audit)" in status_text
    assert "at least 7 days in production (Audit): 0 days" in status_text
    assert "from the bot's record" in status_text


async def test_per_rule_policy_switches_in_place_with_overrides_intact(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    obj = seed.per_rule_cluster_policy(
        "per-rule-policy", actions=("Audit", "Audit"), overrides=[PAYMENTS_ENFORCE]
    )
    seeded("staging", apis, obj)
    before = await read(apis, "staging", obj)
    assert before is not None
    plan = await promote(bot, slack_emulator, OWNER1, "per-rule-policy")
    assert "on *staging*: mode Audit → Enforce in 2 rules\n" in text_of(plan.blocks) + "\n"
    diff = await diff_of(slack_emulator, plan)
    assert "`spec.rules[check-label-0].validate.failureAction`: `Audit` → `Enforce`" in diff
    # Not production: the person who asked may confirm, and a double click applies once.
    await asyncio.gather(
        click(bot, slack_emulator, "promote_confirm", OWNER1, plan),
        click(bot, slack_emulator, "promote_confirm", OWNER1, plan),
    )
    await settled(slack_emulator, plan, "promoted `per-rule-policy` to staging (Enforce)")
    late = await answer(slack_emulator, OWNER1, 0)
    assert late.startswith(("Plan P-", "This plan")) and (
        "already applied" in late or "being applied" in late or "changed hands" in late
    )
    after = await read(apis, "staging", obj)
    assert after is not None
    assert diff_paths(clean(before), clean(after)) == {
        "spec.validationFailureAction",
        "spec.rules[0].validate.failureAction",
        "spec.rules[1].validate.failureAction",
        *STAGE_ANNOTATIONS,
    }
    assert before["spec"]["validationFailureAction"] == "Audit"  # the CRD's default
    assert after["spec"]["validationFailureAction"] == "Enforce"
    rules = after["spec"]["rules"]
    assert [r["validate"]["failureAction"] for r in rules] == ["Enforce", "Enforce"]
    assert [r["validate"]["failureActionOverrides"] for r in rules] == [[PAYMENTS_ENFORCE]] * 2
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    applied = [a for a in await audit_actions(bot) if a[1:] == ("promotion.apply", "applied")]
    assert len(applied) == 1


async def test_cel_policy_promotes_to_deny_and_demotes_to_audit(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    obj = seed.validating_policy("cel-policy", actions=("Audit", "Warn"))
    seeded("staging", apis, obj)
    before = await read(apis, "staging", obj)
    assert before is not None
    plan = await promote(bot, slack_emulator, OWNER1, "cel-policy")
    assert "on *staging*: mode Audit → Enforce" in text_of(plan.blocks)
    assert "→ `[Deny]`" not in text_of(plan.blocks), "the plan says it in one line"
    diff = await diff_of(slack_emulator, plan)
    assert "`spec.validationActions`: `[Audit, Warn]` → `[Deny]`" in diff
    await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
    applied = await settled(slack_emulator, plan, "promoted `cel-policy` to staging (Enforce)")
    assert "*Changed:* mode Audit → Enforce" in text_of(applied.blocks)
    [reply] = slack_emulator.replies(CHANNEL, plan.ts)
    assert reply.text.startswith("Field-by-field diff of plan P-"), "one diff, in the thread"
    promoted = await read(apis, "staging", obj)
    assert promoted is not None and promoted["spec"]["validationActions"] == ["Deny"]
    assert diff_paths(clean(before), clean(promoted)) == {
        "spec.validationActions",
        *STAGE_ANNOTATIONS,
    }

    # The set was handed over: server-side apply alone would have kept the seeder's elements.
    owners = {
        m["manager"]
        for m in promoted["metadata"]["managedFields"]
        if "f:validationActions" in m.get("fieldsV1", {}).get("f:spec", {})
    }
    assert owners == {"policy-bot"}

    parents = len(slack_emulator.parents(CHANNEL))
    await command(bot, slack_emulator, OWNER2, "demote cel-policy staging")
    posted = await wait_for(lambda: slack_emulator.parents(CHANNEL)[parents:], what="demote")
    await settled(slack_emulator, posted[0], "Kyverno has not reported readiness")
    demoted = await read(apis, "staging", obj)
    assert demoted is not None and demoted["spec"]["validationActions"] == ["Audit"]
    assert not any(
        "demote_confirm" in str(e.blocks) for e in slack_emulator.ephemeral(CHANNEL, OWNER2)
    ), "outside production the demotion needs no click"
    assert "`spec.validationActions`: `[Deny]` → `[Audit]`" in text_of(posted[0].blocks)


async def test_stale_plan_is_refused_and_a_fresh_one_is_posted(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    obj = seed.legacy_cluster_policy("stale-policy", action="Audit")
    seeded("staging", apis, obj)
    plan = await promote(bot, slack_emulator, OWNER1, "stale-policy")
    old_id = plan.text.split()[2].rstrip(":")
    # Someone edits the policy after the plan was shown.
    edited = copy.deepcopy(obj)
    edited["spec"]["background"] = False
    seeded("staging", apis, edited)
    changed = await read(apis, "staging", obj)
    assert changed is not None
    parents = len(slack_emulator.parents(CHANNEL))
    await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
    old = await settled(slack_emulator, plan, "is out of date")
    assert f"Plan {old_id}" in text_of(old.blocks)
    assert "staging: resourceVersion " in text_of(old.blocks)
    assert "Nothing was changed. A fresh plan follows: P-" in text_of(old.blocks)
    assert actions_of(old) == []
    fresh = await wait_for(lambda: slack_emulator.parents(CHANNEL)[parents:], what="the fresh plan")
    assert fresh[0].text.startswith("Promotion plan P-") and old_id not in fresh[0].text
    assert "resourceVersion" not in text_of(fresh[0].blocks)  # in the audit trail only
    untouched = await read(apis, "staging", obj)
    assert untouched == changed, "a stale plan writes nothing"
    assert (OWNER1, "promotion.apply", "stale") in await audit_actions(bot)
    # Clicking the old plan again says where to look.
    before = seen(slack_emulator, OWNER1)
    payload, _ = bot.slack.block_actions_payload(
        "promote_confirm", user=OWNER1, channel=CHANNEL, message_ts=fresh[0].ts
    )
    payload["actions"][0]["value"] = old_id
    await bot.slack.post_payload(payload)
    assert "is out of date: see plan P-" in await answer(slack_emulator, OWNER1, before)
    await click(bot, slack_emulator, "promote_confirm", OWNER1, fresh[0])
    await settled(slack_emulator, fresh[0], "promoted `stale-policy` to staging (Enforce)")


# -- demote, override, readiness, outside changes -------------------------------------------


async def test_demote_is_the_immediate_outage_lever_for_promoters(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any]
) -> None:
    rule = seed.require_label_rule(
        "check-team", failure_action="Enforce", failure_action_overrides=[PROD_ENFORCE]
    )
    obj = seed.legacy_cluster_policy(
        "outage-policy", action="Enforce", overrides=[PROD_ENFORCE], rules=[rule]
    )
    seeded("production", apis, obj)
    before = await read(apis, "production", obj)
    assert before is not None
    asked: set[str] = set()

    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, ENGINEER, "demote outage-policy production")
    refused = await wait_for(lambda: slack_emulator.responses[answers:], what="the refusal")
    assert refused[0].payload["text"] == (
        ":warning: Only promoters may demote policies: <@U0OWNER1>, <@U0OWNER2>."
    )
    assert await read(apis, "production", obj) == before

    # Production asks first; nothing changes until the click, and Cancel changes nothing.
    parents = len(slack_emulator.parents(CHANNEL))
    for button in ("demote_cancel", "demote_confirm"):
        await command(bot, slack_emulator, OWNER1, "demote outage-policy production")
        prompt = await wait_for(
            lambda: [
                e
                for e in slack_emulator.ephemeral(CHANNEL, OWNER1)
                if "demote_confirm" in str(e.blocks) and e.ts not in asked
            ],
            what="the demote prompt",
        )
        asked.add(prompt[0].ts)
        assert "*Demote `outage-policy` to Audit in production?*" in text_of(prompt[0].blocks)
        assert await read(apis, "production", obj) == before
        assert len(slack_emulator.parents(CHANNEL)) == parents
        interaction = await bot.slack.block_action(
            button, user=OWNER1, channel=CHANNEL, message_ts=prompt[0].ts, ephemeral=True
        )
        assert interaction.response.status == 200
        if button == "demote_cancel":
            settled_prompt = await wait_for(
                lambda: [
                    r
                    for r in slack_emulator.responses
                    if "Not demoted" in r.payload.get("text", "")
                ],
                what="the cancelled prompt",
            )
            assert settled_prompt[0].payload.get("replace_original") is True
            assert await read(apis, "production", obj) == before
    posted = (
        await wait_for(lambda: slack_emulator.parents(CHANNEL)[parents:], what="the demote message")
    )[0]
    await wait_for(
        lambda: [
            r for r in slack_emulator.responses if "You confirmed" in r.payload.get("text", "")
        ],
        what="the confirmed prompt",
    )
    final = await settled(slack_emulator, posted, "Kyverno has not reported readiness")
    text = text_of(final.blocks)
    assert text.startswith(
        ":arrow_down: <@U0OWNER1> demoted `outage-policy` to Audit in *production* "
        "(was Enforce) · :hourglass: *timed out* — Kyverno has not reported readiness within 1 s"
    )
    assert "no gates, this is the outage lever" in text
    after = await read(apis, "production", obj)
    assert after is not None
    audit_override = {**PROD_ENFORCE, "action": "Audit"}
    assert after["spec"]["validationFailureAction"] == "Audit"
    assert after["spec"]["validationFailureActionOverrides"] == [audit_override]
    assert after["spec"]["rules"][0]["validate"] == {
        **before["spec"]["rules"][0]["validate"],
        "failureAction": "Audit",
        "failureActionOverrides": [audit_override],
    }
    assert after["metadata"]["annotations"]["policy-bot.io/stage"] == "production:Audit"
    assert diff_paths(clean(before), clean(after)) == {
        "spec.validationFailureAction",
        "spec.validationFailureActionOverrides[0].action",
        "spec.rules[0].validate.failureAction",
        "spec.rules[0].validate.failureActionOverrides[0].action",
        *STAGE_ANNOTATIONS,
    }
    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "demote outage-policy production")
    again = await wait_for(lambda: slack_emulator.responses[answers:], what="the second demote")
    assert "is already in Audit in production" in text_of(again[0].payload["blocks"])
    actions = await audit_actions(bot)
    assert (OWNER1, "promotion.demote", "applied") in actions
    assert (OWNER1, "promotion.demote", "unchanged") in actions


async def test_override_needs_an_admin_and_a_reason_and_is_announced(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any]
) -> None:
    obj = seed.legacy_cluster_policy("override-policy", action="Audit")
    (stored,) = seeded("staging", apis, obj)
    plan = await promote(bot, slack_emulator, OWNER1, "override-policy")
    assert actions_of(plan) == ["promote_override", "promote_cancel"]

    before = seen(slack_emulator, OWNER1)
    await click(bot, slack_emulator, "promote_override", OWNER1, plan)
    assert (await answer(slack_emulator, OWNER1, before)).startswith(
        "Only admins may override failed gates: <@U0ADMIN1>."
    )
    assert slack_emulator.open_views(OWNER1) == []

    await click(bot, slack_emulator, "promote_override", ADMIN, plan)
    view = (await wait_for(lambda: slack_emulator.open_views(ADMIN), what="the modal"))[0]
    assert view.callback_id == "promote_override_reason"
    short = await bot.slack.view_submission(
        view.id, {"override_reason": {"reason": "trust me"}}, user=ADMIN
    )
    assert short.response.json()["response_action"] == "errors"
    assert view.submissions[-1]["result"] == "errors_shown"
    reason = "Backfilled the labels in every namespace; SEC-1423 tracks the rest"
    await bot.slack.view_submission(view.id, {"override_reason": {"reason": reason}}, user=ADMIN)
    assert view.state == "closed"
    await settled(slack_emulator, plan, "promoted `override-policy` to staging (Enforce)")
    done = slack_emulator.message(CHANNEL, plan.ts)
    assert done is not None and f"gates overridden by <@U0ADMIN1>: “{reason}”" in text_of(
        done.blocks
    )
    announcement = await wait_for(
        lambda: [m for m in slack_emulator.parents(CHANNEL) if "overrode" in text_of(m.blocks)],
        what="the announcement",
    )
    assert (
        "<@U0ADMIN1> overrode failed gates to promote *override-policy* to staging (Enforce): "
        f"“{reason}”"
    ) in text_of(announcement[0].blocks)
    after = await read(apis, "staging", obj)
    assert after is not None and after["spec"]["validationFailureAction"] == "Enforce"
    entries = await bot.services.audit.entries()
    override = [e for e in entries if e.action == "promotion.override" and e.outcome != "refused"]
    assert len(override) == 1 and override[0].actor == ADMIN and override[0].outcome == "accepted"
    assert (OWNER1, "promotion.override", "refused") in await audit_actions(bot)
    assert override[0].details["reason"] == reason
    assert override[0].details["failed_gates"] == [
        f"at least 7 days in staging (Audit): 0 days (since {mode_set_on(stored)}, from the managedFields "
        "time of its mode field (policy-bot-tests))"
    ]
    assert (await bot.services.audit.verify()).ok


async def test_ready_condition_is_reported_when_kyverno_sets_it(
    planes: dict[str, ControlPlane],
    slack_emulator: SlackEmulator,
    apis: dict[str, Any],
    tmp_path: Path,
    clock: ShiftedClock,
) -> None:
    clock.offset = TEN_DAYS
    obj = seed.legacy_cluster_policy("ready-policy", action="Audit")
    seeded("staging", apis, obj)
    async with start_bot(planes, slack_emulator, tmp_path, clock, readiness_timeout_s=30) as bot:
        plan = await promote(bot, slack_emulator, OWNER1, "ready-policy")
        await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
        await settled(slack_emulator, plan, "waiting for Kyverno to report readiness (up to 30 s)")
        written = await read(apis, "staging", obj)
        assert written is not None
        await set_ready(planes, "staging", "ready-policy", written["metadata"]["generation"])
        done = await settled(slack_emulator, plan, "Ready on staging after")
        assert text_of(done.blocks).startswith(
            ":white_check_mark: <@U0OWNER1> promoted `ready-policy` to staging (Enforce) · "
            "Ready on staging after"
        )


async def test_mode_changed_outside_the_bot_shows_in_status_and_the_next_plan(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    obj = seed.legacy_cluster_policy("drift-policy", action="Audit")
    seeded("staging", apis, obj)
    plan = await promote(bot, slack_emulator, OWNER1, "drift-policy")
    await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
    await settled(slack_emulator, plan, "promoted `drift-policy` to staging (Enforce)")
    # Someone flips it back by hand, with their own field manager.
    promoted = await read(apis, "staging", obj)
    assert promoted is not None
    by_hand = clean(promoted)
    by_hand["spec"]["validationFailureAction"] = "Audit"
    by_hand["spec"]["rules"][0]["validate"]["failureAction"] = "Audit"
    await asyncio.to_thread(
        seed.apply_object, apis["staging"], by_hand, field_manager="kubectl-edit"
    )

    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "status drift-policy")
    status = await wait_for(lambda: slack_emulator.responses[answers:], what="status")
    text = text_of(status[0].payload["blocks"])
    assert ":warning: staging: mode changed outside policy-bot by kubectl-edit at " in text
    assert "the bot set Enforce, it is Audit now" in text
    assert "Promotion stage: staging (Audit)" in text

    plan = await promote(bot, slack_emulator, OWNER1, "drift-policy")
    text = text_of(plan.blocks)
    assert "Promote drift-policy: staging (Audit) → staging (Enforce)" in text
    assert "from the managedFields time of its mode field (kubectl-edit)" in text
    assert "mode changed outside policy-bot by kubectl-edit" in text


async def test_promote_refusals_and_bad_input(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any]
) -> None:
    seeded("staging", apis, seed.legacy_cluster_policy("refused-policy", action="Audit"))
    cases = [
        (
            ENGINEER,
            "promote refused-policy",
            "Only promoters may promote policies: <@U0OWNER1>, <@U0OWNER2>.",
        ),
        (OWNER1, "promote no-such-policy", "No policy called `no-such-policy` exists"),
        (OWNER1, "promote <!channel>", "`&lt;!channel&gt;` is not a policy name"),
        (OWNER1, "promote", "Usage: `/policy promote POLICY`"),
        (OWNER1, "demote refused-policy qa", "There is no environment called `qa`"),
    ]
    for user, text, expected in cases:
        answers = len(slack_emulator.responses)
        await command(bot, slack_emulator, user, text)
        got = await wait_for(
            lambda answers=answers: slack_emulator.responses[answers:],  # type: ignore[misc]
            what=text,
        )
        assert expected in got[0].payload["text"], (text, got[0].payload)
    assert slack_emulator.parents(CHANNEL) == []


async def test_one_name_for_two_kinds_is_named_by_kind(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    """Mid-migration a ClusterPolicy and a ValidatingPolicy share a name (Kyverno's library
    ships `disallow-proc-mount` as both): status shows both, actions ask which one."""
    clock.offset = TEN_DAYS
    seeded(
        "staging",
        apis,
        seed.legacy_cluster_policy("twin-policy", action="Audit"),
        seed.validating_policy("twin-policy", actions=("Audit",)),
    )
    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "promote twin-policy")
    got = await wait_for(lambda: slack_emulator.responses[answers:], what="the refusal")
    assert (
        got[0]
        .payload["text"]
        .endswith(
            "`twin-policy` names more than one policy (ClusterPolicy in staging, ValidatingPolicy "
            "in staging). Say which one: `cpol/twin-policy` or `vpol/twin-policy`."
        )
    )
    plan = await promote(bot, slack_emulator, OWNER1, "vpol/twin-policy")
    text = text_of(plan.blocks)
    assert "Promote twin-policy: staging (Audit) → staging (Enforce)" in text
    assert "`spec.validationActions`: `[Audit]` → `[Deny]`" in await diff_of(slack_emulator, plan)
    await click(bot, slack_emulator, "promote_confirm", OWNER1, plan)
    await settled(slack_emulator, plan, "promoted `twin-policy` to staging (Enforce)")
    vpol = await read(apis, "staging", seed.validating_policy("twin-policy"))
    cpol = await read(apis, "staging", seed.legacy_cluster_policy("twin-policy"))
    assert vpol is not None and vpol["spec"]["validationActions"] == ["Deny"]
    assert cpol is not None and cpol["spec"]["validationFailureAction"] == "Audit"  # untouched

    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "status twin-policy")
    got = await wait_for(lambda: slack_emulator.responses[answers:], what="the status answer")
    shown = text_of(got[0].payload["blocks"])
    assert "2 policies have this name: `cpol/twin-policy`, `vpol/twin-policy`." in shown
    assert "cpol/twin-policy · ClusterPolicy · 1 rule" in shown
    assert "vpol/twin-policy · ValidatingPolicy · 1 rule" in shown
    assert "*staging* · ValidatingPolicy · Enforce" in shown
    assert "*staging* · ClusterPolicy · Audit" in shown
    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "status staging cpol/twin-policy")
    got = await wait_for(lambda: slack_emulator.responses[answers:], what="the status answer")
    only = text_of(got[0].payload["blocks"])
    assert "cpol/twin-policy · ClusterPolicy" in only and "ValidatingPolicy" not in only
    answers = len(slack_emulator.responses)
    await command(bot, slack_emulator, OWNER1, "demote pol/twin-policy staging")
    got = await wait_for(lambda: slack_emulator.responses[answers:], what="the refusal")
    assert "Policy is namespaced: write `pol/NAMESPACE/NAME`." in got[0].payload["text"]


async def test_a_policy_gitops_owns_is_not_patched_silently(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    argo = seed.legacy_cluster_policy("argo-policy", action="Audit")
    argo["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "platform-policies:kyverno.io/ClusterPolicy:/argo-policy"
    }
    flux = seed.legacy_cluster_policy("flux-policy", action="Enforce")
    flux["metadata"]["labels"] = {
        "kustomize.toolkit.fluxcd.io/name": "policies",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    seeded("staging", apis, argo, flux)

    plan = await promote(bot, slack_emulator, OWNER1, "argo-policy")
    text = text_of(plan.blocks)
    assert (
        ":x: not managed by GitOps in staging: managed by Argo CD (Application platform-policies, "
        "annotation argocd.argoproj.io/tracking-id): Argo CD reverts a change made in the cluster "
        "at its next sync; make it in the Git source of Application platform-policies, or pause "
        "its sync and have an admin override"
    ) in text
    assert "*Blocked.*" in text
    assert actions_of(plan) == ["promote_override", "promote_cancel"]
    stored = await read(apis, "staging", argo)
    assert stored is not None and stored["spec"]["validationFailureAction"] == "Audit"

    # The outage lever still works, and says the controller will undo it.
    before = {m.ts for m in slack_emulator.parents(CHANNEL)}
    await command(bot, slack_emulator, OWNER1, "demote flux-policy staging")
    demoted = await wait_for(
        lambda: next((m for m in slack_emulator.parents(CHANNEL) if m.ts not in before), None),
        what="the demote announcement",
    )
    assert (
        ":warning: Managed by Flux (Kustomization flux-system/policies, label "
        "kustomize.toolkit.fluxcd.io/name): it puts the old mode back at its next sync."
    ) in text_of(demoted.blocks)
    stored = await read(apis, "staging", flux)
    assert stored is not None and stored["spec"]["validationFailureAction"] == "Audit"
