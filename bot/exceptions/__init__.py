"""PolicyExceptions by approval: requests, decisions, expiry, reminders, quarterly review.

The core of SPEC 2.3. It knows no Slack payloads: people are told through the `Notifier`
port, which the Slack handlers implement; JIRA is reached through `bot.jira`, clusters
through `bot.kube`.
"""
