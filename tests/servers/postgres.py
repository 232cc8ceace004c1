"""A real, throw-away PostgreSQL server for the test session.

The store's PostgreSQL behaviour (advisory locks, triggers, two connection pools racing for
the audit chain) cannot be emulated honestly, so tests run the distribution's own server:
`initdb` into a temporary directory, then `postgres` on a free loopback port with its unix
socket in that directory and durability switched off (`fsync`, `synchronous_commit`,
`full_page_writes`), which makes the whole start take well under a second.

PostgreSQL refuses to run as root. When the tests run as root (containers, CI), the
directory is handed to the `postgres` system account and both programs run under it.
The server dies with the test process even on a hard interrupt: the child asks the kernel
for a parent-death signal (`PR_SET_PDEATHSIG`) before it executes.

Binaries: `POLICY_BOT_POSTGRES_BIN` (a directory), else the newest
`/usr/lib/postgresql/<version>/bin` (Debian/Ubuntu), else `initdb`/`postgres` on PATH.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy.engine import make_url

BIN_ENV = "POLICY_BOT_POSTGRES_BIN"
REQUIRE_ENV = "POLICY_BOT_REQUIRE_POSTGRES"
SERVICE_ACCOUNT = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class PostgresNotInstalled(Exception):
    """No PostgreSQL server binaries were found; the reason says where we looked."""


class PostgresStartFailed(Exception):
    """initdb or postgres failed; the message carries the tail of the server log."""


class _PortTaken(PostgresStartFailed):
    pass


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `postgres`, or `PostgresNotInstalled`."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        candidates = [Path(configured)]
    else:
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: _version_key(p.parent.name),
            reverse=True,
        )
        candidates = list(versions)
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    where = configured or "/usr/lib/postgresql/*/bin and PATH"
    raise PostgresNotInstalled(
        f"PostgreSQL server binaries (initdb, postgres) not found in {where}; "
        "install the postgresql package or set " + BIN_ENV
    )


def check_installed() -> Path:
    """The binaries' directory, if this machine can run a test server at all."""
    bin_dir = find_bin_dir()
    _service_account()
    return bin_dir


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit()) or (0,)


@dataclass
class PostgresServer:
    """A running server: connect as the trust-authenticated superuser over 127.0.0.1."""

    host: str
    port: int
    workdir: Path
    log_path: Path
    _free: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    _spawn: Callable[[], subprocess.Popen[bytes]] | None = None

    def crash(self) -> None:
        """Kill the server and every backend at once (SIGKILL to its process group): no
        shutdown, open transactions cut, clients see their connections drop."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=STOP_TIMEOUT_S)

    def start_again(self) -> None:
        """Start on the same data and port after `crash` (PostgreSQL recovers from its WAL)."""
        assert self._spawn is not None and (
            self._process is None or self._process.poll() is not None
        )
        self._process = self._spawn()
        _wait_ready(self._process, self.workdir / "data", self.port, self.log_path)

    def url_for(self, dbname: str) -> str:
        """The store URL (as in the config file) of database `dbname` on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    async def create_database(self, name: str | None = None) -> str:
        """Create an empty database (from template0) and return its store URL.

        Takes 0.1-0.3 s; tests use `lease_database()`, which recycles databases.
        """
        dbname = name or f"t_{uuid.uuid4().hex[:16]}"
        await self._admin(f'CREATE DATABASE "{dbname}" TEMPLATE template0')
        return self.url_for(dbname)

    async def lease_database(self) -> str:
        """The URL of an empty database for one test; give it back with `release_database`.

        Emptying a used database (a few milliseconds) is much cheaper than creating one,
        and a database of its own also isolates advisory locks, which are per database.
        """
        if self._free:
            return self.url_for(self._free.pop())
        return await self.create_database()

    async def release_database(self, url: str) -> None:
        """End every session on the database, empty it and keep it for the next test."""
        dbname = make_url(url).database or ""
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=SUPERUSER, database=dbname, timeout=10
        )
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid();"
                "DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
                timeout=30,
            )
        finally:
            await conn.close(timeout=5)
        self._free.append(dbname)

    async def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=SUPERUSER, database="postgres", timeout=10
        )
        try:
            await conn.execute(statement, timeout=30)
        finally:
            await conn.close(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)


@contextlib.contextmanager
def running_postgres(
    bin_dir: Path | None = None, *, durable: bool = False
) -> Iterator[PostgresServer]:
    """Start a fresh server for the duration of the block; always stopped and removed.

    `durable` keeps `synchronous_commit` on, for a test that `crash()`es the server: a
    commit then survives the crash as in production (off, the last ~200 ms are lost)."""
    bin_dir = bin_dir or find_bin_dir()
    account = _service_account()
    workdir = Path(tempfile.mkdtemp(prefix="policy-bot-pg-"))
    process: subprocess.Popen[bytes] | None = None
    server: PostgresServer | None = None
    try:
        data, sockets = workdir / "data", workdir / "sock"
        sockets.mkdir()
        if account is not None:
            for path in (workdir, sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
        _initdb(bin_dir, data, account)
        log_path = workdir / "postgres.log"
        for attempt in range(2):  # the free port may be taken before postgres binds it
            port = _free_port()
            process = _start(bin_dir, data, sockets, port, log_path, account, durable)
            try:
                _wait_ready(process, data, port, log_path)
                break
            except _PortTaken:
                _stop(process)
                process = None
                if attempt == 1:
                    raise
        server = PostgresServer(
            host="127.0.0.1",
            port=port,
            workdir=workdir,
            log_path=log_path,
            _process=process,
            _spawn=functools.partial(
                _start, bin_dir, data, sockets, port, log_path, account, durable
            ),
        )
        yield server
    finally:
        if server is not None:
            process = server._process  # the one running now, after a crash and a restart
        if process is not None:
            _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _service_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise PostgresNotInstalled(
            f"running as root, and PostgreSQL refuses root; no {SERVICE_ACCOUNT!r} system "
            "account exists to run it as (the postgresql package creates one)"
        ) from None


@dataclass(frozen=True)
class _Identity:
    """Whom the PostgreSQL programs run as: the service account under root, else us."""

    user: int | None = None
    group: int | None = None
    extra_groups: tuple[int, ...] | None = None

    @classmethod
    def of(cls, account: pwd.struct_passwd | None) -> _Identity:
        if account is None:
            return cls()
        return cls(user=account.pw_uid, group=account.pw_gid, extra_groups=())


def _initdb(bin_dir: Path, data: Path, account: pwd.struct_passwd | None) -> None:
    command = [
        str(bin_dir / "initdb"),
        "--pgdata",
        str(data),
        "--username",
        SUPERUSER,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--locale",
        "C",
        "--no-sync",
        "--no-instructions",
    ]
    who = _Identity.of(account)
    result = subprocess.run(  # fixed argv, no shell
        command,
        capture_output=True,
        timeout=60,
        check=False,
        env=_child_env(),
        user=who.user,
        group=who.group,
        extra_groups=who.extra_groups,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
        raise PostgresStartFailed(f"initdb failed ({result.returncode}):\n{output}")


def _start(
    bin_dir: Path,
    data: Path,
    sockets: Path,
    port: int,
    log_path: Path,
    account: pwd.struct_passwd | None,
    durable: bool = False,
) -> subprocess.Popen[bytes]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(sockets),
        "fsync": "off",
        "synchronous_commit": "on" if durable else "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "32MB",
        "log_min_messages": "warning",
    }
    command = [str(bin_dir / "postgres"), "-D", str(data)]
    who = _Identity.of(account)
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    with log_path.open("ab") as log:
        return subprocess.Popen(  # fixed argv, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,  # a terminal's Ctrl-C reaches pytest, which stops us
            preexec_fn=_die_with_parent,  # runs in the child before exec
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )


def _child_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["LC_ALL"] = "C"
    return env


def _die_with_parent() -> None:
    """In the child: get SIGINT (PostgreSQL's fast shutdown) when the test process dies.

    Runs after the switch to the service account, so the setting survives it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(process: subprocess.Popen[bytes], data: Path, port: int, log_path: Path) -> None:
    """Until postmaster.pid says "ready" (the server's own status line) and the port answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pid_file = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = _tail(log_path, 30)
            if "could not bind" in log or "Address already in use" in log:
                raise _PortTaken(log)
            raise PostgresStartFailed(
                f"postgres exited with {process.returncode} while starting:\n{log}"
            )
        if _pid_file_ready(pid_file) and _accepts(port):
            return
        time.sleep(0.02)
    _stop(process)
    raise PostgresStartFailed(
        f"postgres was not ready within {START_TIMEOUT_S:g} s:\n{_tail(log_path, 30)}"
    )


def _pid_file_ready(pid_file: Path) -> bool:
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then SIGKILL if it takes longer than STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
