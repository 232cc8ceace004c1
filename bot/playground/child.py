"""Child processes of the playground and the tests: a real binary, a free loopback port, its log.

What Alertmanager, Prometheus, the control planes, helm and the bot-as-a-process share:
finding the binary, a free port, dying with the process that started it, waiting for
`/-/ready`, the log's last lines when something went wrong, and stopping. (The tests' way of
skipping, or failing in CI, when a binary is missing is theirs: ``tests/servers/child.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

_PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 30


class BinaryNotInstalled(Exception):
    """A server binary was not found; the message says where we looked."""


def find_binary(env: str, names: Sequence[str], install: str) -> Path:
    """The binary in `env`, else the first of `names` on PATH; `install` says how to get it."""
    configured = os.environ.get(env)
    if configured:
        if not os.access(configured, os.X_OK):
            raise BinaryNotInstalled(f"{env}={configured} is not executable")
        return Path(configured)
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BinaryNotInstalled(f"{names[0]} is not installed ({install}, or set {env})")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn`: in the child, get `sig` if its parent dies without cleaning up."""

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def write_yaml(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL past `timeout_s`."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass
class ServerProcess:
    """A server binary running on `url`, logging to `log_path`."""

    url: str
    log_path: Path
    process: asyncio.subprocess.Process

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


async def wait_ready(server: ServerProcess, what: str, timeout_s: float) -> None:
    """Poll `/-/ready` (Prometheus' and Alertmanager's) until 200, or fail with the log."""
    timeout = aiohttp.ClientTimeout(total=2)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while loop.time() < deadline:
            if server.process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{server.url}/-/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready:\n{server.log_tail()}")


S = TypeVar("S", bound=ServerProcess)


@contextlib.asynccontextmanager
async def serving(
    what: str,
    make: Callable[[str, Path, asyncio.subprocess.Process], S],
    binary: Path,
    args: Callable[[str, int], Sequence[str]],
    log_path: Path,
    *,
    start_timeout_s: float,
    stop_timeout_s: float,
) -> AsyncIterator[S]:
    """`binary` with `args(url, port)` on a free loopback port, once `/-/ready`; stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            *args(url, port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    server = make(url, log_path, process)
    try:
        await wait_ready(server, what, start_timeout_s)
        yield server
    finally:
        await stop_process(process, stop_timeout_s)
