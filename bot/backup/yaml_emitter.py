"""A fast writer of the backup's YAML for the common case, byte for byte what PyYAML writes.

PyYAML spends most of a backup's time building and resolving a node per scalar before its
emitter (even libyaml's) sees them. Backed-up objects are JSON from the API server: mappings
with string keys, lists, strings, integers, booleans and null. For those this module writes
the text directly, under the settings of `bot.backup.serialization` (keys sorted, block style,
indent 2, indentless sequences under a key, no line folding, `|` for multi-line strings,
single quotes where a plain scalar would read as something else).

It only writes what it can prove PyYAML would write the same way: printable ASCII scalars,
multi-line strings without the whitespace cases that change a block scalar's header, short
keys. Anything else (a float, a tab, non-ASCII text, a very long line, a key that is not a
string) makes it decline with None, and the caller hands the whole document to PyYAML.
Tests compare both writers on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Resolvers = Mapping[str | None, Sequence[tuple[str, re.Pattern[str]]]]

STR_TAG = "tag:yaml.org,2002:str"
MAX_SCALAR = 4096
"""Longer scalars are left to PyYAML (its line width is never reached below this)."""
MAX_KEY = 100
"""libyaml writes keys over 128 characters as complex keys (`? key`); stay well below."""

SEEN_MAX = 50_000
"""Rendered strings remembered between documents."""

_LINE = re.compile(r"[\x20-\x7e]*")
_TEXT = re.compile(r"[\x20-\x7e\n]*")
_LEADING_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")


class _Decline(Exception):
    """The document holds something this writer does not prove identical; PyYAML writes it."""


class FastEmitter:
    """Writes `document` as `yaml.dump` with the backup's dumper would, or returns None.

    `quoted(value)` says whether the dumper's string representer asks for single quotes
    (its list of ambiguous scalars); `resolvers` are the dumper's implicit resolvers, which
    decide whether a plain scalar would read back as a string.
    """

    def __init__(self, *, quoted: Callable[[str], bool], resolvers: Resolvers) -> None:
        self._quoted = quoted
        self._resolvers = resolvers
        self._wildcard = tuple(resolvers.get(None, ()))
        self._seen: dict[str, str] = {}  # keys and values repeat from object to object
        self._keys: dict[str, str] = {}  # a key's `key:`, likewise

    def emit(self, document: Any) -> str | None:
        if not isinstance(document, dict):
            return None
        if not document:
            return "{}\n"
        out: list[str] = []
        try:
            self._mapping(document, 0, out, inline_first=False)
        except _Decline:
            return None
        return "".join(out)

    # -- collections -----------------------------------------------------------------

    def _mapping(
        self, mapping: dict[Any, Any], column: int, out: list[str], *, inline_first: bool
    ) -> None:
        # The hot loop of a backup (tens of thousands of keys): the cached forms are looked
        # up here rather than through `_key` and `_value`.
        pad = " " * column
        keys = self._keys
        seen = self._seen
        append = out.append
        first = inline_first
        for key in sorted(mapping):
            label = keys.get(key) if type(key) is str else None
            if label is None:
                if not isinstance(key, str):
                    raise _Decline
                if len(keys) >= SEEN_MAX:
                    keys.clear()
                label = keys[key] = self._key(key) + ":"
            append(label if first else pad + label)
            first = False
            value = mapping[key]
            if type(value) is str and "\n" not in value:
                found = seen.get(value)
                append(" " + (found if found is not None else self._string(value)) + "\n")
            else:
                self._value(value, column, out, in_mapping=True)

    def _sequence(
        self, items: list[Any], column: int, out: list[str], *, inline_first: bool
    ) -> None:
        pad = " " * column
        seen = self._seen
        append = out.append
        for i, item in enumerate(items):
            append("-" if i == 0 and inline_first else pad + "-")
            if type(item) is str and "\n" not in item:
                found = seen.get(item)
                append(" " + (found if found is not None else self._string(item)) + "\n")
            else:
                self._value(item, column, out, in_mapping=False)

    def _value(self, value: Any, column: int, out: list[str], *, in_mapping: bool) -> None:
        if isinstance(value, dict):
            if not value:
                out.append(" {}\n")
            elif in_mapping:
                out.append("\n")
                self._mapping(value, column + 2, out, inline_first=False)
            else:
                out.append(" ")
                self._mapping(value, column + 2, out, inline_first=True)
        elif isinstance(value, list):
            if not value:
                out.append(" []\n")
            elif in_mapping:  # PyYAML's sequences under a key are not indented
                out.append("\n")
                self._sequence(value, column, out, inline_first=False)
            else:
                out.append(" ")
                self._sequence(value, column + 2, out, inline_first=True)
        elif isinstance(value, str) and "\n" in value:
            out.append(" " + self._literal(value, column + 2))
        else:
            out.append(" " + self._scalar(value) + "\n")

    # -- scalars -----------------------------------------------------------------------

    def _scalar(self, value: Any) -> str:
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if type(value) is int:
            return str(value)
        if type(value) is str:
            return self._string(value)
        raise _Decline  # floats, subclasses and anything else: PyYAML's representers decide

    def _key(self, key: str) -> str:
        if not key or len(key) > MAX_KEY:  # PyYAML's own emitter writes `? ''`, libyaml `''`
            raise _Decline
        return self._string(key)

    def _string(self, value: str) -> str:
        found = self._seen.get(value)
        if found is not None:
            return found
        if not value:
            return "''"
        if len(value) > MAX_SCALAR or not _LINE.fullmatch(value):
            raise _Decline
        if not self._quoted(value) and _plain_allowed(value) and self._reads_as_str(value):
            found = value
        else:
            found = "'" + value.replace("'", "''") + "'"
        if len(self._seen) >= SEEN_MAX:
            self._seen.clear()
        self._seen[value] = found
        return found

    def _literal(self, value: str, indent: int) -> str:
        """A multi-line string as a `|` block whose lines start at `indent`."""
        if (
            len(value) > MAX_SCALAR
            or not _TEXT.fullmatch(value)
            or value[0] in " \n"  # would need an indentation indicator
            or " \n" in value  # trailing spaces on a line: double quotes
            or value.endswith((" ", "\n\n"))  # no block scalar, or the `+` chomping
        ):
            raise _Decline
        if value.endswith("\n"):
            header, lines = "|", value[:-1].split("\n")
        else:
            header, lines = "|-", value.split("\n")
        pad = " " * indent
        return header + "\n" + "".join((pad + line if line else "") + "\n" for line in lines)

    def _reads_as_str(self, value: str) -> bool:
        for tag, pattern in (*self._resolvers.get(value[0], ()), *self._wildcard):
            if pattern.match(value):
                return tag == STR_TAG
        return True


def _plain_allowed(value: str) -> bool:
    """PyYAML's and libyaml's analysis of a non-empty printable ASCII line, block context."""
    first = value[0]
    if first in _LEADING_INDICATORS or value.startswith(("---", "...")):
        return False
    if first in "?:-" and (len(value) == 1 or value[1] == " "):
        return False
    if first == " " or value[-1] == " " or value[-1] == ":":
        return False
    return ": " not in value and " #" not in value
