"""Wiring and lifecycle: builds store, executors, the daemon's parts and web server from the
config, runs until SIGTERM/SIGINT (SIGHUP reloads), then stops intake, drains actions
(bounded) and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from aiohttp import web
from pydantic import SecretStr

from remediator import log
from remediator.actions.base import Executor
from remediator.actions.deferred import Deferred
from remediator.actions.http import HttpExecutor
from remediator.actions.notify import NotifyExecutor
from remediator.addresses import network_problems, open_endpoints, parse_listen
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config
from remediator.config_file import load_config
from remediator.core.kinds import Backend, kinds_on
from remediator.core.policy import Policy
from remediator.daemon import Daemon, build_daemon
from remediator.errors import ConfigError
from remediator.metrics import Metrics
from remediator.policy_files import load_configured
from remediator.reload import Reloader, ReloadRefusedError
from remediator.slack import SlackApprover
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore
from remediator.web.keys import STATE
from remediator.web.server import build_app

_log = log.get("remediator.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_store(config: Config) -> Store:
    target = config.state_target()
    if target.kind == "postgresql":
        # asyncpg is imported only by a daemon that uses it, as are the client libraries below.
        from remediator.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(target.path)
    return SqliteStore(target.path)


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


def build_reloader(
    daemon: Daemon,
    config: Config,
    load: Callable[[], Config],
    slack: SlackApprover | None,
    secrets: MutableMapping[str, SecretStr],
) -> Reloader:
    backends = LiveBackends(daemon, slack, secrets)
    return Reloader(daemon, config, load, backends, slack_problem=slack_problem)


def build_web(daemon: Daemon, config: Config, reloader: Reloader | None = None) -> web.Application:
    """The HTTP layer, handed the parts it serves (the integration tests build it here too)."""
    return build_app(
        config,
        reloader=reloader,
        intake=daemon.intake,
        switches=daemon.switches,
        approvals=daemon.approvals,
        clicks=daemon.clicks,
        audit=daemon.store,
        metrics=daemon.metrics,
        health=daemon.health,
        clock=daemon.clock,
    )


def _check_open_endpoints(config: Config) -> None:
    """Open endpoints: a config error off loopback (parse_config says so too), else a warning."""
    problems = network_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
    who_can = {"alertmanager": "send alerts", "datadog": "send alerts", "api": "pause and approve"}
    for endpoint, key in open_endpoints(config):
        _log.warning(
            "auth.open",
            endpoint=endpoint,
            detail=f"auth.{key} is not set: any local process can {who_can[key]}",
        )
    for key in ("alertmanager", "datadog", "api"):
        block = getattr(config.auth, key)
        if block is not None and block.allow_unauthenticated:
            _log.warning(
                "auth.open",
                endpoint=key,
                detail=f"auth.{key}.allow_unauthenticated is true: anyone who can reach "
                f"the daemon can {who_can[key]}",
            )


def _skip_hangups(loop: asyncio.AbstractEventLoop, why: str) -> None:
    loop.add_signal_handler(
        signal.SIGHUP, lambda: _log.warning("config.reload_skipped", reason=why)
    )


async def _reload_on_signal(reloader: Reloader) -> None:
    with contextlib.suppress(ReloadRefusedError):  # logged with every problem; the set stays
        await reloader.reload("signal:SIGHUP")


async def run(
    config: Config, stop: asyncio.Event | None = None, *, path: Path | None = None
) -> None:
    """Serve until `stop` is set (or a signal sets it); SIGHUP re-reads `path` (None: as
    load_config finds it) and every policy."""
    loop = asyncio.get_running_loop()
    # Until the reloader exists a SIGHUP is ignored, not the default (which ends the process).
    _skip_hangups(loop, "starting")
    try:
        await _run(config, stop or asyncio.Event(), path, loop)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def _run(
    config: Config, stop: asyncio.Event, path: Path | None, loop: asyncio.AbstractEventLoop
) -> None:
    log.register_secrets(config.secret_values())
    _check_open_endpoints(config)
    policies = load_configured(config)
    if not policies:
        _log.warning(
            "policies.none",
            paths=[str(p) for p in config.policy_paths()],
            detail="no policies loaded: alerts are received and counted, none is acted on",
        )
    slack = build_slack(config)  # before the store opens: a config error must leave nothing open
    secrets = dict(config.action_secrets())  # the executors', updated in place by a reload
    executors = build_executors(config, policies, slack, secrets=secrets)
    store = build_store(config)
    await store.open()
    daemon = build_daemon(
        config,
        policies=policies,
        store=store,
        executors=executors,
        metrics=Metrics(),
        clock=utcnow,
        slack=slack,
        checker=build_checker(config, policies),
    )
    try:
        await daemon.start()
    except BaseException:
        await store.close()
        raise
    reloader = build_reloader(daemon, config, lambda: load_config(path), slack, secrets)
    app = build_web(daemon, config, reloader)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    try:
        await runner.setup()
        host, port = parse_listen(config.listen)
        await web.TCPSite(runner, host, port).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(
            signal.SIGHUP,
            lambda: daemon.supervisor.spawn(_reload_on_signal(reloader), "reload-sighup"),
        )
        _log.info(
            "daemon.started",
            listen=config.listen,
            policies=len(policies),
            state=config.state_target().kind,
            dry_run=config.dry_run,
        )
        await stop.wait()
        _log.info("daemon.stopping", running_actions=daemon.runner.running)
    finally:
        app[STATE]["draining"] = True
        reloader.draining = True
        _skip_hangups(loop, "shutting down")
        await runner.cleanup()  # stop listening; let in-flight webhooks commit
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await daemon.stop(reloader.config.drain_timeout)
        await store.close()
    _log.info("daemon.stopped")
