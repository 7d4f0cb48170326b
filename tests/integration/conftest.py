"""The daemon's web app in-process over a real SQLite store, for HTTP-level integration tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.actions.base import Executor
from remediator.actions.notify import NotifyExecutor
from remediator.app import build_reloader, build_slack, build_web
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config
from remediator.config_file import load_config
from remediator.daemon import Daemon, build_daemon
from remediator.metrics import Metrics
from remediator.policy_files import load_policies
from remediator.store.postgres import PostgresStore
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore

AM_TOKEN = "am-token-abcdef"
API_TOKEN = "api-token-123456"
AUTH = {"Authorization": f"Bearer {AM_TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}
# Named API tokens: each is its own identity api:NAME (approvers list them that way).
PEOPLE = {name: f"{name}-token-0123456" for name in ("alice", "bob", "mallory")}


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    daemon: Daemon
    config: Config
    db_path: Path
    folder: Path  # remediator.yaml and policies/p.yaml: what POST /-/reload re-reads

    async def post(
        self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
        resp = await self.client.post("/webhook/alertmanager", data=data, headers=sent)
        payload = (
            await resp.json() if resp.content_type == "application/json" else await resp.text()
        )
        return resp.status, payload

    async def decisions(self) -> list[dict[str, Any]]:
        await self.daemon.intake.flush_repeats()
        resp = await self.client.get("/api/v1/decisions?limit=1000")
        assert resp.status == 200
        body = await resp.json()
        return list(reversed(body["decisions"]))  # oldest first reads better in tests

    async def outcomes(self) -> list[str]:
        return [d["outcome"] for d in await self.decisions()]

    async def api(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        who: str | None = None,
    ) -> tuple[int, Any]:
        """POST to the API as the token `api` or, with `who`, as that person's token."""
        if headers is None:
            headers = API if who is None else {"Authorization": f"Bearer {PEOPLE[who]}"}
        resp = await self.client.post(path, json=body, headers=headers)
        return resp.status, await resp.json()

    async def wait_outcome(
        self, decision_id: int, outcomes: set[str], within: float = 30
    ) -> dict[str, Any]:
        """Wait (deadline, not sleep-and-hope) for a decision to reach one of `outcomes`."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = {d["id"]: d for d in await self.decisions()}
            if decision_id in found and found[decision_id]["outcome"] in outcomes:
                return found[decision_id]
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(
                    f"decision {decision_id} never reached {outcomes}: {found.get(decision_id)}"
                )
            await asyncio.sleep(0.05)

    def metric(self, name: str, **labels: str) -> float:
        value = self.daemon.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """sqlite unless a module runs on both: `pytestmark = on_both_backends`."""
    return str(getattr(request, "param", "sqlite"))


on_both_backends = pytest.mark.parametrize("store_backend", ["sqlite", "postgresql"], indirect=True)


# A connection returned to an asyncpg pool is reset in a task the pool shields from its
# caller's cancellation: a daemon task cancelled at stop while handing its connection back
# leaves that task finishing on its own (milliseconds). A pool the harness does not own (a
# test's two replicas' stores) is closed only after this check, so it waits for those
# tasks, within a deadline; any other task still running is a leak.
_POOL_RELEASE = "PoolConnectionHolder.release"
_RELEASE_DEADLINE = 5.0


async def _leftover_tasks() -> list[asyncio.Task[Any]]:
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    releases = [t for t in others if getattr(t.get_coro(), "__qualname__", "") == _POOL_RELEASE]
    if releases:
        await asyncio.wait(releases, timeout=_RELEASE_DEADLINE)
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


@pytest.fixture
async def harness(
    tmp_path: Path, store_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[HarnessFactory]:
    made: list[tuple[TestClient[web.Request, web.Application], Daemon, Store | None]] = []

    async def make(
        policies: str,
        config: str = "",
        executors: dict[str, Executor] | None = None,
        clock: Callable[[], datetime] | None = None,
        checker: PrometheusChecker | None = None,
        store: Store | None = None,
    ) -> Harness:
        """`store`: another harness's store, shared (a restart with another config, or a
        second replica); it is closed once, by the harness that opened it."""
        folder = tmp_path / f"h{len(made)}"
        (folder / "policies").mkdir(parents=True)
        (folder / "policies" / "p.yaml").write_text(policies)
        tokens = ", ".join(
            f"{name}: {token}" for name, token in {"api": API_TOKEN, **PEOPLE}.items()
        )
        base = (
            f"auth: {{alertmanager: {{bearer_token: {AM_TOKEN}}}, api: {{tokens: {{{tokens}}}}}}}\n"
        )
        text = (
            config if config.lstrip().startswith("auth:") or "\nauth:" in config else base + config
        )
        (folder / "remediator.yaml").write_text(text)
        cfg = load_config(folder / "remediator.yaml", {})
        slack = build_slack(cfg)
        if slack is not None:
            executors = {"notify": NotifyExecutor(slack), **(executors or {})}
        owned = store is None
        if store is None:
            if store_backend == "postgresql":
                store = PostgresStore(request.getfixturevalue("postgres").database(), max_size=4)
            else:
                store = SqliteStore(str(folder / "state.db"))
            await store.open()
        daemon = build_daemon(
            cfg,
            policies=load_policies(cfg.policy_paths()),
            store=store,
            executors=executors or {},
            metrics=Metrics(),
            clock=clock or (lambda: datetime.now(UTC)),
            slack=slack,
            checker=checker,
        )
        await daemon.start()
        secrets = dict(cfg.action_secrets())
        reload = build_reloader(
            daemon, cfg, lambda: load_config(folder / "remediator.yaml", {}), slack, secrets
        )
        client = TestClient(TestServer(build_web(daemon, cfg, reload)))
        await client.start_server()
        made.append((client, daemon, store if owned else None))
        return Harness(client, daemon, cfg, folder / "state.db", folder)

    yield make
    for client, daemon, _ in made:
        await client.close()
        await daemon.stop(timedelta(seconds=10))
    for _, _, store in made:  # after every daemon on it stopped
        if store is not None:
            await store.close()
    leftover = await _leftover_tasks()
    assert not leftover, f"tasks left running: {leftover}"
