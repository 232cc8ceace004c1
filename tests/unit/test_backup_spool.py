"""A directory backup written while it is still being read: what ends up in place is exactly
the bundle, whatever was handed over early."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.backup.targets import DirectoryTarget, TargetError, read_directory, write_files

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def page(env: str, n: int, *, start: int = 0) -> dict[str, bytes]:
    return {
        f"{env}/clusterpolicies.kyverno.io/p{i:03d}.yaml": f"name: p{i}\n".encode()
        for i in range(start, start + n)
    }


def test_pages_handed_over_early_end_up_as_the_bundle(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path, keep=10)
    spool = target.spool("run-1")
    first, second = page("prod", 50), page("prod", 50, start=50)
    threads = [threading.Thread(target=spool.add, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bundle = {**first, **second, "MANIFEST": b"{}\n"}
    stored = spool.finish("b-20260501-120000", bundle)
    assert stored.location == str(tmp_path / "b-20260501-120000")
    assert read_directory(tmp_path / "b-20260501-120000") == bundle
    assert sorted(os.listdir(tmp_path)) == ["b-20260501-120000"]  # no partial left


def test_pages_the_bundle_did_not_keep_are_removed_with_their_folders(tmp_path: Path) -> None:
    spool = DirectoryTarget(tmp_path, keep=10).spool("run-2")
    spool.add(page("prod", 3))
    spool.add(page("staging", 3))  # staging failed after its first page
    changed = {"prod/clusterpolicies.kyverno.io/p000.yaml": b"name: rewritten\n"}
    bundle = {**page("prod", 3), **changed, "MANIFEST": b"{}\n"}
    spool.finish("b-20260501-120001", bundle)
    final = tmp_path / "b-20260501-120001"
    assert read_directory(final) == bundle
    assert sorted(os.listdir(final)) == ["MANIFEST", "prod"]


async def test_a_backup_written_in_one_go_replaces_one_of_the_same_id_and_old_ones_are_pruned(
    tmp_path: Path,
) -> None:
    target = DirectoryTarget(tmp_path, keep=2)

    async def store(bid: str, files: dict[str, bytes]) -> None:
        await target.store_backup(bid, files, at=AT, message="", environments=["prod"])

    for second in range(3):
        await store(f"b-20260501-12000{second}", {"MANIFEST": b"one\n"})
    await store("b-20260501-120002", {"MANIFEST": b"two\n", **page("prod", 1)})
    assert sorted(os.listdir(tmp_path)) == ["b-20260501-120001", "b-20260501-120002"]
    assert read_directory(tmp_path / "b-20260501-120002") == {
        "MANIFEST": b"two\n",
        **page("prod", 1),
    }


def test_a_write_that_fails_is_reported_at_finish_and_leaves_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the backups' folder should be")
    spool = DirectoryTarget(blocked, keep=10).spool("run-3")
    spool.add(page("prod", 2))
    with pytest.raises(TargetError, match="cannot write"):
        spool.finish("b-20260501-120003", {**page("prod", 2), "MANIFEST": b"{}\n"})
    assert sorted(os.listdir(tmp_path)) == ["blocked"]


def test_a_discarded_backup_leaves_nothing(tmp_path: Path) -> None:
    spool = DirectoryTarget(tmp_path, keep=10).spool("run-4")
    spool.add(page("prod", 20))
    spool.discard()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("outside", ["../x.yaml", "a/../../x.yaml", "/etc/x.yaml", "//x.yaml", ""])
def test_paths_that_would_leave_the_folder_are_refused(tmp_path: Path, outside: str) -> None:
    with pytest.raises(TargetError, match="refusing to write outside"):
        write_files(tmp_path / "root", {outside: b"x"})


def test_unusual_but_inside_paths_are_written_where_pathlib_puts_them(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_files(root, {"a//b/c.yaml": b"1", "./d/e.yaml": b"2", "f/./g.yaml": b"3", "M": b"4"})
    assert read_directory(root) == {
        "a/b/c.yaml": b"1",
        "d/e.yaml": b"2",
        "f/g.yaml": b"3",
        "M": b"4",
    }
