"""The audit trail's hash chain, without any I/O.

Every command and state change becomes an `AuditEntry` whose `hash` is the SHA-256 of a
canonical JSON serialisation of all its fields, including `prev_hash`, the hash of the entry
before it (64 zeros for the first). Changing, removing or reordering any stored entry breaks
either its own hash or the link from its successor, and `ChainVerifier` names the first entry
where that happens. Rewriting the whole tail after an entry consistently is only detectable
against a chain head published elsewhere (the monthly evidence pack), which is what the
`anchors` of `ChainVerifier` are for.

This module is pure so the exact bytes that are hashed can be unit-tested and reproduced by
an auditor with nothing but `json` and `hashlib`:

    sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False))

where `fields` holds id, at (RFC 3339 UTC with microseconds and a "Z"), actor, action,
environment, target, outcome, details and prev_hash. Persistence lives in
`bot.store.audit_trail`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, TypeAlias

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first entry: there is no entry before it."""

MAX_ACTOR = 64
MAX_ACTION = 64
MAX_ENVIRONMENT = 63
MAX_TARGET = 512
MAX_OUTCOME = 32

JsonValue: TypeAlias = (
    bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None
)
JsonObject: TypeAlias = Mapping[str, JsonValue]


def canonical_json(value: object) -> str:
    """One fixed text for one JSON value: sorted keys, no spaces, UTF-8 kept as is.

    `ensure_ascii=False` keeps "ü" as one character instead of an escape, so the hashed bytes
    are the UTF-8 an auditor sees. NaN and infinities are refused: they are not JSON and
    other tools could not reproduce the hash. Datetimes and enums, common in details, are
    written as ISO text and their value.
    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=canonical_json)
    raise TypeError(f"audit details cannot hold a {type(value).__name__}: {value!r}")


def format_timestamp(at: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits, e.g. 2025-03-01T12:00:00.000000Z.

    A fixed width keeps the hashed text independent of whether the microseconds are zero,
    and both SQLite and PostgreSQL store microsecond precision, so a stored entry hashes to
    the same value when read back.
    """
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain ends: the id and hash the next entry continues from."""

    id: int
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One sealed entry of the trail; `hash` covers every other field."""

    id: int
    at: datetime
    actor: str
    action: str
    outcome: str
    environment: str | None
    target: str | None
    details: JsonObject
    prev_hash: str
    hash: str

    @property
    def link(self) -> ChainHead:
        return ChainHead(id=self.id, hash=self.hash)


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    environment: str | None,
    target: str | None,
    details: JsonObject,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical serialisation of an entry's fields."""
    fields: dict[str, Any] = {
        "id": id,
        "at": format_timestamp(at),
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "environment": environment,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def content_hash(entry: AuditEntry) -> str:
    """What `entry.hash` should be, recomputed from the entry's other fields."""
    return entry_hash(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        outcome=entry.outcome,
        environment=entry.environment,
        target=entry.target,
        details=entry.details,
        prev_hash=entry.prev_hash,
    )


def normalize_details(details: Mapping[str, object] | None) -> dict[str, JsonValue]:
    """The details exactly as they will read back from storage (tuples become lists, ...).

    Hashing the normalised form rather than the caller's object makes the hash of a fresh
    entry equal to the hash recomputed from the stored row.
    """
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a JSON object (a mapping)")
    text = canonical_json(dict(details))
    _check_encodable("details", text)
    normalized: dict[str, JsonValue] = json.loads(text)
    return normalized


def next_entry(
    head: ChainHead | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    environment: str | None = None,
    target: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Seal a new entry that continues the chain after `head` (None: the chain is empty)."""
    clean = validate_fields(
        actor=actor,
        action=action,
        outcome=outcome,
        environment=environment,
        target=target,
        details=details,
    )
    entry_id = 1 if head is None else head.id + 1
    prev_hash = GENESIS_HASH if head is None else head.hash
    format_timestamp(at)  # refuses naive datetimes
    at = at.astimezone(UTC)
    digest = entry_hash(
        id=entry_id,
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        environment=environment,
        target=target,
        details=clean,
        prev_hash=prev_hash,
    )
    return AuditEntry(
        id=entry_id,
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        environment=environment,
        target=target,
        details=clean,
        prev_hash=prev_hash,
        hash=digest,
    )


def validate_fields(
    *,
    actor: str,
    action: str,
    outcome: str,
    environment: str | None,
    target: str | None,
    details: Mapping[str, object] | None,
) -> dict[str, JsonValue]:
    """Refuse fields that cannot be stored (empty, too long, not JSON); returns clean details.

    Callers check before taking the chain lock, so bad input never holds up other writers.
    """
    _check_text("actor", actor, MAX_ACTOR)
    _check_text("action", action, MAX_ACTION)
    _check_text("outcome", outcome, MAX_OUTCOME)
    if environment is not None:
        _check_text("environment", environment, MAX_ENVIRONMENT)
    if target is not None:
        _check_text("target", target, MAX_TARGET)
    return normalize_details(details)


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"audit {name} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"audit {name} is longer than {limit} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ValueError(f"audit {name} must not contain NUL characters")
    _check_encodable(name, value)


def _check_encodable(name: str, value: str) -> None:
    # Lone surrogates cannot be UTF-8 encoded, so they could be neither hashed nor stored.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"audit {name} holds text that is not valid Unicode") from None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of checking the chain from its first entry.

    `checked` counts the entries that verified before the first problem (all of them when
    `ok`); `head_id`/`head_hash` are the last entry that verified, which is the chain head
    to publish when `ok`.
    """

    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str
    head_id: int | None
    head_hash: str | None

    def describe(self) -> str:
        """One line for a terminal or a log."""
        if self.ok:
            if self.head_id is None:
                return "audit trail intact: no entries yet"
            return (
                f"audit trail intact: {self.checked} entries, "
                f"head is entry {self.head_id} with hash {self.head_hash}"
            )
        return f"audit trail BROKEN: {self.reason} ({self.checked} entries verified before it)"


@dataclass(slots=True)
class ChainVerifier:
    """Checks entries fed in id order, one page at a time, in constant memory.

    Stops at the first problem: once a link is broken every later entry is suspect, and
    the first bad id is what an investigator needs. `anchors` maps entry ids to hashes
    published earlier (evidence packs); a mismatch there means the chain was rewritten
    from that point on, and an anchor beyond the end means it was truncated.
    """

    anchors: Mapping[int, str] = field(default_factory=dict)
    checked: int = 0
    _head: ChainHead | None = None
    _problem: tuple[int, str] | None = None

    @property
    def broken(self) -> bool:
        return self._problem is not None

    def feed(self, entries: Iterable[AuditEntry]) -> bool:
        """Verify the next entries; returns False once the chain is known to be broken."""
        for entry in entries:
            if self._problem is not None:
                return False
            self._check(entry)
        return self._problem is None

    def reject(self, entry_id: int, reason: str) -> None:
        """Record a problem found while reading an entry (it could not even be parsed)."""
        if self._problem is None:
            self._problem = (entry_id, f"entry {entry_id}: {reason}")

    def report(self) -> VerifyReport:
        """The verdict for everything fed so far, including anchors past the end."""
        problem = self._problem
        if problem is None:
            last = self._head.id if self._head is not None else 0
            beyond = sorted(i for i in self.anchors if i > last)
            if beyond:
                problem = (
                    beyond[0],
                    f"entry {beyond[0]} is missing: the trail ends at entry {last} "
                    "but a published chain head names a later entry (entries were removed "
                    "from the end)",
                )
        head = self._head
        return VerifyReport(
            ok=problem is None,
            checked=self.checked,
            first_bad_id=None if problem is None else problem[0],
            reason="" if problem is None else problem[1],
            head_id=None if head is None else head.id,
            head_hash=None if head is None else head.hash,
        )

    def _check(self, entry: AuditEntry) -> None:
        expected_id = 1 if self._head is None else self._head.id + 1
        if entry.id != expected_id:
            self._problem = (expected_id, _missing(expected_id, entry.id, self._head))
            return
        if content_hash(entry) != entry.hash:
            self._problem = (entry.id, f"entry {entry.id}: hash does not match its content")
            return
        expected_prev = GENESIS_HASH if self._head is None else self._head.hash
        if entry.prev_hash != expected_prev:
            if self._head is None:
                reason = f"entry {entry.id}: prev_hash is not the genesis hash"
            else:
                reason = f"entry {entry.id}: prev_hash does not link to entry {self._head.id}"
            self._problem = (entry.id, reason)
            return
        anchor = self.anchors.get(entry.id)
        if anchor is not None and anchor != entry.hash:
            self._problem = (
                entry.id,
                f"entry {entry.id}: hash differs from the published chain head "
                "(the chain was rewritten from here on)",
            )
            return
        self._head = entry.link
        self.checked += 1


def _missing(expected: int, found: int, head: ChainHead | None) -> str:
    if found < expected:  # ids are read in ascending order; only a duplicate gets here
        return f"entry {found} appears twice"
    what = (
        f"entry {expected} is"
        if found == expected + 1
        else f"entries {expected} to {found - 1} are"
    )
    if head is None:
        return f"{what} missing (the trail starts at entry {found})"
    return f"{what} missing (ids jump from {head.id} to {found})"


def verify_chain(
    entries: Iterable[AuditEntry], *, anchors: Mapping[int, str] | None = None
) -> VerifyReport:
    """Verify a whole chain held in memory (tests, small exports)."""
    verifier = ChainVerifier(anchors=dict(anchors or {}))
    verifier.feed(entries)
    return verifier.report()
