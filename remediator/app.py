"""Wiring and lifecycle: builds store, executors, the daemon's parts and web server from the
config, runs until SIGTERM/SIGINT, then stops intake, drains actions (bounded) and closes
the store.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

from aiohttp import web

from remediator import log
from remediator.actions.base import Executor
from remediator.actions.docker import DockerExecutor
from remediator.actions.http import HttpExecutor
from remediator.actions.notify import NotifyExecutor
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config, network_problems, open_endpoints, parse_listen
from remediator.core.policy import Policy
from remediator.daemon import Daemon, build_daemon
from remediator.errors import ConfigError
from remediator.metrics import Metrics
from remediator.policy_files import load_configured
from remediator.slack import SlackApprover
from remediator.store.base import Store
from remediator.store.postgres import PostgresStore
from remediator.store.sqlite import SqliteStore
from remediator.web.server import STATE, build_app

_log = log.get("remediator.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_store(config: Config) -> Store:
    target = config.state_target()
    if target.kind == "postgresql":
        return PostgresStore(target.path)
    return SqliteStore(target.path)


def build_executors(
    config: Config, policies: list[Policy], slack: SlackApprover | None
) -> dict[str, Executor]:
    executors: dict[str, Executor] = {"docker.restart": DockerExecutor(config.docker.url)}
    notify = sorted(p.name for p in policies if p.action.type == "notify")
    if notify and slack is None:
        raise ConfigError(f"policies {', '.join(notify)} use notify, but slack is not configured")
    if slack is not None:
        executors["notify"] = NotifyExecutor(slack)
    if any(p.action.type == "http.request" for p in policies):
        executors["http.request"] = HttpExecutor(config.action_secrets())
    # Built only when used: a Docker-only setup should not report an unreachable cluster.
    if any(p.action.type.startswith("kubernetes.") for p in policies):
        # Imported only when a policy needs it: the client library alone is ~50 MiB resident.
        from remediator.actions.kubernetes import (  # noqa: PLC0415
            ACTION_TYPES as KUBE_ACTIONS,
        )
        from remediator.actions.kubernetes import KubernetesExecutor  # noqa: PLC0415

        kube = KubernetesExecutor(
            config.kubernetes.kubeconfig,
            config.kubernetes.context,
            frozenset(config.kubernetes.protected_namespaces),
        )
        executors.update(dict.fromkeys(KUBE_ACTIONS, kube))
    return executors


def build_checker(config: Config, policies: list[Policy]) -> PrometheusChecker | None:
    """Only when a policy asks Prometheus something: otherwise nothing to connect to."""
    if any(p.condition is not None or p.verify.prometheus is not None for p in policies):
        return PrometheusChecker(config.prometheus.url)
    return None


def build_slack(config: Config) -> SlackApprover | None:
    slack = config.slack
    if slack.bot_token is None and slack.signing_secret is None and slack.channel is None:
        return None
    if slack.bot_token is None or slack.signing_secret is None or not slack.channel:
        raise ConfigError("slack: set bot_token, signing_secret and channel together (or none)")
    if not slack.approvers:
        _log.warning(
            "slack.no_approvers",
            detail="slack.approvers is empty: only policies "
            "with their own approvers can be approved in Slack",
        )
    return SlackApprover(slack)


def build_web(daemon: Daemon, config: Config) -> web.Application:
    """The HTTP layer, handed the parts it serves (the integration tests build it here too)."""
    return build_app(
        config,
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


async def run(config: Config, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or a signal sets it)."""
    log.register_secrets(config.secret_values())
    _check_open_endpoints(config)
    policies = load_configured(config)
    if not policies:
        _log.warning(
            "policies.none",
            paths=[str(p) for p in config.policy_paths()],
            detail="no policies loaded: alerts are received and counted, none is acted on",
        )
    stop = stop or asyncio.Event()
    slack = build_slack(config)  # before the store opens: a config error must leave nothing open
    executors = build_executors(config, policies, slack)
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
    app = build_web(daemon, config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    loop = asyncio.get_running_loop()
    try:
        await runner.setup()
        host, port = parse_listen(config.listen)
        await web.TCPSite(runner, host, port).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
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
        await runner.cleanup()  # stop listening; let in-flight webhooks commit
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await daemon.stop(config.drain_timeout)
        await store.close()
    _log.info("daemon.stopped")
