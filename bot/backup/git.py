"""A git repository as a backup target: one commit per backup that changed something.

The working clone lives at the target's `path`; with a `remote` it is pushed after every
commit (and pending commits from an earlier failed push go out with the next backup). The
bundle sits under `backup/` (MANIFEST plus one directory per environment, replaced whole
for the environments of each backup), evidence packs under `evidence/<YYYY-MM>/`.

The MANIFEST's time and id change on every backup; when nothing else did, the working tree
is reset and no commit is made, so the history shows only real changes and `git log -p
backup/<env>` is the policy changelog. git runs as a child process (never blocking the
event loop) with a deadline per call and prompts disabled.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.backup.bundle import MANIFEST, untar
from bot.backup.targets import Stored, TargetError, write_files

BACKUP_DIR = "backup"
EVIDENCE_DIR = "evidence"
AUTHOR = ("policy-bot", "policy-bot@localhost")


class GitTarget:
    kind = "git"

    def __init__(
        self,
        path: Path,
        *,
        remote: str | None,
        branch: str,
        timeout_s: float = 60.0,
        push_timeout_s: float = 120.0,
    ) -> None:
        self.path = path
        self.remote = remote
        self.branch = branch
        self.timeout_s = timeout_s
        self.push_timeout_s = push_timeout_s
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return f"git {self.remote or self.path}"

    async def store_backup(
        self,
        backup_id: str,
        files: Mapping[str, bytes],
        *,
        at: datetime,
        message: str,
        environments: Sequence[str],
    ) -> Stored:
        async with self._lock:
            await self._ensure_repo()
            root = self.path / BACKUP_DIR
            await asyncio.to_thread(_replace, root, files, environments)
            await self._git("add", "-A", "--", BACKUP_DIR)
            changed = not await self._quiet_diff(BACKUP_DIR, f":(exclude){BACKUP_DIR}/{MANIFEST}")
            if changed:
                await self._commit(message, at)
            else:
                await self._git("reset", "-q", "--hard", "HEAD")
                await self._git("clean", "-fdq", "--", BACKUP_DIR)
            return await self._finish(changed)

    async def load_backup(self, location: str) -> dict[str, bytes]:
        await self._ensure_repo()
        archive = await self._git_bytes("archive", "--format=tar", location, "--", BACKUP_DIR)
        return untar(archive)

    async def store_evidence(
        self, month: str, files: Mapping[str, bytes], *, at: datetime, message: str
    ) -> Stored:
        async with self._lock:
            await self._ensure_repo()
            directory = self.path / EVIDENCE_DIR / month
            await asyncio.to_thread(_replace_dir, directory, files)
            await self._git("add", "-A", "--", EVIDENCE_DIR)
            changed = not await self._quiet_diff(EVIDENCE_DIR)
            if changed:
                await self._commit(message, at)
            return await self._finish(changed)

    # -- internals ---------------------------------------------------------------------

    async def _finish(self, changed: bool) -> Stored:
        head = (await self._git("rev-parse", "HEAD")).strip()
        name = self.remote.rstrip("/").rsplit("/", 1)[-1] if self.remote else self.path.name
        display = f"git {name.removesuffix('.git')}@{head[:7]}"
        if self.remote:
            try:
                await self._git(
                    "push",
                    "-q",
                    "origin",
                    f"HEAD:refs/heads/{self.branch}",
                    timeout=self.push_timeout_s,
                )
            except TargetError as err:
                return Stored("git", head, display, changed, error=f"committed {head[:7]}; {err}")
        return Stored("git", head, display, changed)

    async def _ensure_repo(self) -> None:
        if (self.path / ".git").is_dir():
            return
        try:
            await asyncio.to_thread(self.path.mkdir, parents=True, exist_ok=True)
        except OSError as err:
            raise TargetError(f"cannot create {self.path}: {err.strerror or err}") from None
        await self._git("init", "-q", "-b", self.branch)
        if self.remote:
            await self._git("remote", "add", "origin", self.remote)
            try:
                await self._git("fetch", "-q", "origin", self.branch, timeout=self.push_timeout_s)
            except TargetError:
                return  # an empty remote: the first push creates the branch
            await self._git("reset", "-q", "--hard", "FETCH_HEAD")

    async def _quiet_diff(self, *pathspec: str) -> bool:
        """True when the index equals HEAD for `pathspec` (always False before a first commit)."""
        try:
            await self._git("rev-parse", "-q", "--verify", "HEAD")
        except TargetError:
            return False
        process = await self._run("diff", "--cached", "--quiet", "--", *pathspec)
        return process[0] == 0

    async def _commit(self, message: str, at: datetime) -> None:
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
        await self._git(
            "-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}",
            "commit", "-q", "--no-verify", "-m", message,
            env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
        )  # fmt: skip

    async def _git(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        out = await self._git_bytes(*args, timeout=timeout, env=env)
        return out.decode("utf-8", "replace")

    async def _git_bytes(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        code, out, err = await self._run(*args, timeout=timeout, env=env)
        if code != 0:
            text = err.decode("utf-8", "replace").strip().splitlines()
            detail = text[-1] if text else f"exit code {code}"
            verb = next(a for a in args if not a.startswith("-") and "=" not in a)
            raise TargetError(f"git {verb} failed: {detail}")
        return out

    async def _run(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        git = shutil.which("git")
        if git is None:
            raise TargetError("git is not installed where the bot runs")
        child_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        process = await asyncio.create_subprocess_exec(
            git,
            "-C",
            str(self.path),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout or self.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TargetError(
                f"git {args[0]} did not finish within {timeout or self.timeout_s:.0f} s"
            ) from None
        return process.returncode or 0, out, err


def _replace(root: Path, files: Mapping[str, bytes], environments: Sequence[str]) -> None:
    """Put a bundle under `root`: the listed environments are replaced whole."""
    try:
        for env in environments:
            shutil.rmtree(root / env, ignore_errors=True)
        write_files(root, files)
    except OSError as err:
        raise TargetError(f"cannot write {root}: {err.strerror or err}") from None


def _replace_dir(directory: Path, files: Mapping[str, bytes]) -> None:
    try:
        shutil.rmtree(directory, ignore_errors=True)
        write_files(directory, files)
    except OSError as err:
        raise TargetError(f"cannot write {directory}: {err.strerror or err}") from None
