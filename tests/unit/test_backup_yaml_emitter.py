"""The fast YAML writer writes exactly PyYAML's bytes, or declines: generated documents.

Backups are compared byte for byte across versions (git diffs, MANIFEST sha256s), so the fast
path must never change a single byte of what PyYAML wrote before it. The documents below are
drawn from an alphabet rich in YAML's troublemakers (indicators, quotes, spaces next to line
breaks, numbers, booleans, tabs, non-ASCII, floats), seeded so a failure repeats.
"""

from __future__ import annotations

import random
from typing import Any

import yaml

from bot.backup.serialization import _FAST, dump_yaml, dump_yaml_slow, load_yaml

PIECES = (
    "a", "b", "Z", "0", "1", "9", "_", ".", "/", "-", "+", "=", "<", "~", "@", "`", "%",
    "!", "&", "*", "|", ">", "'", '"', "#", ",", "?", ":", "[", "]", "{", "}", " ", "  ",
    "\n", "\n\n", "\t", "é", "\xa0", "---", "...", "y", "n", "yes", "No", "on", "OFF",
    "true", "null", "Null", "~", "1.", "0x1f", "0o7", "1_000", "1e3", ".5", "12:30",
    "2026-12-03", "<<", "app.kubernetes.io/name", "?*", "- ", ": ", " #", "x" * 40,
)  # fmt: skip


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 6)))


def _scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.75:
        return _string(rng)
    return rng.choice([None, True, False, 0, -7, 10**20, 1.5, float("inf"), 3])


def _node(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth >= 4 or roll < 0.5:
        return _scalar(rng)
    if roll < 0.75:
        return {_string(rng): _node(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    return [_node(rng, depth + 1) for _ in range(rng.randrange(0, 4))]


def _document(rng: random.Random) -> dict[str, Any]:
    return {_string(rng): _node(rng, 1) for _ in range(rng.randrange(0, 5))}


def test_generated_documents_are_written_as_pyyaml_writes_them() -> None:
    rng = random.Random(20261203)
    fast = 0
    for _ in range(4000):
        document = _document(rng)
        reference = dump_yaml_slow(document)
        assert dump_yaml(document) == reference, document
        fast += _FAST.emit(document) is not None
    assert fast > 1000  # the comparison covers the fast writer, not only its refusals


def test_kubernetes_shaped_objects_take_the_fast_path_and_read_back() -> None:
    policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "require-labels",
            "annotations": {
                "policies.kyverno.io/description": "Pods need labels.\nSee: the wiki\n"
            },
            "labels": {"y": "n", "version": "1.0", "empty": ""},
        },
        "spec": {
            "background": True,
            "rules": [
                {
                    "name": "check-for-labels",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {
                        "message": "label `app` is required: see #42",
                        "pattern": {"metadata": {"labels": {"app": "?*"}}},
                        "cel": {"expressions": [{"expression": "object.x > 1 &&\n  y"}]},
                    },
                    "exclude": {},
                    "preconditions": [],
                    "nested": [[1, 2], [{"a": None}]],
                }
            ],
        },
    }
    text = _FAST.emit(policy)
    assert text is not None
    assert text.encode() == dump_yaml_slow(policy)
    assert load_yaml(text.encode()) == policy


def test_what_it_cannot_prove_is_left_to_pyyaml() -> None:
    for document in (
        {"ratio": 0.5},
        {"tab": "a\tb"},
        {"accent": "café"},
        {"k" * 200: 1},
        {"": "empty key"},
        {"line": "x" * 5000},
        {"trailing": "a \nb"},
        {"kept": "a\n\n"},
        {"indented": " a\nb"},
        ["not", "a", "mapping"],
    ):
        assert _FAST.emit(document) is None, document
        assert dump_yaml(document) == dump_yaml_slow(document)


def test_the_pure_python_emitter_agrees_where_libyaml_is_missing() -> None:
    """Without libyaml PyYAML's own emitter writes the bundle: the same text."""

    class PurePython(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    from bot.backup.serialization import _represent_str

    PurePython.add_representer(str, _represent_str)
    rng = random.Random(7)
    for _ in range(500):
        document = _document(rng)
        fast = _FAST.emit(document)
        if fast is None:
            continue
        assert fast == yaml.dump(
            document,
            Dumper=PurePython,
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=True,
            width=1_000_000,
            indent=2,
        )
