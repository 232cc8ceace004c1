"""What `restore --from PATH` means: a bundle, or the newest of the bundles in a folder.

An operator in a disaster points at what they have: the `--to DIR` of `python -m bot
backup` (a folder of `b-YYYYMMDD-HHMMSS/` bundles, or of `.tar.gz` files downloaded from
S3), one bundle directory, or one `.tar.gz`. A folder of bundles restores the newest and
says which; anything else is refused with what was found there, so the next try is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.backup.bundle import ID_PATTERN, MANIFEST, BundleError

ARCHIVE_SUFFIX = ".tar.gz"
SHOWN = 5  # bundles listed when several are found, newest first


@dataclass(frozen=True)
class Located:
    """The bundle to read, and what to tell the operator about the choice (or '')."""

    path: Path
    note: str = ""


def locate_bundle(path: Path) -> Located:
    """The bundle `path` stands for; BundleError saying what is there when it is none."""
    if path.is_file():
        if not path.name.endswith(ARCHIVE_SUFFIX):
            raise BundleError(
                f"{path} is a file but not a {ARCHIVE_SUFFIX} bundle; give a bundle directory, "
                f"a {ARCHIVE_SUFFIX} or the folder the backups were written to"
            )
        return Located(path)
    if not path.is_dir():
        raise BundleError(f"{path} does not exist")
    if (path / MANIFEST).is_file():
        return Located(path)
    bundles = _bundles_in(path)
    if not bundles:
        raise BundleError(f"{path} holds no backup bundle: {_contents(path)}")
    newest = bundles[0]
    if len(bundles) == 1:
        return Located(newest, f"using {newest.name}, the only bundle in {path}")
    listed = ", ".join(b.name for b in bundles[1 : SHOWN + 1])
    more = f" and {len(bundles) - SHOWN - 1} more" if len(bundles) > SHOWN + 1 else ""
    return Located(
        newest,
        f"using {newest.name}, the newest of {len(bundles)} bundles in {path} "
        f"(older: {listed}{more}; give one's path to restore it instead)",
    )


def _bundles_in(folder: Path) -> list[Path]:
    """Bundle directories (with a MANIFEST) and archives named by backup id, newest first."""
    found: list[tuple[str, Path]] = []
    for entry in folder.iterdir():
        name = entry.name.removesuffix(ARCHIVE_SUFFIX) if entry.is_file() else entry.name
        if not ID_PATTERN.match(name):
            continue
        if (entry.is_dir() and (entry / MANIFEST).is_file()) or (
            entry.is_file() and entry.name.endswith(ARCHIVE_SUFFIX)
        ):
            found.append((name, entry))
    # Backup ids are UTC timestamps (b-YYYYMMDD-HHMMSS), so their order is their age.
    return [p for _, p in sorted(found, key=lambda item: item[0], reverse=True)]


def _contents(folder: Path) -> str:
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in folder.iterdir())
    if not names:
        return "it is empty"
    shown = ", ".join(names[:SHOWN]) + (
        f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    )
    return (
        f"found {shown}; a bundle has a {MANIFEST}, and bundles written by `backup --to` are "
        f"named like b-20261128-020000/ or b-20261128-020000{ARCHIVE_SUFFIX}"
    )
