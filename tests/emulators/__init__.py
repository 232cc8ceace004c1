"""Loopback emulators of the external services the bot talks to."""
