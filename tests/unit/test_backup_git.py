"""The git target with the real git CLI and a bare repository on disk as the remote."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.backup.bundle import MANIFEST
from bot.backup.git import GitTarget

AT = datetime(2026, 11, 28, 2, tzinfo=UTC)
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _files(manifest: str, **objects: str) -> dict[str, bytes]:
    files = {f"dev/clusterpolicies.kyverno.io/{k}.yaml": v.encode() for k, v in objects.items()}
    files[MANIFEST] = manifest.encode()
    return files


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    _git("init", "-q", "--bare", "-b", "main", str(path))
    return path


async def test_one_commit_per_change_none_without_and_pushed(tmp_path: Path, remote: Path) -> None:
    target = GitTarget(tmp_path / "clone", remote=str(remote), branch="main")
    first = await target.store_backup(
        "b-1", _files("m1", a="a: 1\n"), at=AT, message="Backup b-1: dev first\n",
        environments=["dev"],
    )  # fmt: skip
    assert first.ok and first.changed and first.display == f"git remote@{first.location[:7]}"
    same = await target.store_backup(
        "b-2", _files("m2", a="a: 1\n"), at=AT + timedelta(days=1), message="Backup b-2\n",
        environments=["dev"],
    )  # fmt: skip
    assert same.ok and not same.changed and same.location == first.location
    changed = await target.store_backup(
        "b-3", _files("m3", b="b: 2\n"), at=AT + timedelta(days=2),
        message="Backup b-3: dev +1 -1\n", environments=["dev"],
    )  # fmt: skip
    assert changed.changed and changed.location != first.location
    log = _git("--git-dir", str(remote), "log", "--format=%H %ad %s", "--date=iso-strict", "main")
    assert log.splitlines() == [
        f"{changed.location} 2026-11-30T02:00:00+00:00 Backup b-3: dev +1 -1",
        f"{first.location} 2026-11-28T02:00:00+00:00 Backup b-1: dev first",
    ]
    # The environment directory is replaced whole: a.yaml is gone in the new commit.
    tree = _git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main").split()
    assert tree == ["backup/MANIFEST", "backup/dev/clusterpolicies.kyverno.io/b.yaml"]
    # Any commit reads back as a bundle.
    assert await target.load_backup(first.location) == _files("m1", a="a: 1\n")
    # A fresh clone (another replica, a new pod) continues the remote's history.
    other = GitTarget(tmp_path / "clone-2", remote=str(remote), branch="main")
    again = await other.store_backup(
        "b-4", _files("m4", b="b: 2\n"), at=AT, message="x\n", environments=["dev"]
    )
    assert not again.changed and again.location == changed.location


async def test_push_failure_is_reported_and_caught_up_later(tmp_path: Path, remote: Path) -> None:
    target = GitTarget(tmp_path / "clone", remote=str(remote), branch="main")
    await target.store_backup(
        "b-1", _files("m1", a="1"), at=AT, message="one\n", environments=["dev"]
    )
    moved = remote.with_name("moved.git")
    await asyncio.to_thread(remote.rename, moved)
    failed = await target.store_backup(
        "b-2", _files("m2", a="2"), at=AT, message="two\n", environments=["dev"]
    )
    assert (
        not failed.ok
        and failed.error
        and failed.error.startswith(f"committed {failed.location[:7]}")
    )
    assert "git push failed" in failed.error
    await asyncio.to_thread(moved.rename, remote)
    caught_up = await target.store_backup(
        "b-3", _files("m3", a="2"), at=AT, message="three\n", environments=["dev"]
    )
    assert caught_up.ok and not caught_up.changed
    assert _git("--git-dir", str(remote), "rev-parse", "main").strip() == failed.location


async def test_local_repository_without_remote_and_evidence(tmp_path: Path) -> None:
    target = GitTarget(tmp_path / "repo", remote=None, branch="backups")
    stored = await target.store_evidence(
        "2026-11", {"report.md": b"# report\n", "MANIFEST": b"{}\n"}, at=AT, message="Evidence\n"
    )
    assert stored.ok and stored.display.startswith("git repo@")
    repeat = await target.store_evidence(
        "2026-11", {"report.md": b"# report\n", "MANIFEST": b"{}\n"}, at=AT, message="Evidence\n"
    )
    assert not repeat.changed
    files = _git("-C", str(tmp_path / "repo"), "ls-files").split()
    assert files == ["evidence/2026-11/MANIFEST", "evidence/2026-11/report.md"]
    assert _git("-C", str(tmp_path / "repo"), "branch", "--show-current").strip() == "backups"
