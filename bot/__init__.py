"""policy-bot: Slack ChatOps for Kyverno policy operations."""

__version__ = "0.1.0"
