"""Promotion along the rollout ladder (SPEC 2.5), and demotion as the outage lever.

- `config`: the `promotion` config section (stages, gates, readiness wait), validated at start;
- `modes`: switching a policy object's mode and describing the fields that change (pure);
- `sightings`: one policy as it is in every environment, with its failing results;
- `plan`: what a promotion would do and whether its gates pass (pure);
- `readiness`: waiting for Kyverno's Ready condition after a write;
- `records`: plans and the bot's own stage history in the store;
- `service`: plan, confirm, cancel, override and demote, with the authorisation rules.
"""
