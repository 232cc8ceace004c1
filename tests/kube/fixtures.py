"""pytest fixtures for the real Kubernetes control plane (registered from ``tests/conftest.py``).

- ``kube_assets`` (session): the etcd / kube-apiserver / kubectl directory, from
  ``tools/kubebins/build.sh`` (a no-op once built). Without Go or a successful build the kube
  tests are skipped, or fail when ``POLICY_BOT_REQUIRE_KUBE=1`` (CI must not skip silently).
- ``control_plane_factory`` (session): ``start(n)`` returns ``n`` independent planes with the
  policy, exception and report CRDs of the pinned Kyverno module installed (see
  :func:`default_crds`); planes are shared, so tests asking for two get the same two. All are
  stopped at session end. The ``kyverno`` fixture's plane gets every CRD of the module.
- ``control_plane`` (session): the factory's first plane.
- ``kube_api`` (session): an admin ``kubernetes`` ApiClient for ``control_plane``.
- ``kube_namespace`` (function): a fresh namespace on ``control_plane``, deleted afterwards
  (it stays Terminating forever, as no namespace controller runs; unique names make that moot).

A plane starts in a few seconds, so session scope keeps the suite fast; tests isolate themselves
with ``kube_namespace`` or unique object names rather than by restarting the API server.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.playground.control_plane import Assets, ControlPlane, ControlPlaneError, install_reaper
from bot.playground.kyverno import KyvernoUnavailable, crd_directory
from tests.servers.child import built_by, skip_or_fail

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "kubebins" / "build.sh"
REQUIRE_ENV = "POLICY_BOT_REQUIRE_KUBE"


@pytest.fixture(scope="session")
def kube_assets() -> Assets:
    """The control-plane binaries, built on first use (tens of minutes on a cold Go cache;
    run ``tools/kubebins/build.sh`` ahead of the tests to keep that out of the test timeout)."""
    directory = built_by(BUILD_SCRIPT, "Kubernetes test binaries", REQUIRE_ENV)
    try:
        return Assets.from_directory(directory)
    except ControlPlaneError as exc:
        skip_or_fail(str(exc), REQUIRE_ENV)


TEST_PLANE_CRDS = (
    "kyverno.io_clusterpolicies.yaml",
    "kyverno.io_policies.yaml",
    "kyverno.io_policyexceptions.yaml",
    "policies.kyverno.io_validatingpolicies.yaml",
    "policies.kyverno.io_namespacedvalidatingpolicies.yaml",
    "policies.kyverno.io_policyexceptions.yaml",
    "wgpolicyk8s.io_policyreports.yaml",
    "wgpolicyk8s.io_clusterpolicyreports.yaml",
    "openreports.io_reports.yaml",
    "openreports.io_clusterreports.yaml",
)
"""The kinds the bot reads, out of the module's 24 CRDs; the other Kyverno kinds (cleanup,
generating, mutating, image policies, update and ephemeral reports, global context) would
show up as empty kinds in every backup and listing. Kyverno itself needs all of them."""


@functools.cache
def _crd_directory() -> Path | str:
    try:
        return crd_directory()
    except KyvernoUnavailable as exc:
        return str(exc)


def default_crds() -> list[Path]:
    """The CRD files every test plane gets, from the Kyverno module the ``kyverno`` fixture
    runs: ``tools/kyverno/build.sh --crds`` copies its ``config/crds`` and the openreports CRDs
    it pins out of the Go module cache (downloading the modules when needed) with a PROVENANCE
    note. Without them the kube tests are skipped, or fail under ``POLICY_BOT_REQUIRE_KUBE=1``.
    """
    found = _crd_directory()
    if isinstance(found, str):
        skip_or_fail(
            f"no Kyverno CRDs (test planes install those of the Kyverno module): {found}",
            REQUIRE_ENV,
        )
    files = [found / name for name in TEST_PLANE_CRDS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        skip_or_fail(f"the Kyverno module has no {', '.join(missing)}", REQUIRE_ENV)
    return files


class ControlPlaneFactory:
    """Starts control planes on demand and shares them across the session."""

    def __init__(
        self, assets: Assets, base_dir: Path, crd_dir: Path | Sequence[Path] | None = None
    ) -> None:
        self._assets = assets
        self._base_dir = base_dir
        self._crd_dir = crd_dir if crd_dir is not None else default_crds()
        self._planes: list[ControlPlane] = []
        self._lock = threading.Lock()

    def start(self, n: int) -> list[ControlPlane]:
        """Return ``n`` running planes, starting (in parallel) only those not yet running."""
        install_reaper()  # from this (main) thread: the planes start in worker threads
        with self._lock:
            first = len(self._planes)
            if n > first:
                workdirs = [self._base_dir / f"plane-{i}" for i in range(first, n)]
                with ThreadPoolExecutor(max_workers=len(workdirs)) as pool:
                    futures = [
                        pool.submit(ControlPlane.start, self._assets, w, crd_dir=self._crd_dir)
                        for w in workdirs
                    ]
                # keep every plane that started, so stop_all() stops it even if another failed
                errors = [e for e in (f.exception() for f in futures) if e is not None]
                self._planes += [f.result() for f in futures if f.exception() is None]
                if errors:
                    raise errors[0]
            planes = self._planes[:n]
        for plane in planes:
            plane.check_alive()
        return planes

    def stop_all(self) -> None:
        with self._lock:
            for plane in self._planes:
                plane.stop()
            self._planes.clear()


@pytest.fixture(scope="session")
def control_plane_factory(
    kube_assets: Assets, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlaneFactory]:
    """``control_plane_factory.start(n) -> list[ControlPlane]``; planes are shared per session."""
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("kube"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def control_plane(control_plane_factory: ControlPlaneFactory) -> ControlPlane:
    """The session's main control plane, with all CRDs installed and Established."""
    return control_plane_factory.start(1)[0]


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[ApiClient]:
    """An admin ApiClient for ``control_plane``, closed at session end."""
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def kube_namespace(kube_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace unique to this test on ``control_plane``."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
