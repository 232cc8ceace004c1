"""The Alertmanager relay: webhook payloads in, paced Slack messages out (SPEC 2.2).

`webhook` parses, `routing` picks channels, `outbox` stores notifications and the per-message
work durably, `sender` drains that work to Slack, `relay` wires the pieces for the app.
"""
