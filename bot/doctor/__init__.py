"""Kyverno health: the runbook's tuning advice checked live on every environment (SPEC 2.8)."""
