"""Kyverno's resource filters: the `resourceFilters` key of its ConfigMap, parsed as Kyverno does.

The value is a string of bracketed entries, `[Kind,Namespace,Name]`, in any layout (the chart
writes one per line; older charts joined them without a separator). Kyverno finds the entries
with the regular expression `\\[([^\\[\\]]*)\\]`, splits each on commas without trimming, and
reads one, two or three parts (`pkg/config/types.go` `parseKinds`). The kind part is a kind
selector: `Kind`, `Kind/subresource`, `*/*` or `group/version/Kind[/subresource]`.

Every part is matched with Kyverno's wildcards (`*`, `?`), and an empty pattern matches only an
empty value. That makes two things that look harmless in a hand-written ConfigMap do nothing:
spaces (`[Event, *, *]` has the namespace pattern `" *"`) and two-part entries
(`[Event,default]` has an empty name pattern, so it only matches objects without a name). The
parser keeps such entries exactly as Kyverno would and says what is wrong with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

ENTRY = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class ResourceFilter:
    """One `[Kind,Namespace,Name]` entry, with its parts exactly as written."""

    kind: str
    namespace: str
    name: str
    raw: str
    parts: int

    @property
    def selector(self) -> tuple[str, str, str, str]:
        """(group, version, kind, subresource) of the kind part, as Kyverno reads it."""
        return kind_selector(self.kind)

    @property
    def problem(self) -> str | None:
        """Why the entry does not do what it looks like, or None when it is sound."""
        if self.parts > 3:
            return f"`{self.raw}` has {self.parts} parts; Kyverno reads at most three"
        if not self.kind:
            return f"`{self.raw}` is empty and filters nothing"
        if any(p != p.strip() for p in (self.kind, self.namespace, self.name)):
            return (
                f"`{self.raw}` contains spaces, which Kyverno keeps as part of the pattern, "
                "so it never matches"
            )
        if self.parts == 2:
            return (
                f"`{self.raw}` has no name part; Kyverno then matches only objects without a "
                "name, so write `[Kind,Namespace,*]`"
            )
        if self.parts == 1:
            return f"`{self.raw}` has only a kind; write `[{self.kind},*,*]`"
        return None

    def matches(self, kind: str, namespace: str, name: str, *, subresource: str = "") -> bool:
        """Whether Kyverno would skip an object of `kind` called `name` in `namespace`.

        Follows `ToFilter`: group and version are not known here and are taken to match.
        For a Namespace object, the namespace pattern is also matched against its name.
        """
        if self.parts > 3:
            return False
        _, _, kind_pattern, sub_pattern = self.selector
        if not (wildcard(kind_pattern, kind) and wildcard(sub_pattern, subresource)):
            return False
        if wildcard(self.namespace, namespace) and wildcard(self.name, name):
            return True
        return kind == "Namespace" and wildcard(self.namespace, name)

    def covers_namespace(self, namespace: str) -> bool:
        """Whether the entry skips every kind and name in `namespace` (`[*,ns,*]`)."""
        _, _, kind_pattern, _ = self.selector
        return (
            self.problem is None
            and _everything(kind_pattern)
            and wildcard(self.namespace, namespace)
            and _everything(self.name)
        )

    def covers_kind(self, kind: str, *, subresource: str = "") -> bool:
        """Whether the entry skips `kind` (or its `subresource`) everywhere (`[Kind,*,*]`)."""
        _, _, kind_pattern, sub_pattern = self.selector
        return (
            self.problem is None
            and wildcard(kind_pattern, kind)
            and wildcard(sub_pattern, subresource)
            and _everything(self.namespace)
            and _everything(self.name)
        )


@dataclass(frozen=True)
class ResourceFilters:
    """Every entry of one `resourceFilters` value, in order."""

    entries: tuple[ResourceFilter, ...] = ()

    @property
    def triples(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((f.kind, f.namespace, f.name) for f in self.entries)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(p for f in self.entries if (p := f.problem) is not None)

    def filters_namespace(self, namespace: str) -> bool:
        return any(f.covers_namespace(namespace) for f in self.entries)

    def filters_kind(self, kind: str, *, subresource: str = "") -> bool:
        return any(f.covers_kind(kind, subresource=subresource) for f in self.entries)

    def skips(self, kind: str, namespace: str, name: str, *, subresource: str = "") -> bool:
        return any(f.matches(kind, namespace, name, subresource=subresource) for f in self.entries)


def parse_resource_filters(text: str | None) -> ResourceFilters:
    """Parse a `resourceFilters` value; anything outside brackets is ignored, as by Kyverno."""
    entries = []
    for match in ENTRY.finditer(text or ""):
        body = match.group(1)
        parts = body.split(",")
        padded = [*parts, "", ""][:3]
        entries.append(
            ResourceFilter(
                kind=padded[0],
                namespace=padded[1],
                name=padded[2],
                raw=match.group(0),
                parts=len(parts),
            )
        )
    return ResourceFilters(tuple(entries))


def kind_selector(selector: str) -> tuple[str, str, str, str]:
    """(group, version, kind, subresource) of a kind selector, like Kyverno's
    `ParseKindSelector`: `Kind`, `Kind/sub`, `*/*`, `version/Kind`, `group/version/Kind`,
    `group/version/Kind/sub`. Unknown parts are `*` (group, version) or empty (subresource)."""
    parts = selector.split("/")
    if len(parts) == 1:
        return "*", "*", parts[0], ""
    if len(parts) == 2:
        first, second = parts
        if first == "*" and second == "*":
            return "*", "*", "*", "*"
        if first == "*" or first[:1].isupper():
            return "*", "*", first, second
        return "*", first, second, ""
    if len(parts) == 3:
        group, version, kind = parts
        return group, version, kind, ""
    group, version, kind, sub = parts[:4]
    return group, version, kind, sub


def wildcard(pattern: str, value: str) -> bool:
    """Kyverno's wildcard match: `*` any run, `?` one character, empty matches only empty."""
    if pattern == "":
        return value == ""
    if pattern == "*":
        return True
    return _compiled(pattern).fullmatch(value) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    translated = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.compile(translated, re.DOTALL)


def _everything(pattern: str) -> bool:
    return bool(pattern) and set(pattern) == {"*"}
