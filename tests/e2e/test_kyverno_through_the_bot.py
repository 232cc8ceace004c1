"""Promotion and demotion through the bot's Slack interface, with a real Kyverno deciding.

The bot runs against the control plane Kyverno watches; each test scopes its policy to a
namespace of its own. The assertions are the API server's answers to creates a person would
make (refused with Kyverno's message, or admitted) and what Kyverno itself says: the Ready it
sets on the policy and the deprecation warning its webhook returns for kyverno.io/v1 writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from bot.clock import SYSTEM_CLOCK
from bot.playground import seed
from bot.playground.control_plane import Assets
from bot.playground.kyverno import Kyverno, KyvernoAssets, on_a_plane_of_its_own
from bot.playground.slack_emulator import Message, SlackEmulator
from tests.harness import RunningBot, blocks_text, bot_settings, running_bot

pytestmark = [pytest.mark.kube, pytest.mark.kyverno]

T = TypeVar("T")
CHANNEL = "C0PLATFORM"
REPORTS = "C0REPORTS"
OWNER1, OWNER2 = "U0OWNER1", "U0OWNER2"
ENV = "staging"
RULE = "check-for-labels"
LABEL = "app.kubernetes.io/name"
DEPRECATED = "kyverno.io/v1 ClusterPolicy is deprecated and will be removed in a future release"
READINESS_TIMEOUT_S = 60


@contextlib.asynccontextmanager
async def bot_on(
    emulator: SlackEmulator, tmp_path: Path, environments: dict[str, Kyverno]
) -> AsyncIterator[RunningBot]:
    """The bot on the planes Kyverno runs on; the ladder is Audit → Enforce in `staging`."""
    first = next(iter(environments.values()))
    settings = bot_settings(
        emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": name, "kubeconfig": str(k.plane.kubeconfig), "timeout_s": 10}
            for name, k in environments.items()
        ],
        extra={
            "slack": {
                "mode": "http",
                "channels": {"alerts": "C0ALERTS", "approvals": "C0APPROVALS", "reports": REPORTS},
                "roles": {
                    "promoters": {"users": [OWNER1, OWNER2]},
                    "admins": {"users": [OWNER1, OWNER2]},
                },
            },
            "exceptions": {"namespace": first.exception_namespace},
            "backup": {"targets": [{"type": "dir", "path": str(tmp_path / "backups")}]},
            "promotion": {
                "stages": [
                    {"environment": ENV, "mode": "Audit"},
                    {"environment": ENV, "mode": "Enforce"},
                ],
                "gates": [{"type": "max_failures", "max": 0}],
                "readiness_timeout_s": READINESS_TIMEOUT_S,
                "readiness_poll_s": 0.5,
            },
        },
    )
    emulator.add_channel(CHANNEL, "platform")
    emulator.add_channel(REPORTS, "policy-reports")
    for user, name in ((OWNER1, "ana"), (OWNER2, "ben")):
        emulator.add_user(user, name)
    # The API server and Kyverno keep the real time, and so does the bot here.
    async with running_bot(settings, emulator, clock=SYSTEM_CLOCK) as running:
        yield running


@pytest_asyncio.fixture
async def bot(
    kyverno: Kyverno, slack_emulator: SlackEmulator, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    async with bot_on(slack_emulator, tmp_path, {ENV: kyverno}) as running:
        yield running


def require_label_policy(name: str, namespace: str, action: str) -> dict[str, Any]:
    """kyverno/policies' require-labels on Pods (autogen covers Deployments), one namespace."""
    rule = seed.require_label_rule(RULE, label=LABEL, kinds=("Pod",), failure_action=action)
    rule["match"]["any"][0]["resources"]["namespaces"] = [namespace]
    policy = seed.legacy_cluster_policy(name, rules=[rule])
    del policy["spec"]["validationFailureAction"]  # per-rule failureAction, as the library has
    return policy


def create_deployment(kyverno: Kyverno, namespace: str, name: str) -> tuple[int, str]:
    """POST an unlabelled Deployment: the API server's status code and its message."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    code, answer = kyverno.request("POST", path, seed.deployment(name, namespace))
    return code, str(answer.get("message", ""))


async def wait_for(condition: Callable[[], T | None], *, what: str, timeout: float = 30) -> T:
    """Poll `condition` (run off the loop: it may call the API server) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(condition)
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.25)


async def command(bot: RunningBot, user: str, text: str) -> None:
    interaction = await bot.slack.command("/policy", text, user=user, channel=CHANNEL)
    assert interaction.response.status == 200, interaction.response.text


async def demote(bot: RunningBot, emulator: SlackEmulator, user: str, text: str) -> None:
    """`/policy demote …` in the ladder's last environment, which the bot treats as
    production: it asks first, and the demote happens on the confirming click."""
    asked = {e.ts for e in emulator.ephemeral(CHANNEL, user)}
    await command(bot, user, f"demote {text}")
    prompt = await wait_for(
        lambda: next(
            (
                e
                for e in emulator.ephemeral(CHANNEL, user)
                if e.ts not in asked and "demote_confirm" in str(e.blocks)
            ),
            None,
        ),
        what="the demote prompt",
    )
    click = await bot.slack.block_action(
        "demote_confirm", user=user, channel=CHANNEL, message_ts=prompt.ts, ephemeral=True
    )
    assert click.response.status == 200


async def new_parent(emulator: SlackEmulator, before: set[str], prefix: str) -> Message:
    return await wait_for(
        lambda: next(
            (
                m
                for m in emulator.parents(CHANNEL)
                if m.ts not in before and m.text.startswith(prefix)
            ),
            None,
        ),
        what=f"a message starting {prefix!r}",
    )


async def settled(emulator: SlackEmulator, message: Message, needle: str) -> str:
    seen = [""]

    def done() -> str | None:
        now = emulator.message(CHANNEL, message.ts)
        seen[0] = blocks_text(now.blocks) if now is not None else ""
        return seen[0] if needle in seen[0] else None

    try:
        # A little beyond the bot's own readiness timeout, so its verdict is what we read.
        return await wait_for(
            done, what=f"the message to say {needle!r}", timeout=READINESS_TIMEOUT_S + 15
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}; the message says: {seen[0]!r}") from None


async def test_promote_to_enforce_refuses_demote_admits_and_kyverno_warns(
    kyverno: Kyverno,
    bot: RunningBot,
    slack_emulator: SlackEmulator,
    namespace: str,
    policy_name: str,
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Audit"))
    kyverno.wait_policy_ready(policy_name)
    code, _ = await asyncio.to_thread(create_deployment, kyverno, namespace, "audited")
    assert code == 201, "Audit admits"

    # /policy promote: the plan, then a second person confirms (the only environment is
    # production as far as the ladder knows).
    before = {m.ts for m in slack_emulator.parents(CHANNEL)}
    await command(bot, OWNER1, f"promote {policy_name}")
    plan = await new_parent(slack_emulator, before, "Promotion plan")
    assert f"Promote {policy_name}: {ENV} (Audit) → {ENV} (Enforce)" in blocks_text(plan.blocks)
    # Kyverno's background scan reports the admitted Deployment; the gate sees what it wrote
    # only once the report exists, so the plan may pass or block on it: both are honest.
    started = time.monotonic()
    click = await bot.slack.block_action(
        "promote_confirm", user=OWNER2, channel=CHANNEL, message_ts=plan.ts
    )
    assert click.response.status == 200
    applied = await settled(slack_emulator, plan, f"Ready on {ENV} after")
    ready_after = time.monotonic() - started
    assert f"<@{OWNER2}> promoted `{policy_name}` to {ENV} (Enforce)" in applied
    assert f"The API server of {ENV} warned:" in applied and DEPRECATED in applied

    stored = await asyncio.to_thread(kyverno.policy, policy_name)
    assert stored["spec"]["rules"][0]["validate"]["failureAction"] == "Enforce"

    # Kyverno now refuses what it admitted before, with its own message.
    code, message = await asyncio.to_thread(create_deployment, kyverno, namespace, "refused")
    assert code == 400, message
    assert message.startswith('admission webhook "validate.kyverno.svc-fail" denied the request')
    assert f"\n{policy_name}:\n" in message

    # /policy demote: the outage lever. Admitted again within seconds of Kyverno's Ready.
    before = {m.ts for m in slack_emulator.parents(CHANNEL)}
    await demote(bot, slack_emulator, OWNER1, f"{policy_name} {ENV}")
    demoted = await new_parent(slack_emulator, before, f"{policy_name} demoted to Audit in {ENV}")
    text = await settled(slack_emulator, demoted, f"Ready on {ENV} after")
    assert f":arrow_down: <@{OWNER1}> demoted `{policy_name}` to Audit in *{ENV}*" in text
    assert DEPRECATED in text
    lever = time.monotonic()

    def admitted() -> bool:
        name = f"after-demote-{secrets.token_hex(2)}"
        return create_deployment(kyverno, namespace, name)[0] == 201

    await wait_for(admitted, what="a create admitted after the demote", timeout=20)
    print(
        f"\npromotion applied and Ready after {ready_after:.1f} s; "
        f"first create admitted {time.monotonic() - lever:.1f} s after the demote said Ready"
    )


async def doctor_answer(bot: RunningBot, emulator: SlackEmulator) -> str:
    """`/policy doctor staging` as a person types it; the text of the answer."""
    before = len(emulator.responses)
    await command(bot, OWNER1, f"doctor {ENV}")

    def answered() -> str | None:
        for response in emulator.responses[before:]:
            text = blocks_text(response.payload.get("blocks") or [])
            if "resource filters" in text or "Resource filters" in text:
                return text
        return None

    return await wait_for(answered, what="the doctor's answer", timeout=60)


async def test_doctor_counts_what_still_uses_the_deprecated_api_and_the_twins(
    kyverno: Kyverno, bot: RunningBot, slack_emulator: SlackEmulator, namespace: str
) -> None:
    name = f"disallow-proc-mount-{secrets.token_hex(3)}"
    kyverno.apply(require_label_policy(name, namespace, "Audit"))
    twin = seed.validating_policy(name, actions=("Audit",))
    twin["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }
    kyverno.apply(twin)
    try:
        text = await doctor_answer(bot, slack_emulator)
        assert " the deprecated kyverno.io API (" in text
        assert f"ClusterPolicy {name} → ValidatingPolicy" in text
    finally:
        kyverno.delete_policy(name)
        await asyncio.to_thread(
            kyverno.request, "DELETE", f"/apis/policies.kyverno.io/v1/validatingpolicies/{name}"
        )


async def test_a_namespace_the_doctor_reports_filtered_is_really_not_validated(
    kyverno: Kyverno,
    bot: RunningBot,
    slack_emulator: SlackEmulator,
    namespace: str,
    policy_name: str,
) -> None:
    text = await doctor_answer(bot, slack_emulator)
    # The fixture runs the chart's filters without the Kyverno namespace's own entry, which
    # the doctor flags; the system namespaces it names as excluded.
    assert "they do exclude kube-system, kube-public, kube-node-lease" in text

    policy = require_label_policy(policy_name, namespace, "Enforce")
    policy["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaces"] = [
        namespace,
        "kube-public",
    ]
    kyverno.apply(policy)
    kyverno.wait_policy_ready(policy_name)
    name = f"unlabelled-{secrets.token_hex(3)}"
    code, message = await asyncio.to_thread(create_deployment, kyverno, namespace, name)
    assert code == 400 and f"\n{policy_name}:\n" in message, "validated where not filtered"
    code, message = await asyncio.to_thread(create_deployment, kyverno, "kube-public", name)
    try:
        assert code == 201, f"kube-public is filtered, yet Kyverno answered: {message}"
    finally:
        await asyncio.to_thread(
            kyverno.request, "DELETE", f"/apis/apps/v1/namespaces/kube-public/deployments/{name}"
        )


@pytest.fixture(scope="module")
def empty_kyverno(
    kyverno_assets: KyvernoAssets, kube_assets: Assets, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kyverno]:
    """A second, empty control plane with Kyverno running: where a backup is restored."""
    base = tmp_path_factory.mktemp("restored")
    with on_a_plane_of_its_own(kyverno_assets, kube_assets, base) as running:
        yield running


async def test_a_backup_restored_into_a_rebuilt_cluster_decides_the_same(
    kyverno: Kyverno,
    empty_kyverno: Kyverno,
    slack_emulator: SlackEmulator,
    tmp_path: Path,
    namespace: str,
    policy_name: str,
) -> None:
    """Disaster recovery as a person does it: staging is backed up; its cluster is lost and
    rebuilt empty with Kyverno; the restore puts the policies back and Kyverno decides as
    before. The restore's messages carry what Kyverno's webhook said about each write."""
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    code, message = await asyncio.to_thread(create_deployment, kyverno, namespace, "unlabelled")
    assert code == 400 and f"\n{policy_name}:\n" in message

    async with bot_on(slack_emulator, tmp_path, {ENV: kyverno}) as bot:
        await command(bot, OWNER1, f"backup {ENV}")
        upload = await wait_for(
            lambda: next((f for f in slack_emulator.files if f.completed), None),
            what="the backup's bundle in Slack",
            timeout=120,
        )
    backup_id = upload.filename.removesuffix(".tar.gz")

    # The same bot (same store, same backup folder), its staging now the rebuilt cluster.
    async with bot_on(slack_emulator, tmp_path, {ENV: empty_kyverno}) as bot:
        before = {m.ts for m in slack_emulator.parents(REPORTS)}
        await command(bot, OWNER1, f"restore {backup_id} {ENV}")
        plan = await wait_for(
            lambda: next(
                (
                    m
                    for m in slack_emulator.parents(REPORTS)
                    if m.ts not in before and "dry run" in blocks_text(m.blocks)
                ),
                None,
            ),
            what="the restore plan",
            timeout=60,
        )
        text = blocks_text(plan.blocks)
        assert f":new: created ClusterPolicy `{policy_name}`" in text
        assert f"The API server of {ENV} warned:" in text and DEPRECATED in text
        click = await bot.slack.block_action(
            "restore_confirm", user=OWNER2, channel=REPORTS, message_ts=plan.ts
        )
        assert click.response.status == 200

        def restored() -> str | None:
            current = slack_emulator.message(REPORTS, plan.ts)
            found = blocks_text(current.blocks) if current is not None else ""
            return found if f"restored {backup_id} into *{ENV}*" in found else None

        done = await wait_for(restored, what="the restore's outcome", timeout=120)
        assert ", 0 failed" not in done and "failed" not in done.split("\n")[0]
        assert DEPRECATED in done

    await asyncio.to_thread(
        empty_kyverno.request, "POST", "/api/v1/namespaces", seed.namespace(namespace)
    )
    empty_kyverno.wait_policy_ready(policy_name)

    def decided() -> tuple[int, str] | None:
        # A fresh name each try: a create admitted while Kyverno still loads the policy must
        # not turn the next try into "already exists".
        answer = create_deployment(empty_kyverno, namespace, f"unlabelled-{secrets.token_hex(2)}")
        return answer if answer[0] != 201 else None

    code, message = await wait_for(decided, what="the rebuilt cluster to refuse", timeout=60)
    assert code == 400 and f"\n{policy_name}:\n" in message
    labelled = seed.deployment("labelled", namespace, labels={LABEL: "web"})
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    assert (await asyncio.to_thread(empty_kyverno.request, "POST", path, labelled))[0] == 201


async def test_a_validating_policy_promoted_to_deny_refuses_and_demoted_admits(
    kyverno: Kyverno, bot: RunningBot, slack_emulator: SlackEmulator, namespace: str
) -> None:
    """The same lever for a policies.kyverno.io ValidatingPolicy: `validationActions`."""
    name = f"vpol-team-{secrets.token_hex(3)}"
    policy = seed.validating_policy(name, actions=("Audit",))
    policy["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }
    kyverno.apply(policy)
    path = f"/apis/policies.kyverno.io/v1/validatingpolicies/{name}"
    try:

        def created(suffix: str) -> tuple[int, str]:
            return create_deployment(kyverno, namespace, f"{suffix}-{secrets.token_hex(2)}")

        assert (await asyncio.to_thread(created, "audited"))[0] == 201

        before = {m.ts for m in slack_emulator.parents(CHANNEL)}
        await command(bot, OWNER1, f"promote vpol/{name}")
        plan = await new_parent(slack_emulator, before, "Promotion plan")
        assert f"Promote {name}: {ENV} (Audit) → {ENV} (Enforce)" in blocks_text(plan.blocks)
        click = await bot.slack.block_action(
            "promote_confirm", user=OWNER2, channel=CHANNEL, message_ts=plan.ts
        )
        assert click.response.status == 200
        await settled(slack_emulator, plan, f"Ready on {ENV} after")
        stored = await asyncio.to_thread(kyverno.get, path)
        assert stored["spec"]["validationActions"] == ["Deny"]

        def refused() -> str | None:
            code, message = created("denied")
            return message if code == 400 else None

        # Kyverno registers a ValidatingPolicy's webhook rules when it first needs them:
        # on a busy machine that can take a while.
        message = await wait_for(
            refused, what="Kyverno to deny under the promoted policy", timeout=90
        )
        assert f"Policy {name} failed: The label `team` is required." in message

        before = {m.ts for m in slack_emulator.parents(CHANNEL)}
        await demote(bot, slack_emulator, OWNER1, f"vpol/{name} {ENV}")
        demoted = await new_parent(slack_emulator, before, f"{name} demoted to Audit in {ENV}")
        await settled(slack_emulator, demoted, f"Ready on {ENV} after")

        def admitted() -> bool:
            return created("after-demote")[0] == 201

        await wait_for(admitted, what="a create admitted after the demote", timeout=60)
    finally:
        await asyncio.to_thread(kyverno.request, "DELETE", path)
