"""The exception hierarchy. A guard that stops an action is an outcome, never one of these."""

from __future__ import annotations


class RemediatorError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(RemediatorError):
    """The daemon config is invalid; the message names the key."""


class PolicyError(RemediatorError):
    """Policies are invalid; `problems` holds `FILE: policy NAME: field: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class IngestError(RemediatorError):
    """A webhook request is rejected; `status` is the HTTP code to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RenderError(RemediatorError):
    """A policy template could not be rendered for one alert (missing label, empty result)."""


class ActionError(RemediatorError):
    """An action failed. Only `retryable` errors are retried: the request surely did nothing.

    `reached` False: the action provably never reached its target (the connection was
    refused or never made, nothing was sent), so it starts no cooldown and spends no rate
    limit. Every retryable error is one; an executor that retried on its own and gave up
    says so with `reached=False` alone."""

    def __init__(
        self, reason: str, *, retryable: bool = False, reached: bool | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.reached = not retryable if reached is None else reached and not retryable


class StoreError(RemediatorError):
    """The state store is unavailable or refused a write; webhooks answer 503."""


class SlackError(RemediatorError):
    """Slack refused or could not be reached; approvals still work through the API."""
