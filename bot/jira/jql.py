"""JQL built from values the bot does not control, quoted so they stay values.

A label or project key pasted into a JQL string unquoted could extend the query
(`X OR project = OTHER`); every value is therefore written as a JQL string literal, with
the two characters that could end it (`"` and `\\`) escaped and line breaks refused.
"""

from __future__ import annotations

import re

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeJqlValue(ValueError):
    """A value JQL cannot carry safely (control characters)."""


def quote(value: str) -> str:
    """`value` as a JQL string literal: `"..."` with `\\` and `"` escaped."""
    if _FORBIDDEN.search(value):
        raise UnsafeJqlValue(f"control characters are not allowed in a JQL value: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def labelled(project: str, label: str) -> str:
    """Issues of `project` carrying `label` (the bot's fingerprint of a request)."""
    return f"project = {quote(project)} AND labels = {quote(label)} ORDER BY created ASC"
