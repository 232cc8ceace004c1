"""Bundle layout, cleaning, deterministic YAML, MANIFEST checks, reproducible tarballs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
import yaml

from bot.backup.bundle import (
    MANIFEST,
    Bundle,
    BundleError,
    EnvironmentBackup,
    HelmValues,
    key_of,
    namespace_path,
    object_path,
    read_bundle,
    tarball,
    untar,
)
from bot.backup.serialization import YamlError, dump_yaml, load_yaml
from bot.kinds import KIND_SPECS
from bot.server_fields import LAST_APPLIED, clean

AT = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
CPOL = next(s for s in KIND_SPECS if s.kind == "ClusterPolicy")
POLEX = next(s for s in KIND_SPECS if s.kind == "PolicyException" and s.group == "kyverno.io")

LIVE = {
    "apiVersion": "kyverno.io/v1",
    "kind": "ClusterPolicy",
    "metadata": {
        "name": "require-labels",
        "uid": "0b0c",
        "resourceVersion": "812",
        "generation": 3,
        "creationTimestamp": "2026-11-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
        "ownerReferences": [{"uid": "x"}],
        "annotations": {LAST_APPLIED: "{}", "policies.kyverno.io/title": "Require Labels"},
        "labels": {},
    },
    "spec": {"background": True, "rules": [{"name": "check"}]},
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}


def test_clean_keeps_what_a_person_wrote_and_drops_the_rest() -> None:
    before = copy.deepcopy(LIVE)
    assert clean(LIVE) == {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "require-labels",
            "annotations": {"policies.kyverno.io/title": "Require Labels"},
        },
        "spec": {"background": True, "rules": [{"name": "check"}]},
    }
    assert before == LIVE  # not modified
    only_applied = {"metadata": {"name": "x", "annotations": {LAST_APPLIED: "{}"}}}
    assert clean(only_applied) == {"metadata": {"name": "x"}}


def test_yaml_is_sorted_quoted_where_ambiguous_and_round_trips() -> None:
    document = {
        "b": "1e3",
        "a": ["yes", "no", "on", "null", "~", "0755", "0x1F", "12:30", "2026-01-01", ""],
        "c": "first line\nsecond line\n",
        "d": "plain words",
        "e": {"z": 1, "y": True, "x": None, "w": 1.5},
        "f": "ünïcode",
    }
    text = dump_yaml(document)
    assert load_yaml(text) == document
    assert text == dump_yaml(copy.deepcopy(document))
    lines = text.decode().splitlines()
    assert lines[0] == "a:" and "- 'yes'" in lines and "- '0755'" in lines and "- ''" in lines
    assert "b: '1e3'" in lines and "c: |" in lines and "d: plain words" in lines
    assert "f: ünïcode" in lines
    # kubectl's reader (YAML 1.2) agrees with ours on every scalar.
    assert yaml.safe_load(text) == document


def test_load_yaml_raises_a_value_error() -> None:
    with pytest.raises(YamlError):
        load_yaml(b"a: [unclosed")


def test_paths_and_keys_round_trip() -> None:
    cluster = object_path("dev", CPOL, "require-labels", None)
    namespaced = object_path("dev", POLEX, "pe-1", "kyverno-exceptions")
    assert cluster == "dev/clusterpolicies.kyverno.io/require-labels.yaml"
    assert namespaced == "dev/policyexceptions.kyverno.io/kyverno-exceptions/pe-1.yaml"
    key = key_of(namespaced)
    assert key is not None
    assert (key.kind, key.group, key.namespace, key.name) == (
        "PolicyException",
        "kyverno.io",
        "kyverno-exceptions",
        "pe-1",
    )
    assert key.describe() == "PolicyException kyverno-exceptions/pe-1"
    ns = key_of(namespace_path("dev", "team-a"))
    assert ns is not None and (ns.kind, ns.name, ns.namespace) == ("Namespace", "team-a", None)
    assert key_of("dev/helm/kyverno/kyverno.values") is None
    assert key_of(MANIFEST) is None
    assert key_of("dev/unknown.example.com/x.yaml") is None


def _bundle() -> Bundle:
    env = EnvironmentBackup(
        environment="dev",
        files={
            "dev/00-namespaces/kyverno-exceptions.yaml": b"ns\n",
            "dev/clusterpolicies.kyverno.io/a.yaml": b"a\n",
            "dev/policyexceptions.kyverno.io/kyverno-exceptions/e.yaml": b"e\n",
            "dev/helm/kyverno/kyverno.values": b"replicas: 3\n",
        },
        counts={"clusterpolicies.kyverno.io": 1, "policyexceptions.kyverno.io": 1},
        api_versions={
            "clusterpolicies.kyverno.io": "kyverno.io/v1",
            "policyexceptions.kyverno.io": "kyverno.io/v2",
        },
        missing_kinds=("cleanuppolicies.kyverno.io",),
        helm=(HelmValues("kyverno", "kyverno", 7, "kyverno-3.9.0", "v1.19.0"),),
    )
    down = EnvironmentBackup(environment="staging", error="unreachable")
    return Bundle("b-20261128-020000", AT, "0.1.0", (env, down))


def test_manifest_lists_counts_hashes_and_failures() -> None:
    bundle = _bundle()
    manifest = json.loads(bundle.files[MANIFEST])
    assert (
        manifest["id"] == "b-20261128-020000" and manifest["created_at"] == "2026-11-28T02:00:00Z"
    )
    dev = manifest["environments"]["dev"]
    assert dev["counts"]["clusterpolicies.kyverno.io"] == {
        "kind": "ClusterPolicy",
        "apiVersion": "kyverno.io/v1",
        "objects": 1,
    }
    assert dev["helm"] == [
        {
            "release": "kyverno",
            "namespace": "kyverno",
            "revision": 7,
            "chart": "kyverno-3.9.0",
            "app_version": "v1.19.0",
            "file": "dev/helm/kyverno/kyverno.values",
        }
    ]
    assert dev["namespaces"] == 1 and dev["missing_kinds"] == ["cleanuppolicies.kyverno.io"]
    assert manifest["environments"]["staging"] == {"status": "failed", "error": "unreachable"}
    assert len(manifest["files"]) == 4
    assert list(bundle.files) == sorted(bundle.files)


def test_read_bundle_checks_every_file_against_the_manifest() -> None:
    files = _bundle().files
    loaded = read_bundle(files, environment="dev")
    assert [k.name for k, _ in loaded.objects("dev")] == ["kyverno-exceptions", "a", "e"]
    with pytest.raises(BundleError, match="no MANIFEST"):
        read_bundle({k: v for k, v in files.items() if k != MANIFEST})
    with pytest.raises(BundleError, match="does not match its sha256"):
        read_bundle({**files, "dev/clusterpolicies.kyverno.io/a.yaml": b"edited\n"})
    with pytest.raises(BundleError, match="listed in the MANIFEST but missing"):
        read_bundle({k: v for k, v in files.items() if not k.endswith("a.yaml")})
    with pytest.raises(BundleError, match="has no environment qa"):
        read_bundle(files, environment="qa")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle({MANIFEST: b"{"})


def test_tarball_is_reproducible_and_untars_to_the_same_files() -> None:
    files = _bundle().files
    first = tarball(files, root="b-20261128-020000", mtime=AT)
    assert first == tarball(dict(reversed(list(files.items()))), root="b-20261128-020000", mtime=AT)
    # gzip's own header holds the bundle's time, not the wall clock's (RFC 1952: MTIME).
    assert int.from_bytes(first[4:8], "little") == int(AT.timestamp())
    assert untar(first) == files
    with pytest.raises(BundleError, match="not a readable"):
        untar(b"not a tarball")
    with pytest.raises(BundleError, match="no MANIFEST"):
        untar(tarball({"x.yaml": b""}, root="r", mtime=AT))
