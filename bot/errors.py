"""The bot's error hierarchy. Adapters translate SDK errors into these; one edge reports them.

Each error carries `user_message`: what went wrong and what to do, written for Slack.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot reports to a person."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ClusterUnavailable(BotError):
    """An environment's API server did not answer in time or refused the connection."""

    def __init__(self, environment: str, reason: str) -> None:
        super().__init__(
            f"Environment *{environment}* is unreachable ({reason}). "
            "Check that its API server is up and that the bot's kubeconfig is valid; "
            "the bot retries on its own and `/readyz` reports it meanwhile."
        )
        self.environment = environment
        self.reason = reason


class ClusterForbidden(BotError):
    """The bot's identity lacks an RBAC permission on an environment."""

    def __init__(self, environment: str, verb: str, resource: str) -> None:
        super().__init__(
            f"The bot may not {verb} {resource} in *{environment}*. "
            f"Grant its ServiceAccount `{verb}` on `{resource}` (see the RBAC table in the README)."
        )
        self.environment = environment
        self.verb = verb
        self.resource = resource


class UnknownEnvironment(BotError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"There is no environment called `{name}`. Known environments: {', '.join(known)}."
        )
        self.name = name


class PolicyNotFound(BotError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"No policy called `{name}` exists in any environment. "
            "`/policy status` lists the policies of every environment."
        )
        self.name = name
