"""Where backups and evidence packs go: a directory, a git repository, S3-compatible storage.

Each target stores a finished set of files and can hand a backup back by the location it
returned (a directory, a commit, an object key), which the catalog records. A target that
fails raises `TargetError`; the caller reports it and still writes the other targets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from bot.backup.bundle import ID_PATTERN, BundleError


class TargetError(Exception):
    """A target could not store or load; the message says what to fix."""


@dataclass(frozen=True)
class Stored:
    """Where one target put a backup (or why it could not)."""

    target: str  # "dir", "git", "s3"
    location: str  # directory, commit sha, s3:// URL; "" when nothing was stored
    display: str  # short form for Slack: "git backups@4e1c2a9"
    changed: bool = True  # git: False when the content equalled the last commit
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Target(Protocol):
    kind: str

    def describe(self) -> str:
        """Where this target writes, for messages (no credentials)."""
        ...

    async def store_backup(
        self,
        backup_id: str,
        files: Mapping[str, bytes],
        *,
        at: datetime,
        message: str,
        environments: Sequence[str],
    ) -> Stored: ...

    async def load_backup(self, location: str) -> dict[str, bytes]: ...

    async def store_evidence(
        self, month: str, files: Mapping[str, bytes], *, at: datetime, message: str
    ) -> Stored: ...


class DirectoryTarget:
    """`<path>/<backup id>/` per backup (newest `keep` kept), `<path>/evidence/<month>/`.

    Each backup is written to a hidden sibling first and renamed into place, so a crash
    never leaves a half-written backup under its real name.
    """

    kind = "dir"

    def __init__(self, path: Path, *, keep: int) -> None:
        self.path = path
        self.keep = keep

    def describe(self) -> str:
        return f"dir {self.path}"

    async def store_backup(
        self,
        backup_id: str,
        files: Mapping[str, bytes],
        *,
        at: datetime,
        message: str,
        environments: Sequence[str],
    ) -> Stored:
        spool = self.spool(backup_id)
        return await asyncio.to_thread(spool.finish, backup_id, files)

    def spool(self, name: str) -> SpooledBackup:
        """A backup to be written while it is still being read (`SpooledBackup`), into a
        hidden directory named after `name` until it is finished."""
        return SpooledBackup(self, self.path / f".{name}.partial")

    async def load_backup(self, location: str) -> dict[str, bytes]:
        return await asyncio.to_thread(read_directory, Path(location))

    async def store_evidence(
        self, month: str, files: Mapping[str, bytes], *, at: datetime, message: str
    ) -> Stored:
        final = self.path / "evidence" / month
        await asyncio.to_thread(self._write_dir, final, files)
        return Stored("dir", str(final), f"dir {final}")

    def _write_dir(self, final: Path, files: Mapping[str, bytes]) -> None:
        partial = final.with_name(f".{final.name}.partial")
        try:
            shutil.rmtree(partial, ignore_errors=True)
            write_files(partial, files)
            if final.exists():
                shutil.rmtree(final)
            partial.rename(final)
        except OSError as err:
            shutil.rmtree(partial, ignore_errors=True)
            raise TargetError(f"cannot write {final}: {err.strerror or err}") from None

    def _prune(self) -> None:
        try:
            backups = sorted(
                p for p in self.path.iterdir() if p.is_dir() and ID_PATTERN.match(p.name)
            )
        except OSError as err:
            raise TargetError(f"cannot list {self.path}: {err.strerror or err}") from None
        for old in backups[: max(0, len(backups) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)


WRITERS = 2
"""Threads creating a spooled backup's files; more only contend for the file system's journal
(measured on ext4: two kinds in two folders, 30% sooner than one thread; one folder, no gain)."""


class SpooledBackup:
    """A backup written into its directory while it is still being read.

    Creating a bundle's thousands of files is most of what a backup's disk costs, and a
    slow disk makes it slower still; the clusters take about as long to answer. Files handed
    to `add` (from any thread, a page of objects at a time) are written while the reads go
    on, by `WRITERS` threads of its own: each kind's folder always by the same one, so two
    kinds are created side by side without contending for one directory. `finish` waits for
    them, writes the rest (the MANIFEST, Helm values, anything whose bytes changed), removes
    what the bundle did not keep (the pages of an environment that failed half-way) and
    renames the directory into place, as `DirectoryTarget.store_backup` does; `discard`
    removes it.
    """

    def __init__(self, target: DirectoryTarget, partial: Path) -> None:
        self._target = target
        self._partial = partial
        self._written: dict[str, bytes] = {}
        self._directories: set[str] = set()
        self._writers: list[ThreadPoolExecutor] = []
        self._lanes: dict[str, int] = {}  # a kind's folder -> the writer that creates it
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._started = False

    def add(self, files: Mapping[str, bytes]) -> None:
        """Write `files` soon, on one of the spool's threads; errors surface in `finish`."""
        if not files:
            return
        folder = "/".join(next(iter(files)).split("/")[:2])  # `env/kind`
        with self._lock:
            self._start()
            lane = self._lanes.setdefault(folder, len(self._lanes) % WRITERS)
            while len(self._writers) <= lane:
                self._writers.append(ThreadPoolExecutor(1, thread_name_prefix="spool"))
            self._pending.append(self._writers[lane].submit(self._write, dict(files)))

    def finish(self, backup_id: str, files: Mapping[str, bytes]) -> Stored:
        """The backup `files` in `<target>/<backup_id>/`, every earlier write included
        (blocking: run it off the event loop)."""
        final = self._target.path / backup_id
        try:
            self._drain()
            self._write({p: d for p, d in files.items() if self._written.get(p) is not d})
            stray = [self._partial / p for p in self._written if p not in files]
            for path in stray:
                path.unlink()
            for folder in sorted({p.parent for p in stray}, key=lambda p: -len(p.parts)):
                _remove_empty(folder, up_to=self._partial)
            if final.exists():
                shutil.rmtree(final)
            self._partial.rename(final)
        except OSError as err:
            shutil.rmtree(self._partial, ignore_errors=True)
            raise TargetError(f"cannot write {final}: {err.strerror or err}") from None
        except BaseException:
            shutil.rmtree(self._partial, ignore_errors=True)
            raise
        self._target._prune()
        return Stored("dir", str(final), f"dir {final}")

    def discard(self) -> None:
        """Give the backup up: wait for the writes in flight and remove what they wrote."""
        try:
            self._drain()
        except (OSError, TargetError):
            pass
        finally:
            shutil.rmtree(self._partial, ignore_errors=True)

    def _drain(self) -> None:
        with self._lock:
            writers, pending, self._writers, self._pending = self._writers, self._pending, [], []
        for writer in writers:
            writer.shutdown(wait=True)
        for future in pending:
            future.result()

    def _start(self) -> None:
        """Clear what an earlier run left under this name, once (under the lock, or after
        `_drain`)."""
        if not self._started:
            shutil.rmtree(self._partial, ignore_errors=True)
            self._started = True

    def _write(self, files: Mapping[str, bytes]) -> None:
        self._start()
        write_files(self._partial, files, made=self._directories)
        self._written.update(files)


def _remove_empty(folder: Path, *, up_to: Path) -> None:
    """`folder` and its parents below `up_to`, as long as they are empty."""
    while folder != up_to and up_to in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: another file of the bundle lives there
            return
        folder = folder.parent


def write_files(root: Path, files: Mapping[str, bytes], *, made: set[str] | None = None) -> None:
    """Write `files` (relative paths) under `root`, creating directories.

    A bundle holds thousands of small files: each directory is made once, and each file is
    written with one open, write and close (pathlib's per-file stat and mkdir cost more than
    the write). `made`: the directories an earlier call made under `root`, kept up to date.
    """
    made = set() if made is None else made
    directories = {_folder(root, relative) for relative in files}
    for directory in sorted(directories - made):
        (root / directory).mkdir(parents=True, exist_ok=True)
    made |= directories
    base = f"{root}/"
    for relative, data in files.items():
        fd = os.open(base + relative, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def _folder(root: Path, relative: str) -> str:
    """The folder of `relative` ("." at the top); TargetError when it would leave `root`.

    A bundle's own paths (`env/kind/name.yaml`) are read with string operations, which cost
    a tenth of pathlib's parsing; anything else (`..`, `./`, `//`, a leading `/`) by pathlib.
    """
    padded = f"/{relative}/"
    if relative and "//" not in padded and "/./" not in padded and "/../" not in padded:
        return relative.rpartition("/")[0] or "."
    path = PurePosixPath(relative)
    if not path.parts or ".." in path.parts or path.is_absolute():
        raise TargetError(f"refusing to write outside {root}: {relative}")
    return str(path.parent)


def read_directory(root: Path) -> dict[str, bytes]:
    """Every regular file under `root`, by path relative to it (hidden files skipped)."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory")
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = path.read_bytes()
    return files
