"""`restore --from PATH`: which bundle a path stands for, and what is said when none."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.backup.bundle import MANIFEST, BundleError
from bot.backup.locate import locate_bundle


def _bundle_dir(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / MANIFEST).write_text("{}")
    return root / name


def test_a_bundle_directory_or_archive_is_taken_as_it_is(tmp_path: Path) -> None:
    bundle = _bundle_dir(tmp_path, "anything")
    assert locate_bundle(bundle).path == bundle and locate_bundle(bundle).note == ""
    archive = tmp_path / "copy.tar.gz"
    archive.write_bytes(b"")
    assert locate_bundle(archive).path == archive


def test_a_folder_of_bundles_gives_the_newest_and_names_the_others(tmp_path: Path) -> None:
    _bundle_dir(tmp_path, "b-20261127-020000")
    newest = _bundle_dir(tmp_path, "b-20261129-020000")
    (tmp_path / "b-20261128-020000.tar.gz").write_bytes(b"")
    (tmp_path / "b-20261130-020000").mkdir()  # no MANIFEST: not a bundle (an aborted copy)
    (tmp_path / ".b-20261201-020000.partial").mkdir()  # being written
    (tmp_path / "notes.txt").write_text("x")
    located = locate_bundle(tmp_path)
    assert located.path == newest
    assert located.note == (
        f"using b-20261129-020000, the newest of 3 bundles in {tmp_path} (older: "
        "b-20261128-020000.tar.gz, b-20261127-020000; give one's path to restore it instead)"
    )


def test_one_bundle_in_a_folder_is_said_to_be_the_only_one(tmp_path: Path) -> None:
    (tmp_path / "b-20261128-020000.tar.gz").write_bytes(b"")
    located = locate_bundle(tmp_path)
    assert located.path == tmp_path / "b-20261128-020000.tar.gz"
    assert located.note == f"using b-20261128-020000.tar.gz, the only bundle in {tmp_path}"


def test_many_bundles_are_listed_up_to_five_older_ones(tmp_path: Path) -> None:
    for day in range(10, 20):
        _bundle_dir(tmp_path, f"b-202611{day}-020000")
    note = locate_bundle(tmp_path).note
    assert note.startswith(f"using b-20261119-020000, the newest of 10 bundles in {tmp_path}")
    assert "b-20261114-020000 and 4 more;" in note


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "holds no backup bundle: it is empty"),
        (
            lambda p: (p / "config.yaml").write_text("x") and p,
            "holds no backup bundle: found config.yaml; a bundle has a MANIFEST, and bundles "
            "written by `backup --to` are named like b-20261128-020000/ or "
            "b-20261128-020000.tar.gz",
        ),
        (
            lambda p: (p / "state.db").write_text("x") and p / "state.db",
            "is a file but not a .tar.gz bundle",
        ),
    ],
)
def test_what_is_not_a_bundle_is_refused_naming_what_is_there(
    tmp_path: Path, setup: object, message: str
) -> None:
    path = setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(".", r"\.")):
        locate_bundle(path)
