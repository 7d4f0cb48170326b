"""The backends a config and its policies need: one executor per action backend a policy
uses, the Prometheus checker when one asks Prometheus, the Slack approver when Slack is
configured, and LiveBackends, the same built again for a reload.

A client library is imported only by the builder that needs it (a Docker-only daemon never
imports kubernetes or asyncpg: test_deferred), so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pydantic import SecretStr

from remediator import log
from remediator.actions.base import Executor
from remediator.actions.deferred import Deferred
from remediator.actions.http import HttpExecutor
from remediator.actions.notify import NotifyExecutor
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config
from remediator.core.kinds import Backend, kinds_on
from remediator.core.policy import Policy
from remediator.daemon import Daemon
from remediator.errors import ConfigError

if TYPE_CHECKING:  # slack_sdk is imported only when Slack is configured (build_slack)
    from remediator.slack import SlackApprover

# The logger app.py's builders used: `executor.missing` and `slack.no_approvers` keep the
# logger name operators filter on.
_log = log.get("remediator.app")

Secrets = Mapping[str, SecretStr]


def _kubernetes(config: Config, slack: SlackApprover | None, secrets: Secrets) -> Executor:
    # Imported only when a policy needs it: the client library alone is ~50 MiB resident.
    from remediator.actions.kubernetes import KubernetesExecutor  # noqa: PLC0415

    return KubernetesExecutor(
        config.kubernetes.kubeconfig,
        config.kubernetes.context,
        frozenset(config.kubernetes.protected_namespaces),
    )


def _docker(config: Config, *_: object) -> Executor:
    def load() -> Executor:
        from remediator.actions.docker import DockerExecutor  # noqa: PLC0415

        return DockerExecutor(config.docker.url)

    return Deferred(load, name="docker")


def _postgres(_: Config, __: SlackApprover | None, secrets: Secrets) -> Executor:
    from remediator.actions.postgres import PostgresExecutor  # noqa: PLC0415

    return PostgresExecutor(secrets)


class _Builder(NamedTuple):
    # None: not configured. `secrets` fill ${secret:NAME}: shared, so a reload updates them.
    build: Callable[[Config, SlackApprover | None, Secrets], Executor | None]
    always: bool  # built even when no policy uses it (/healthz reports it)
    missing: str = ""  # what a policy using it lacks when `build` gives None


# Docker and Slack are cheap to build; a Docker-only setup should not report an unreachable
# cluster, so Kubernetes (and http) are built only when a policy uses them.
_EXECUTORS = {
    Backend.DOCKER: _Builder(_docker, always=True),
    Backend.NOTIFY: _Builder(
        lambda _, slack, __: NotifyExecutor(slack) if slack is not None else None,
        always=True,
        missing="slack is not configured",
    ),
    Backend.HTTP: _Builder(lambda _, __, secrets: HttpExecutor(secrets), always=False),
    Backend.KUBERNETES: _Builder(_kubernetes, always=False),
    Backend.POSTGRES: _Builder(_postgres, always=False),
}


def build_executors(
    config: Config,
    policies: list[Policy],
    slack: SlackApprover | None,
    *,
    secrets: Secrets | None = None,
    running: Mapping[str, Executor] | None = None,
) -> dict[str, Executor]:
    """One executor per backend the policies' kinds run on, under each of its action types;
    a backend among `running` (a reload's) keeps its executor.

    A backend that cannot be built refuses the start when a policy's first action needs it;
    when only a ladder's later step does (a last `notify` rung without Slack, as the shipped
    ladders have), it is a warning: that step fails when reached, which trips the breaker."""
    secrets = config.action_secrets() if secrets is None else secrets
    running = running or {}
    first: dict[Backend, list[str]] = {}
    later: dict[Backend, list[str]] = {}
    for policy in policies:
        first.setdefault(policy.action.kind.backend, []).append(policy.name)
        for action in policy.actions[1:]:
            later.setdefault(action.kind.backend, []).append(policy.name)
    executors: dict[str, Executor] = {}
    for backend, builder in _EXECUTORS.items():
        if not builder.always and backend not in first and backend not in later:
            continue
        types = [kind.type for kind in kinds_on(backend)]
        built = next((running[t] for t in types if t in running), None)
        executor = built or builder.build(config, slack, secrets)
        if executor is None:
            if backend in first:
                names = ", ".join(sorted(first[backend]))
                raise ConfigError(f"policies {names} use {backend}, but {builder.missing}")
            if backend in later:
                _log.warning(
                    "executor.missing",
                    backend=str(backend),
                    policies=sorted(set(later[backend])),
                    detail=f"a later step uses {backend}, but {builder.missing}: it fails "
                    "when reached",
                )
            continue
        executors.update(dict.fromkeys(types, executor))
    return executors


def build_checker(config: Config, policies: list[Policy]) -> PrometheusChecker | None:
    """Only when a policy asks Prometheus something: otherwise nothing to connect to."""
    if any(
        p.condition is not None or any(v.prometheus is not None for v in p.verifies)
        for p in policies
    ):
        return PrometheusChecker(config.prometheus.url)
    return None


def _no_slack(config: Config) -> bool:
    slack = config.slack
    return slack.bot_token is None and slack.signing_secret is None and slack.channel is None


def slack_problem(config: Config) -> str | None:
    """What `serve` refuses in the slack block (a reload checks it the same way)."""
    slack = config.slack
    if _no_slack(config):
        return None
    if slack.bot_token is None or slack.signing_secret is None or not slack.channel:
        return "slack: set bot_token, signing_secret and channel together (or none)"
    return None


def build_slack(config: Config) -> SlackApprover | None:
    slack = config.slack
    problem = slack_problem(config)
    if problem is not None:
        raise ConfigError(problem)
    if _no_slack(config):
        return None
    if not slack.approvers:
        _log.warning(
            "slack.no_approvers",
            detail="slack.approvers is empty: only policies "
            "with their own approvers can be approved in Slack",
        )
    from remediator.slack import SlackApprover  # noqa: PLC0415  # slack_sdk: only for Slack

    return SlackApprover(slack)


@dataclass
class LiveBackends:
    """What a reload builds (reload.Backends): an executor for a backend a new policy is the
    first to use, Prometheus for the first condition or verify query, and the new secrets."""

    daemon: Daemon
    slack: SlackApprover | None
    secrets: MutableMapping[str, SecretStr]  # the running executors' own

    def prepare(self, config: Config, policies: list[Policy]) -> Callable[[], None]:
        running = self.daemon.executors
        executors = build_executors(
            config, policies, self.slack, secrets=self.secrets, running=running
        )
        added = {name: e for name, e in executors.items() if name not in running}
        checker = build_checker(config, policies) if self.daemon.checker is None else None
        fresh = config.action_secrets()

        def install() -> None:
            # Added or replaced, never removed: an action decided before the reload (a
            # ladder's later step) may still name one the new config dropped.
            self.secrets.update(fresh)
            self.daemon.add_backends(added, checker)

        return install
