"""The Kyverno fixture itself: a second Kyverno runs beside the session's, and stopping it
leaves no process and no webhook behind on a plane that keeps running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.playground.control_plane import Assets, ControlPlane
from bot.playground.kyverno import COMPONENTS, Kyverno, KyvernoAssets, KyvernoError
from tests.kube.fixtures import default_crds

pytestmark = [pytest.mark.kube, pytest.mark.kyverno]


def test_a_second_kyverno_runs_beside_the_first_and_stops_cleanly(
    kyverno: Kyverno, kyverno_assets: KyvernoAssets, kube_assets: Assets, tmp_path: Path
) -> None:
    plane = ControlPlane.start(kube_assets, tmp_path / "plane", crd_dir=kyverno_assets.crd_dir)
    try:
        second = Kyverno.start(kyverno_assets, plane, tmp_path / "kyverno")
        pids = [child.popen.pid for child in second._children]
        assert len(pids) == len(COMPONENTS)
        assert second.webhook_port != kyverno.webhook_port
        assert not set(second.metrics_ports.values()) & set(kyverno.metrics_ports.values())
        for component in COMPONENTS:
            assert second.log(component).stat().st_size > 0
        kyverno.check_alive()  # the session's Kyverno did not lose a port race

        second.stop()

        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        webhooks = plane.kubectl(
            "get", "validatingwebhookconfigurations,mutatingwebhookconfigurations", "-o", "name"
        ).stdout
        assert "kyverno" not in webhooks
    finally:
        plane.stop()


def test_start_up_failure_names_the_process_and_shows_its_log(
    kyverno_assets: KyvernoAssets, kube_assets: Assets, tmp_path: Path
) -> None:
    # a plane without Kyverno's CRDs: the admission controller exits at its sanity check
    plane = ControlPlane.start(kube_assets, tmp_path / "plane", crd_dir=default_crds()[-2:])
    try:
        with pytest.raises(KyvernoError) as failure:
            Kyverno.start(kyverno_assets, plane, tmp_path / "kyverno", timeout=120)
        message = str(failure.value)
        assert "exited with code" in message
        assert str(tmp_path / "kyverno") in message  # the log paths, with their tails
    finally:
        plane.stop()
