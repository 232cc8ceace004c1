"""Start and stop a real etcd + kube-apiserver, the way controller-runtime's envtest does: the
playground's clusters and the tests'.

There is no controller-manager, scheduler or kubelet: namespaces never finish terminating, no
garbage collection runs, no default ServiceAccounts exist and Pods stay Pending. Tests create the
objects they need directly and never wait for controllers.

Start-up, in order: PKI (one CA for serving and client certificates), etcd on free loopback ports
with ``--unsafe-no-fsync``, kube-apiserver with RBAC, a wait on ``/readyz`` using the admin
certificate (which also waits for the RBAC bootstrap hooks), an admin kubeconfig, and finally the
CRDs through server-side apply (the Kyverno policy CRDs overflow client-side apply's annotation)
and a wait until every one is Established.

Child processes must never outlive the test run, even when pytest is killed:

- every child runs in its own session, so a terminal Ctrl-C reaches only pytest, which stops
  them in order through the fixtures;
- atexit and SIGTERM/SIGINT handlers kill whatever is still registered;
- each child asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), which covers
  SIGKILL of pytest itself. The kernel ties that signal to the *thread* that forked, so every
  child is forked from one long-lived launcher thread rather than from short-lived workers.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import yaml

from bot.playground.child import log_tail
from bot.playground.pki import ControlPlanePKI

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

START_TIMEOUT = 90.0
"""envtest allows 20 s; kube-apiserver on two busy cores occasionally needs much more."""

STOP_TIMEOUT = 20.0
"""Grace period between SIGTERM and SIGKILL, as in envtest."""

KUBECTL_TIMEOUT = 120.0

_LOG_TAIL_LINES = 40
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, or one of its processes died."""


class PortInUseError(ControlPlaneError):
    """A child lost the race for a port picked as free; starting again usually succeeds."""


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message includes what kubectl printed on stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


@dataclass(frozen=True)
class Assets:
    """The three binaries, following the ``KUBEBUILDER_ASSETS`` convention.

    ``TEST_ASSET_ETCD``, ``TEST_ASSET_KUBE_APISERVER`` and ``TEST_ASSET_KUBECTL`` override single
    binaries, as in envtest, so Go tooling and these tests can share one build.
    """

    directory: Path
    etcd: Path
    kube_apiserver: Path
    kubectl: Path

    @classmethod
    def from_directory(cls, directory: Path) -> Assets:
        """Locate the binaries in ``directory``; raise when one is missing or not executable."""
        paths = {
            name: Path(
                os.environ.get(f"TEST_ASSET_{name.upper().replace('-', '_')}") or directory / name
            )
            for name in ("etcd", "kube-apiserver", "kubectl")
        }
        missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
        if missing:
            raise ControlPlaneError(f"missing control-plane binaries: {', '.join(missing)}")
        return cls(directory, paths["etcd"], paths["kube-apiserver"], paths["kubectl"])


# --- child processes -------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.RLock()  # re-entered by the signal handler
_launcher: ThreadPoolExecutor | None = None
_launcher_lock = threading.Lock()
_atexit_registered = False
_signals_installed = False


def _kill_registered_children() -> None:
    """Last-resort cleanup: SIGKILL every child still running (their data is throw-away)."""
    with _children_lock:
        children = list(_children)
        _children.clear()
    for child in children:
        if child.poll() is None:
            child.kill()
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _on_signal(previous: Any, signum: int, frame: FrameType | None) -> None:
    _kill_registered_children()
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def install_reaper() -> None:
    """Register the atexit hook once and, when called from the main thread, the SIGTERM/SIGINT
    handlers (Python only allows those there, so call this before starting worker threads)."""
    global _atexit_registered, _signals_installed
    with _children_lock:
        if not _atexit_registered:
            atexit.register(_kill_registered_children)
            _atexit_registered = True
        if not _signals_installed and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous = signal.getsignal(signum)
                signal.signal(signum, functools.partial(_on_signal, previous))
            _signals_installed = True


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _launch(
    args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Fork ``args`` from the long-lived launcher thread, output to ``log``, and register it.

    ``env`` replaces the environment (default: this process's)."""
    global _launcher
    install_reaper()
    with _launcher_lock:
        if _launcher is None:
            _launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-launcher")
        launcher = _launcher

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            child = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
                env=None if env is None else dict(env),
            )
        with _children_lock:
            _children.add(child)
        return child

    return launcher.submit(spawn).result()


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return log_tail(self.log, _LOG_TAIL_LINES)

    def check_alive(self) -> None:
        """Raise with the log tail when the process has exited."""
        code = self.popen.poll()
        if code is None:
            return
        tail = self.tail()
        error = PortInUseError if _PORT_IN_USE.search(tail) else ControlPlaneError
        raise error(f"{self.name} exited with code {code}; last lines of {self.log}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT)
        with _children_lock:
            _children.discard(self.popen)


def _free_ports(count: int) -> list[int]:
    """Ports the kernel reports free right now; a child may still lose a race for them."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _has_default_route() -> bool:
    """kube-apiserver cannot pick an advertise address on hosts without a default route."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return True
    return any(line.split()[1:2] == ["00000000"] for line in lines)


def _wait_until(
    ready: Callable[[], bool], children: Sequence[_Child], deadline: float, what: str
) -> None:
    while True:
        for child in children:
            child.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.log}:\n{c.tail()}" for c in children)
            raise ControlPlaneError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- the control plane ------------------------------------------------------------------------


def _kubeconfig(url: str, ca_file: Path, user: str, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
    }


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver, and the means to talk to it.

    ``kubeconfig`` authenticates as ``admin`` in ``system:masters``, which RBAC never denies; use
    :meth:`make_user_kubeconfig` for an ordinary user.
    """

    url: str
    kubeconfig: Path
    workdir: Path
    assets: Assets
    pki: ControlPlanePKI
    etcd_url: str
    _children: list[_Child] = field(default_factory=list, repr=False)

    @classmethod
    def start(
        cls,
        assets: Assets,
        workdir: Path,
        *,
        crd_dir: Path | Sequence[Path] | None = None,
        timeout: float = START_TIMEOUT,
    ) -> ControlPlane:
        """Start a plane in ``workdir``, with the CRDs of ``crd_dir`` (a directory, or a list of
        files) installed and Established.

        A lost race for a port is retried once with fresh ports, as envtest does.
        """
        install_reaper()
        try:
            return cls._start_once(assets, workdir, crd_dir, timeout)
        except PortInUseError:
            return cls._start_once(assets, workdir, crd_dir, timeout)

    @classmethod
    def _start_once(
        cls, assets: Assets, workdir: Path, crd_dir: Path | Sequence[Path] | None, timeout: float
    ) -> ControlPlane:
        deadline = time.monotonic() + timeout
        workdir.mkdir(parents=True, exist_ok=True)
        data_dir = workdir / "etcd-data"
        shutil.rmtree(data_dir, ignore_errors=True)
        pki = ControlPlanePKI.create(workdir / "pki")
        etcd_port, peer_port, secure_port = _free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        url = f"https://127.0.0.1:{secure_port}"
        plane = cls(
            url=url,
            kubeconfig=workdir / "admin.kubeconfig",
            workdir=workdir,
            assets=assets,
            pki=pki,
            etcd_url=etcd_url,
        )
        try:
            etcd = plane._spawn(
                "etcd",
                [
                    str(assets.etcd),
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                    "--name=test",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
            )
            _wait_until(lambda: _http_ok(f"{etcd_url}/health"), [etcd], deadline, "etcd /health")
            apiserver = plane._spawn("kube-apiserver", plane._apiserver_args(secure_port))
            admin_tls = plane.admin_ssl_context()
            _wait_until(
                lambda: _http_ok(f"{url}/readyz", admin_tls),
                [etcd, apiserver],
                deadline,
                "kube-apiserver /readyz",
            )
            plane.kubeconfig.write_text(
                yaml.safe_dump(
                    _kubeconfig(url, pki.ca_file, "admin", pki.admin_cert, pki.admin_key)
                )
            )
            if crd_dir is not None:
                plane.install_crds(crd_dir, timeout=max(deadline - time.monotonic(), 1.0))
        except BaseException:
            plane.stop()
            raise
        return plane

    def _spawn(self, name: str, args: list[str]) -> _Child:
        log = self.workdir / f"{name}.log"
        child = _Child(name, _launch(args, log), log)
        self._children.append(child)
        return child

    def _apiserver_args(self, secure_port: int) -> list[str]:
        pki = self.pki
        args = [
            str(self.assets.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={secure_port}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={pki.directory}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_file}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer=https://127.0.0.1:{secure_port}/",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_private_key}",
        ]
        if not _has_default_route():
            args.append("--advertise-address=127.0.0.1")
        return args

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS context that trusts the plane's CA and presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def install_crds(
        self, crd_dir: Path | Sequence[Path], *, timeout: float = START_TIMEOUT
    ) -> list[str]:
        """Server-side apply every CRD file in ``crd_dir`` (or each file of a list), wait until
        all are Established.

        Returns the ``customresourcedefinition.apiextensions.k8s.io/<name>`` names applied.
        """
        applied = self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-o",
            "name",
            *(f"--filename={f}" for f in ([crd_dir] if isinstance(crd_dir, Path) else crd_dir)),
        ).stdout.split()
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={int(timeout)}s",
            *applied,
            timeout=timeout + 10,
        )
        return applied

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run the plane's kubectl (as admin unless ``kubeconfig`` says otherwise).

        The discovery cache lives in the workdir: a shared ``~/.kube/cache`` keyed by
        ``127.0.0.1:<port>`` could serve another run's stale discovery.
        """
        command = [
            str(self.assets.kubectl),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def api_client(self, kubeconfig: Path | None = None) -> ApiClient:
        """A new ``kubernetes`` ApiClient for this plane; close it (``with`` works) when done."""
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig), persist_config=False
        )
        return api

    def make_user_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """Issue a client certificate for ``user`` in ``groups`` and write a kubeconfig for it.

        Such a user has no permissions until a test binds a Role or ClusterRole to it.
        """
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", user)
        directory = self.workdir / "users"
        directory.mkdir(exist_ok=True)
        cert, key = self.pki.ca.issue(user, organizations=groups).write(directory, slug)
        path = directory / f"{slug}.kubeconfig"
        path.write_text(yaml.safe_dump(_kubeconfig(self.url, self.pki.ca_file, user, cert, key)))
        return path

    def check_alive(self) -> None:
        """Raise with the log tail if etcd or kube-apiserver has died since start-up."""
        for child in self._children:
            child.check_alive()

    def stop(self) -> None:
        """Stop kube-apiserver first, then etcd (reverse start order)."""
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
