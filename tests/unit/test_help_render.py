"""`/policy help`: grouped by who may use it, one example each, and "did you mean".

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

from handlers.render import messages
from handlers.render.help import Entry, closest, help_message
from tests.goldens import golden_for
from tests.harness import blocks_text

ENVIRONMENTS = ["dev", "qac", "staging", "production"]
ENTRIES = [
    Entry("status", "status [ENV] [POLICY]", "policies per environment"),
    Entry("exception", "exception [POLICY]", "request a PolicyException"),
    Entry("exceptions", "exceptions [ENV]", "active exceptions"),
    Entry("backup", "backup [ENV|all]", "back up now"),
    Entry("restore", "restore BACKUP_ID ENV", "dry-run a backup, then restore it"),
    Entry("promote", "promote POLICY", "plan the next step on the ladder"),
    Entry("demote", "demote POLICY ENV", "switch a policy to Audit at once"),
    Entry("audit", "audit evidence [YYYY-MM] | audit verify", "evidence pack; check the chain"),
    Entry("doctor", "doctor [ENV]", "Kyverno health against the runbook"),
    Entry("help", "help", "this list"),
]


golden = golden_for("help")


def test_help_is_grouped_by_role_with_an_example_each() -> None:
    text, blocks = help_message(ENTRIES, environments=ENVIRONMENTS)
    golden("help", (text, blocks))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert [s.split("\n")[0].split(" — ")[0] for s in sections] == [
        "*Everyone*",
        "*Promoters*",
        "*Admins*",
    ]
    assert "`/policy promote POLICY`" in sections[1] and "promote" not in sections[0]
    assert "`/policy restore BACKUP_ID ENV`" in sections[2]
    words = blocks_text(blocks)
    for entry in ENTRIES:
        if entry.name != "help":
            assert f"`/policy {entry.usage}`" in words
    assert words.count("e.g. `/policy ") == 9
    assert "e.g. `/policy status production`" in words
    assert text == "policy-bot: what you can ask, by role"


def test_an_unknown_subcommand_gets_the_closest_match() -> None:
    names = [e.name for e in ENTRIES]
    assert closest("stauts", names) == "status"
    assert closest("promte", names) == "promote"
    assert closest("excepton", names) == "exception"
    assert closest("frobnicate", names) is None
    problem = (
        messages.UNKNOWN.format(sub="stauts") + " " + messages.DID_YOU_MEAN.format(sub="status")
    )
    text, blocks = help_message(ENTRIES, environments=ENVIRONMENTS, problem=problem)
    golden("unknown", (text, blocks))
    assert blocks_text(blocks[:1]) == (
        ":grey_question: There is no `/policy stauts` subcommand. Did you mean `/policy status`?"
    )
    assert text == "There is no /policy stauts subcommand. Did you mean /policy status?"
