"""The bot as a separate process (`python -m bot`), the way a container runs it.

A child gets SIGKILL when the test process dies (``PR_SET_PDEATHSIG``), so a killed test run
leaves no bot behind. `read_only_root()` gives a command prefix that runs the bot with the
root filesystem read-only and only /tmp writable, like the chart's pod
(readOnlyRootFilesystem with an emptyDir at /tmp), where the machine allows mount namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.playground.child import die_with_parent, log_tail

LOG_TAIL_LINES = 40
RO_ROOT_SCRIPT = 'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"'


def read_only_root() -> list[str] | None:
    """`unshare` prefix: a private mount namespace where / is read-only and /tmp writable.

    None when this machine does not allow it (not root, no unshare, no CAP_SYS_ADMIN).
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "--mount", "--propagation", "private", "sh", "-c", RO_ROOT_SCRIPT, "sh"]
    probe = (
        "if touch /.policy-bot-ro-probe 2>/dev/null; then rm -f /.policy-bot-ro-probe; exit 1; fi;"
        " touch /tmp/.policy-bot-ro-probe && rm /tmp/.policy-bot-ro-probe"
    )
    try:
        result = subprocess.run(
            [*prefix, "sh", "-c", probe], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if result.returncode == 0 else None


@dataclass
class BotProcess:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        *,
        config: Path,
        port: int,
        env: Mapping[str, str],
        workdir: Path,
        prefix: Sequence[str] = (),
    ) -> BotProcess:
        """`python -m bot --config CONFIG` with only `env` (plus PATH) in its environment."""
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{name}.log"
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(workdir),
            "TMPDIR": "/tmp",
            **env,
        }
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*prefix, sys.executable, "-m", "bot", "--config", str(config)],
                cwd=workdir,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        return cls(name, port, popen, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        return log_tail(self.log, LOG_TAIL_LINES)

    async def get(self, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url + path) as response,
        ):
            return response.status, await response.text()

    async def wait_until_ready(self, path: str = "/readyz", *, timeout: float = 90.0) -> None:
        """Poll `path` until it answers 200; fail with the log tail if the process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}"
                )
            try:
                status, body = await self.get(path)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
            else:
                if status == 200:
                    return
                last = f"{status} {body[:300]}"
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"{self.name} {path} not ready in {timeout} s ({last}):\n{self.tail()}"
        )

    async def terminate(self, *, timeout: float = 30.0) -> int:
        """SIGTERM (a clean shutdown) and its exit code."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {timeout} s:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: the process ends with no chance to clean up."""
        if self.alive:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
