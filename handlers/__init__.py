"""Slack and HTTP entry points: thin adapters between wire payloads and the core in `bot`."""
