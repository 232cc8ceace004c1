"""Shared pytest configuration: each fixture family lives in its own plugin module."""

pytest_plugins = [
    "tests.kube.kyverno",  # before tests.kube.fixtures, which imports it
    "tests.kube.fixtures",
    "tests.emulators.fixtures",
    "tests.servers.fixtures",
]
