"""pytest fixtures for Kyverno (registered from ``tests/conftest.py``); Kyverno itself runs
from ``bot/playground/kyverno.py``.

- ``kyverno_assets`` (session): the build directory; without it the test is skipped, or fails
  when ``POLICY_BOT_REQUIRE_KYVERNO=1`` (CI).
- ``kyverno`` (session): a dedicated control plane (its CRDs from the same build) with Kyverno
  running, started once; tests isolate with :meth:`Kyverno.namespace_for` and policies that
  match only their namespace.
- ``namespace`` and ``policy_name``: that namespace, and a ClusterPolicy name deleted after the
  test, for the tests that run on this Kyverno.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from bot.playground.control_plane import Assets, install_reaper
from bot.playground.kyverno import (
    Kyverno,
    KyvernoAssets,
    KyvernoUnavailable,
    build_assets,
    on_a_plane_of_its_own,
)
from tests.servers.child import skip_or_fail

REQUIRE_ENV = "POLICY_BOT_REQUIRE_KYVERNO"


@pytest.fixture(scope="session")
def kyverno_assets() -> KyvernoAssets:
    """The Kyverno binaries and CRDs (``make kyverno`` builds them ahead of the tests)."""
    try:
        return build_assets()
    except KyvernoUnavailable as exc:
        skip_or_fail(f"no Kyverno build: {exc}", REQUIRE_ENV)


@pytest.fixture(scope="session")
def kyverno(
    kyverno_assets: KyvernoAssets, kube_assets: Assets, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kyverno]:
    """Kyverno running on a control plane of its own, for the whole session."""
    install_reaper()
    base = tmp_path_factory.mktemp("kyverno")
    with on_a_plane_of_its_own(kyverno_assets, kube_assets, base, remove_webhooks=False) as running:
        yield running


@pytest.fixture
def namespace(kyverno: Kyverno, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own on the Kyverno plane (its policies match only it)."""
    with kyverno.namespace_for(request.node.name) as name:
        yield name


@pytest.fixture
def policy_name(kyverno: Kyverno) -> Iterator[str]:
    """A fresh ClusterPolicy name, deleted from the Kyverno plane after the test."""
    name = f"require-labels-{secrets.token_hex(3)}"
    yield name
    kyverno.delete_policy(name)
