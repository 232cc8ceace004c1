"""The monthly evidence pack: months, deterministic files, audit lines an auditor can verify."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import GENESIS_HASH, ChainVerifier, next_entry
from bot.backup.evidence import (
    EvidenceInputs,
    build_evidence,
    parse_month,
    previous_month,
)
from bot.errors import ClusterUnavailable
from bot.kinds import KIND_SPECS, Kind
from bot.policies import policy_from_object
from bot.ports.exception_register import RegisterEntry
from bot.ports.snapshot import Snapshot
from bot.reports import Tally

AT = datetime(2026, 12, 1, 3, tzinfo=UTC)
CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")


def test_months() -> None:
    assert parse_month("2026-11") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert parse_month("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-1", "26-01", "2026-00", "x"):
        with pytest.raises(ValueError):
            parse_month(bad)
    assert previous_month(AT) == "2026-11"
    assert previous_month(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-12"


REGISTER = [
    RegisterEntry(
        "dev", "pe-1", "kyverno-exceptions", ("require-labels",), "active", "SEC-1",
        "U2", "U3", AT - timedelta(days=20), AT + timedelta(days=10),
    ),
    RegisterEntry(
        "dev", "hand|made", "kyverno-exceptions", ("x",), "unmanaged", None, None, None,
        None, None,
    ),
]  # fmt: skip


def _inputs() -> EvidenceInputs:
    policy = policy_from_object(
        CPOL,
        {
            "metadata": {"name": "require-labels"},
            "spec": {
                "validationFailureAction": "Enforce",
                "rules": [{"name": "r", "validate": {}}],
            },
        },
    )
    tally = Tally().add_reports(
        [
            {
                "metadata": {"namespace": "shop"},
                "results": [
                    {"policy": "require-labels", "result": "fail", "source": "kyverno"},
                    {"policy": "require-labels", "result": "pass", "source": "kyverno"},
                ],
            }
        ]
    )
    entries = []
    head = None
    for i in range(3):
        entry = next_entry(
            head,
            at=AT - timedelta(days=10 - i),
            actor="U1",
            action="command.status",
            outcome="ok",
            details={"text": f"status {i}", "note": "ünïcode"},
        )
        entries.append(entry)
        head = entry.link
    verifier = ChainVerifier()
    verifier.feed(entries)
    return EvidenceInputs(
        month="2026-11",
        generated_at=AT,
        bot_version="0.1.0",
        snapshots=[
            Snapshot("dev", policies=(policy,), tally=tally),
            Snapshot("prod", error=ClusterUnavailable("prod", "timed out")),
        ],
        register=REGISTER,
        register_source="store",
        audit_entries=entries,
        head=entries[-1],
        verify=verifier.report(),
    )


def test_pack_is_deterministic_and_complete() -> None:
    pack = build_evidence(_inputs())
    assert pack.files == build_evidence(_inputs()).files
    assert sorted(pack.files) == [
        "MANIFEST", "audit-chain.json", "audit.jsonl", "exceptions.json", "policies.json",
        "report.md", "violations.json",
    ]  # fmt: skip
    manifest = json.loads(pack.files["MANIFEST"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(pack.files[name]).hexdigest() == digest
    policies = json.loads(pack.files["policies.json"])
    assert policies["dev"][0]["mode"] == "Enforce" and "error" in policies["prod"]
    violations = json.loads(pack.files["violations.json"])
    assert violations["dev"]["by_policy"][0]["failing_namespaces"] == {"shop": 1}
    report = pack.report.decode()
    assert "# Kyverno policy evidence · 2026-11" in report
    assert "| require-labels | ClusterPolicy | Enforce | not reported |" in report
    assert "- **dev**: 1 fail · 0 warn · 0 error · 1 pass (1 reports)" in report
    assert "  - require-labels: 1 fail (shop 1)" in report
    assert "| dev | kyverno-exceptions/hand\\|made | x | unmanaged | — |" in report
    assert "SEC-1 | U2 | U3 | 2026-12-11T03:00:00Z |" in report
    assert "Chain check at export: audit trail intact: 3 entries" in report
    assert pack.summary["head_id"] == 3 and pack.summary["chain_ok"] is True


def test_audit_lines_verify_with_nothing_but_json_and_hashlib() -> None:
    lines = build_evidence(_inputs()).files["audit.jsonl"].decode().splitlines()
    previous = GENESIS_HASH
    for line in lines:
        entry = json.loads(line)
        fields = {k: v for k, v in entry.items() if k != "hash"}
        assert fields["prev_hash"] == previous
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode()).hexdigest() == entry["hash"]
        previous = entry["hash"]
    chain = json.loads(build_evidence(_inputs()).files["audit-chain.json"])
    assert chain["head"]["hash"] == previous and chain["month_entries"] == 3
