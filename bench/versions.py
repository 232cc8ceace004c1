"""The versions of the peers a benchmark ran, read from the binaries themselves.

A footer that names a version nobody checked is worse than none: each line here comes from
running the binary with its version flag in the same run, or says it could not be read.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_PATTERNS = {
    # alertmanager, version 0.25.0 (branch: debian/sid, revision: 0.25.0-1+b4)
    "alertmanager": re.compile(r"alertmanager, version (\S+)"),
    # Client Version: v1.35.4
    "kubectl": re.compile(r"Client Version: (\S+)"),
    # Kubernetes v1.35.4
    "kube-apiserver": re.compile(r"Kubernetes (\S+)"),
    # Version: v1.19.1   (kubectl-kyverno version)
    "kyverno": re.compile(r"^Version: (\S+)", re.MULTILINE),
    # Python 3.11.2 (python --version)
    "python": re.compile(r"Python (\S+)"),
}

_FLAGS = {
    "alertmanager": ("--version",),
    "kubectl": ("version", "--client"),
    "kube-apiserver": ("--version",),
    "kyverno": ("version",),
    "python": ("--version",),
}


def parse(kind: str, output: str) -> str | None:
    """The version in a binary's version output, or None when it is not there."""
    found = _PATTERNS[kind].search(output)
    return found[1] if found else None


def read(kind: str, binary: Path | str | None) -> str:
    """`kind VERSION (path)` from running `binary`, or why it could not be read."""
    if binary is None or not Path(binary).exists():
        return f"{kind}: not present"
    try:
        done = subprocess.run(
            [str(binary), *_FLAGS[kind]], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{kind}: could not run {binary} ({exc})"
    version = parse(kind, done.stdout + done.stderr)
    if version is None:
        return f"{kind}: unreadable version output from {binary}"
    return f"{kind} {version} ({binary})"
