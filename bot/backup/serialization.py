"""Deterministic YAML for backed-up objects: the same object always gives the same bytes.

Backups are compared byte for byte (git diffs, the MANIFEST's sha256, "nothing changed"), so
the text must not depend on dict order, the YAML library's line folding or the machine:
keys are sorted, lines are never folded, multi-line strings are block literals, and strings
that another YAML reader (kubectl's, YAML 1.2) could take for a number, boolean or null are
quoted. Documents of plain JSON data are written by `bot.backup.yaml_emitter`, which writes
the same bytes as PyYAML several times faster; the rest go through PyYAML, with libyaml's
emitter when PyYAML has it (both emitters produce the same text for these settings).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from bot.backup.yaml_emitter import FastEmitter

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Scalars YAML 1.2 (core schema) or YAML 1.1 would read as something other than a string.
_AMBIGUOUS = re.compile(
    r"""^(?:
        [-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?   # numbers, 1e3, .5, 1_000
      | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
      | 0[xX][0-9a-fA-F_]+ | 0[oO]?[0-7_]+ | 0[bB][01_]+
      | (?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE
           |on|On|ON|off|Off|OFF|null|Null|NULL|~)
      | \d+(?::[0-5]?\d)+(?:\.\d*)?                      # sexagesimal (YAML 1.1)
      | \d{4}-\d\d?-\d\d?(?:[Tt ].*)?                    # dates and timestamps
    )$""",
    re.VERBOSE,
)


class _BackupDumper(_Dumper):  # type: ignore[valid-type,misc]
    """SafeDumper that never emits anchors (every object stands alone)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value == "" or _AMBIGUOUS.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BackupDumper.add_representer(str, _represent_str)

_FAST = FastEmitter(
    quoted=lambda value: bool(_AMBIGUOUS.match(value)),
    resolvers=_BackupDumper.yaml_implicit_resolvers,
)


def dump_yaml(document: Any) -> bytes:
    """One YAML document, keys sorted, UTF-8, ending in a newline."""
    fast = _FAST.emit(document)
    if fast is not None:
        return fast.encode("utf-8")
    return dump_yaml_slow(document)


def dump_yaml_slow(document: Any) -> bytes:
    """`dump_yaml` by PyYAML alone: the reference the fast writer is held to."""
    text: str = yaml.dump(
        document,
        Dumper=_BackupDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
        explicit_start=False,
    )
    return text.encode("utf-8")


class YamlError(ValueError):
    """The text is not one valid YAML document."""


def load_yaml(data: bytes) -> Any:
    """Parse one YAML document written by `dump_yaml` (or by a person)."""
    try:
        return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as err:
        raise YamlError(str(err)) from None
