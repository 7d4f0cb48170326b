"""Wiring and lifecycle: builds store, the daemon and web server from the config (its
executors, Prometheus checker and Slack approver come from backends.py), runs until
SIGTERM/SIGINT (SIGHUP reloads), then stops intake, drains actions (bounded) and closes the
store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr

from remediator import log
from remediator.addresses import network_problems, open_endpoints, parse_listen
from remediator.backends import (
    _EXECUTORS,
    LiveBackends,
    Secrets,
    build_checker,
    build_executors,
    build_slack,
    slack_problem,
)
from remediator.config import Config
from remediator.config_file import load_config
from remediator.daemon import Daemon, build_daemon
from remediator.errors import ConfigError
from remediator.metrics import Metrics
from remediator.policy_files import load_configured
from remediator.reload import Reloader, ReloadRefusedError
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore
from remediator.web.keys import STATE
from remediator.web.server import build_app

if TYPE_CHECKING:  # slack_sdk is imported only when Slack is configured (backends.build_slack)
    from remediator.slack import SlackApprover

# The names importers take from here; the builders among them live in backends.py.
__all__ = [
    "_EXECUTORS",
    "LiveBackends",
    "Secrets",
    "build_checker",
    "build_executors",
    "build_reloader",
    "build_slack",
    "build_store",
    "build_web",
    "run",
    "slack_problem",
    "utcnow",
]

_log = log.get("remediator.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_store(config: Config) -> Store:
    target = config.state_target()
    if target.kind == "postgresql":
        # asyncpg is imported only by a daemon that uses it, as are backends.py's client libraries.
        from remediator.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(target.path)
    return SqliteStore(target.path)


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
