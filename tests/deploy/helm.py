"""The helm CLI, built from its Go module by ``tools/helmbin/build.sh`` (once, then cached).

Charts are rendered with ``helm template`` into a list of objects, so tests assert on what
Kubernetes would receive and can apply exactly that to a real control plane.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.servers.child import built_by

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "chart" / "policy-bot"
BUILD_SCRIPT = REPO_ROOT / "tools" / "helmbin" / "build.sh"
REQUIRE_ENV = "POLICY_BOT_REQUIRE_KUBE"
"""helm is built by the same Go toolchain as the control plane; CI requires both."""

Obj = dict[str, Any]


class RenderError(Exception):
    """``helm template`` refused the values; ``message`` is what helm printed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Helm:
    path: Path
    workdir: Path

    @classmethod
    def build(cls, workdir: Path) -> Helm:
        """The cached helm binary (skips, or fails in CI, when it cannot be built)."""
        binary = built_by(BUILD_SCRIPT, "helm binary", REQUIRE_ENV)
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(binary, workdir)

    def run(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # Helm keeps caches and its repository config under these, and the Kubernetes client
        # its discovery cache under $HOME/.kube: all of it in the test's directory.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "HELM_CACHE_HOME": str(self.workdir / "cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "config"),
            "HELM_DATA_HOME": str(self.workdir / "data"),
        }
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        result = subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workdir,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RenderError(result.stderr.strip() or result.stdout.strip())
        return result

    def values_file(self, values: Mapping[str, Any], name: str) -> Path:
        path = self.workdir / f"{name}.values.yaml"
        path.write_text(yaml.safe_dump(dict(values), sort_keys=False))
        return path

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "policy-bot",
        namespace: str = "policy-bot",
        files: Sequence[Path] = (),
        show_only: Iterable[str] = (),
        chart: Path = CHART,
    ) -> str:
        """The rendered manifests as text; RenderError when helm refuses."""
        args = ["template", release, str(chart), "--namespace", namespace]
        for file in files:
            args += ["-f", str(file)]
        if values:
            args += ["-f", str(self.values_file(values, f"{release}-{namespace}"))]
        for template in show_only:
            args += ["--show-only", template]
        return self.run(*args).stdout

    def lint(self, values: Mapping[str, Any] | None = None, *, name: str = "lint") -> str:
        args = ["lint", "--strict", str(CHART)]
        if values:
            args += ["-f", str(self.values_file(values, name))]
        result = self.run(*args, check=False)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RenderError(output)
        return output


def documents(text: str) -> list[Obj]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(text) if d]


def only(objects: Sequence[Obj], kind: str, name: str | None = None) -> Obj:
    """The one object of `kind` (and `name`); fails the test when not exactly one."""
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} objects of kind {kind} {name or ''}"
    return found[0]
