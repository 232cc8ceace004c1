"""Kyverno's readiness report: which reports count as news about the bot's write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.promotion.readiness import (
    NOT_READY,
    READY,
    STILL_READY,
    TIMEOUT,
    Condition,
    condition,
    fresh_report,
    wait_ready,
)

WRITTEN = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)


def legacy(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": status, **extra}]}}


def test_conditions_of_both_policy_families():
    assert condition(legacy("True", message="Ready", observedGeneration=3)) == Condition(
        True, "Ready", 3, None
    )
    assert condition({"status": {"ready": False}}) == Condition(False, "", None, None)
    cel = {"status": {"conditionStatus": {"ready": True, "message": "ok", "conditions": []}}}
    assert condition(cel) == Condition(True, "ok", None, None)
    assert condition({"status": {}}) is None and condition(None) is None


def test_only_reports_about_the_write_count():
    old = Condition(True, "", None, datetime(2026, 11, 1, tzinfo=UTC))
    assert fresh_report(old, generation=2, created=False, before=old, written_at=WRITTEN) is None
    assert fresh_report(old, generation=2, created=True, before=None, written_at=WRITTEN) == old
    newer = Condition(False, "bad pattern", None, WRITTEN)
    assert fresh_report(newer, generation=2, created=False, before=old, written_at=WRITTEN)
    stale_gen = Condition(True, "", 1, None)
    assert (
        fresh_report(stale_gen, generation=2, created=True, before=None, written_at=WRITTEN) is None
    )
    assert fresh_report(
        Condition(True, "", 2, None), generation=2, created=False, before=None, written_at=WRITTEN
    )


async def test_wait_times_out_quickly_without_kyverno_and_sees_a_report_when_it_comes():
    reads = 0

    async def never() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"status": {}}

    result = await wait_ready(
        never,
        generation=1,
        created=True,
        before=None,
        written_at=WRITTEN,
        timeout_s=0.2,
        poll_s=0.05,
    )
    assert result.state == TIMEOUT and reads >= 2
    assert result.describe("staging") == "Kyverno has not reported readiness within 0.2 s"

    answers = iter([{"status": {}}, legacy("False", message="webhook down")])

    async def later() -> dict[str, Any]:
        return next(answers, legacy("False", message="webhook down"))

    result = await wait_ready(
        later,
        generation=1,
        created=True,
        before=None,
        written_at=WRITTEN,
        timeout_s=0.3,
        poll_s=0.01,
    )
    assert result.state == NOT_READY and result.after_s >= 0.3
    assert result.describe("staging") == "Kyverno reports it not Ready on staging: webhook down"

    async def ready() -> dict[str, Any]:
        return legacy("True", observedGeneration=1)

    result = await wait_ready(
        ready, generation=1, created=False, before=None, written_at=WRITTEN, timeout_s=5, poll_s=1
    )
    assert result.state == READY and result.describe("qac").startswith("Ready on qac after 0 s")


async def test_an_unchanged_ready_after_an_update_is_said_to_be_still_ready():
    """Kyverno 1.19 keeps a legacy policy's Ready (same lastTransitionTime, no generation)
    across a change that leaves it valid; the wait says "still Ready", not "no answer"."""
    was = legacy("True", message="Ready", lastTransitionTime="2026-11-01T00:00:00Z")
    before = condition(was)

    async def unchanged() -> dict[str, Any]:
        return was

    result = await wait_ready(
        unchanged,
        generation=2,
        created=False,
        before=before,
        written_at=WRITTEN,
        timeout_s=5,
        poll_s=0.02,
        settle_s=0.1,
    )
    assert result.state == STILL_READY and 0.1 <= result.after_s < 5
    assert result.describe("production").startswith("still Ready on production after 0 s (Kyverno")

    # Not Ready before the write: an unchanged condition proves nothing, so the wait times out.
    failing = legacy("False", message="webhook down")

    async def still_failing() -> dict[str, Any]:
        return failing

    result = await wait_ready(
        still_failing,
        generation=2,
        created=False,
        before=condition(failing),
        written_at=WRITTEN,
        timeout_s=0.3,
        poll_s=0.02,
        settle_s=0.1,
    )
    assert result.state == TIMEOUT


async def test_a_not_ready_while_the_webhook_catches_up_is_not_the_verdict():
    """Kyverno 1.19 marks a ValidatingPolicy "not configured in the webhook" right after a
    change and Ready once its webhook controller caught up: the answer is Ready."""
    catching_up = {
        "status": {
            "conditionStatus": {
                "ready": False,
                "message": "Policy is not configured in the webhook.",
                "conditions": [],
            }
        }
    }
    caught_up = {"status": {"conditionStatus": {"ready": True, "conditions": []}}}
    answers = iter([catching_up, catching_up, catching_up])

    async def read() -> dict[str, Any]:
        return next(answers, caught_up)

    result = await wait_ready(
        read, generation=2, created=False, before=None, written_at=WRITTEN, timeout_s=5, poll_s=0.01
    )
    assert result.state == READY
