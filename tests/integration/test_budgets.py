"""Honest budgets through the whole daemon (its pipeline, runner and HTTP API) on both backends:
dry runs count only toward dry-run accounting, so switching to live starts clean; an attempt
that never reached its target (a real refused port, a missing Docker socket) starts no cooldown
and spends no rate limit, across a restart too; `reset` with `{"limits": true}` clears a
policy's cooldowns and rate window, and says what it cleared and who asked."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.actions.docker import DockerExecutor
from remediator.actions.http import HttpExecutor
from remediator.actions.kubernetes import KubernetesExecutor
from remediator.actions.postgres import PostgresExecutor
from tests.integration.conftest import Harness, HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message, policy

pytestmark = on_both_backends

LIVE = 'cooldown: 1h, rate_limit: "1/1h"'
LATER = "2026-11-22T11:00:00Z"  # a new firing episode of the same alert
LATEST = "2026-11-22T11:30:00Z"


class Recording:
    """Stands in for Docker where the action's effect is not under test: records each run."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.ran.append(request.target)
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


async def _restart(h: Harness) -> None:
    """The daemon stops (as at a config change or a crash-free restart): nothing it held in
    memory survives; the next harness over the same store is the daemon started again."""
    await h.client.close()
    await h.daemon.stop(timedelta(seconds=5))


async def _outcomes(h: Harness, body: dict[str, Any]) -> list[str]:
    status, answer = await h.post(body)
    assert status == 200, answer
    return [d["outcome"] for d in answer["decisions"]]


async def _acted(h: Harness, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await h.post(body)
    assert status == 200, answer
    [decision] = answer["decisions"]
    assert decision["outcome"] == "executing", decision
    return await h.wait_outcome(decision["id"], {"executed", "failed", "cooldown", "paused"})


# --- dry runs ----------------------------------------------------------------------------


async def test_after_a_whole_daemon_dry_run_live_starts_with_clean_budgets(
    harness: HarnessFactory,
) -> None:
    limits = 'limits: {global_rate: "1/1h"}\n'
    dry = await harness(policy(guards=LIVE), "dry_run: true\n" + limits)
    # The dry run meets every guard as a live run would: its own accounting.
    assert await _outcomes(dry, message(alert("web-1"), alert("web-2"))) == [
        "dry_run",
        "rate_limited",
    ]
    assert await _outcomes(dry, message(alert("web-1", starts=LATER))) == ["cooldown"]
    await _restart(dry)

    executor = Recording()
    live = await harness(
        policy(guards=LIVE), limits, executors={"docker.restart": executor}, store=dry.daemon.store
    )
    # Neither the cooldown, the policy's rate_limit nor global_rate remembers the dry run.
    done = await _acted(live, message(alert("web-1", starts=LATEST)))
    assert done["outcome"] == "executed" and executor.ran == ["web-1"]
    # The live action spends the live budget.
    assert await _outcomes(live, message(alert("web-3", starts=LATEST))) == ["rate_limited"]
    assert [d["outcome"] for d in await live.decisions()][:3] == [
        "dry_run",
        "rate_limited",
        "cooldown",
    ]  # the dry run's audit is kept


async def test_a_policy_dry_run_spends_nothing_live_and_a_dry_run_meets_the_live_budget(
    harness: HarnessFactory,
) -> None:
    dry = await harness(policy(guards=f"dry_run: true, {LIVE}"))
    assert await _outcomes(dry, message(alert("web-1"))) == ["dry_run"]
    await _restart(dry)

    executor = Recording()
    live = await harness(
        policy(guards=LIVE), executors={"docker.restart": executor}, store=dry.daemon.store
    )
    assert (await _acted(live, message(alert("web-1", starts=LATER))))["outcome"] == "executed"
    await _restart(live)

    # Back in dry run, a live action counts: the dry run shows what a live run would meet.
    again = await harness(policy(guards=f"dry_run: true, {LIVE}"), store=dry.daemon.store)
    assert await _outcomes(again, message(alert("web-1", starts=LATEST))) == ["cooldown"]
    assert await _outcomes(again, message(alert("web-2", starts=LATEST))) == ["rate_limited"]


# --- attempts that never reached their target --------------------------------------------


@pytest.fixture
def refused() -> Iterator[tuple[socket.socket, int]]:
    """A loopback port that refuses every connection: bound, never listening. Held for the
    test, so no client's own ephemeral port can take it (a connect from a port to itself
    would succeed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, int(sock.getsockname()[1])
    finally:
        sock.close()


Backend = Callable[[Path, int], tuple[str, Callable[[], Executor], str]]


def _docker(tmp_path: Path, port: int) -> tuple[str, Callable[[], Executor], str]:
    path = tmp_path / "no-docker" / "docker.sock"  # no engine has ever listened there
    text = policy(guards=LIVE)
    return text, lambda: DockerExecutor(f"unix://{path}"), "No such file or directory"


def _http(tmp_path: Path, port: int) -> tuple[str, Callable[[], Executor], str]:
    hook = f"http://127.0.0.1:{port}/job"
    text = f"""
name: restart-web
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: http.request
  params: {{method: POST, url: "{hook}/{{{{ labels.container }}}}", body: "rollback"}}
  allow_targets: ["{hook}/*"]
guards: {{{LIVE}}}
"""
    return text, lambda: HttpExecutor({}), "cannot connect"


def _kubernetes(tmp_path: Path, port: int) -> tuple[str, Callable[[], Executor], str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    text = f"""
name: restart-web
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: kubernetes.restart
  params: {{namespace: prod, deployment: "{{{{ labels.container }}}}"}}
  allow_targets: ["prod/web-*"]
guards: {{{LIVE}}}
"""
    return (
        text,
        lambda: KubernetesExecutor(str(kubeconfig), None, frozenset(), retry_wait=0.05),
        "Kubernetes API unreachable",
    )


def _postgres(tmp_path: Path, port: int) -> tuple[str, Callable[[], Executor], str]:
    text = f"""
name: restart-web
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: postgres.execute
  params: {{dsn: "postgresql://remediator@127.0.0.1:{port}/app", statement: "SELECT 1"}}
  allow_targets: ["127.0.0.1:{port}/app"]
guards: {{{LIVE}}}
"""
    return text, lambda: PostgresExecutor({}), "cannot connect"


@pytest.mark.parametrize("backend", [_docker, _http, _kubernetes, _postgres])
async def test_an_attempt_refused_before_sending_spends_no_budget_across_a_restart(
    harness: HarnessFactory,
    tmp_path: Path,
    refused: tuple[socket.socket, int],
    backend: Backend,
) -> None:
    text, executor, why = backend(tmp_path, refused[1])
    config = 'limits: {global_rate: "1/1h"}\n'
    kind = text.split("type: ", 1)[1].split()[0]
    h = await harness(text, config, executors={kind: executor()})
    first = await _acted(h, message(alert("web-1")))
    assert first["outcome"] == "failed" and why in first["reason"], first
    assert h.metric("remediator_policy_tripped", policy="restart-web") == 0
    await _restart(h)

    # Started again, with nothing in memory: the store knows the attempt never reached it.
    again = await harness(text, config, executors={kind: executor()}, store=h.daemon.store)
    # Same target within the cooldown, past the rate limits of 1: decided, tried again.
    second = await _acted(again, message(alert("web-1", starts=LATER)))
    assert second["outcome"] == "failed" and why in second["reason"], second


async def test_a_refused_attempt_spends_nothing_and_the_one_that_reaches_the_hook_does(
    harness: HarnessFactory, tmp_path: Path, refused: tuple[socket.socket, int]
) -> None:
    holder, port = refused
    text, executor, _ = _http(tmp_path, port)
    h = await harness(text, executors={"http.request": executor()})
    assert (await _acted(h, message(alert("web-1"))))["outcome"] == "failed"
    holder.close()  # the port is free for the hook
    calls: list[str] = []

    async def job(request: web.Request) -> web.Response:
        calls.append(request.match_info["name"])
        return web.json_response({"started": True})

    app = web.Application()
    app.router.add_post("/job/{name}", job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()  # the hook is up now
    try:
        assert (await _acted(h, message(alert("web-1", starts=LATER))))["outcome"] == "executed"
        assert calls == ["web-1"]
        # This one reached the hook: its cooldown and rate window run.
        assert await _outcomes(h, message(alert("web-1", starts=LATEST))) == ["cooldown"]
        assert await _outcomes(h, message(alert("web-2", starts=LATEST))) == ["rate_limited"]
    finally:
        await runner.cleanup()


# --- reset with limits -------------------------------------------------------------------


async def test_reset_with_limits_clears_the_cooldowns_and_rate_window_and_says_who(
    harness: HarnessFactory,
) -> None:
    executor = Recording()
    h = await harness(policy(guards=LIVE), executors={"docker.restart": executor})
    assert (await _acted(h, message(alert("web-1"))))["outcome"] == "executed"
    assert await _outcomes(h, message(alert("web-1", starts=LATER))) == ["cooldown"]
    assert await _outcomes(h, message(alert("web-2"))) == ["rate_limited"]

    # Without limits: the breaker only (it was closed: nothing to clear).
    status, answer = await h.api("/api/v1/policies/restart-web/reset")
    assert status == 200 and answer["cleared"] == [] and answer["tripped"] is False
    assert await _outcomes(h, message(alert("web-1", starts=LATEST))) == ["cooldown"]

    status, answer = await h.api(
        "/api/v1/policies/restart-web/reset", {"limits": True}, who="alice"
    )
    assert status == 200, answer
    assert (answer["cleared"], answer["by"]) == (["cooldown", "rate_limit"], "api:alice")
    recorded = json.loads(await h.daemon.store.get_flag("limits:restart-web") or "{}")
    assert recorded["by"] == "api:alice"
    # The same target at once (its decision and its turn in the runner), then the budget
    # counts again from the reset.
    new = "2026-11-22T11:45:00Z"
    assert (await _acted(h, message(alert("web-1", starts=new))))["outcome"] == "executed"
    assert executor.ran == ["web-1", "web-1"]
    assert await _outcomes(h, message(alert("web-3", starts=new))) == ["rate_limited"]
    outcomes = [d["outcome"] for d in await h.decisions()]
    assert outcomes.count("executed") == 2  # the audit keeps everything before the reset


async def test_reset_with_limits_leaves_the_global_rate_of_all_policies(
    harness: HarnessFactory,
) -> None:
    executor = Recording()
    h = await harness(
        policy(guards='cooldown: 1h, rate_limit: "5/1h"'),
        'limits: {global_rate: "2/1h"}\n',
        executors={"docker.restart": executor},
    )
    for target in ("web-1", "web-2"):
        assert (await _acted(h, message(alert(target))))["outcome"] == "executed"
    status, answer = await h.api("/api/v1/policies/restart-web/reset", {"limits": True})
    assert status == 200 and answer["cleared"] == ["cooldown", "rate_limit"]
    status, answer = await h.post(message(alert("web-1", starts=LATER)))
    [held] = answer["decisions"]
    assert held["outcome"] == "rate_limited" and "global_rate 2/1h" in held["reason"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"limits": "yes"}, "limits must be true or false"),
        ({"limit": True}, "unknown field(s) 'limit'"),
        ([True], "must be a JSON object"),
    ],
)
async def test_a_reset_body_it_cannot_read_is_400_and_clears_nothing(
    harness: HarnessFactory, body: Any, problem: str
) -> None:
    h = await harness(policy(guards=LIVE), executors={"docker.restart": Recording()})
    await h.daemon.switches.trip("restart-web", "verify failed")
    resp = await h.client.post(
        "/api/v1/policies/restart-web/reset",
        json=body,
        headers={"Authorization": "Bearer api-token-123456"},
    )
    assert resp.status == 400 and problem in (await resp.json())["error"]
    assert "restart-web" in h.daemon.switches.gates.tripped
    status, _ = await h.api("/api/v1/policies/nope/reset", {"limits": True})
    assert status == 404
