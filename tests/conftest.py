"""Shared pytest configuration: each fixture family lives in its own plugin module."""

pytest_plugins = [
    "tests.kube.kyverno",
    "tests.kube.fixtures",
    "tests.emulators.fixtures",
    "tests.servers.fixtures",
]
