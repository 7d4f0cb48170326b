"""verify.http against a real HTTP server on loopback: polled until its status (and body)
holds within verify.within, beside the action's own check; a health URL that never holds
fails the action and trips the breaker; redirects are statuses, never followed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from remediator.actions.base import ActionRequest
from remediator.checks.http import judge_answer, wait_healthy
from remediator.core.verify import HttpCheck, VerifyPlan
from remediator.runner import Runner
from remediator.store.sqlite import SqliteStore
from tests.fixtures.health_endpoint import HealthEndpoint
from tests.integration.test_runner import Scripted, _action, _record, _runner, _until


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "state.db"))
    await db.open()
    yield db
    await db.close()


async def _verified(
    store: SqliteStore, check: HttpCheck, within: float = 5.0
) -> tuple[str, str, list[str]]:
    tripped: list[str] = []
    runner: Runner = _runner(store, {"docker.restart": Scripted()}, tripped=tripped)
    runner._http_poll = 0.05  # a fast poll for the test; the daemon polls each 1s
    action_id = await _action(store)
    plan = VerifyPlan(timedelta(seconds=within), http=check)
    runner.submit(ActionRequest(action_id, "p", "docker.restart", "web-1", {}, plan))
    await _until(lambda: runner.running == 0, "the action to end", within + 10)
    await runner.drain(timedelta(seconds=10))
    outcome, reason = await _record(store, "web-1")
    return outcome, reason, tripped


async def test_polled_until_healthy(store: SqliteStore, health_endpoint: HealthEndpoint) -> None:
    state, url = health_endpoint, health_endpoint.url
    state.failing = 3
    outcome, reason, tripped = await _verified(store, HttpCheck(f"{url}/health", "200", "ok"))
    assert outcome == "executed", reason
    assert reason == f"restarted web-1; healthy: GET {url}/health: 200 containing 'ok'"
    assert state.asked == 4 and tripped == []


async def test_never_healthy_fails_the_action_and_trips_the_breaker(
    store: SqliteStore, health_endpoint: HealthEndpoint
) -> None:
    state, url = health_endpoint, health_endpoint.url
    state.failing = 10_000
    outcome, reason, tripped = await _verified(store, HttpCheck(f"{url}/health"), within=1.0)
    assert outcome == "failed"
    assert reason == (
        f"restarted web-1; not healthy within 1s: GET {url}/health: 503, expected 2xx"
    )
    assert tripped == ["p"]
    assert state.asked >= 2  # polled, not asked once


async def test_a_body_without_the_substring_is_not_healthy(
    store: SqliteStore, health_endpoint: HealthEndpoint
) -> None:
    state, url = health_endpoint, health_endpoint.url
    state.body = "status: degraded"
    outcome, reason, _ = await _verified(
        store, HttpCheck(f"{url}/health", contains="status: ok"), within=0.5
    )
    assert outcome == "failed"
    assert reason.endswith("200, body does not contain 'status: ok'")


async def test_a_redirect_is_a_status_never_followed(health_endpoint: HealthEndpoint) -> None:
    state, url = health_endpoint, health_endpoint.url
    verdict = await wait_healthy(HttpCheck(f"{url}/moved"), timedelta(seconds=0.3), poll=0.05)
    assert not verdict.ok and "302, expected 2xx" in verdict.reason
    assert "/health" not in state.paths
    verdict = await wait_healthy(HttpCheck(f"{url}/moved", "302"), timedelta(seconds=1))
    assert verdict.ok


async def test_nothing_listening_is_a_reason_not_an_error() -> None:
    verdict = await wait_healthy(
        HttpCheck("http://127.0.0.1:9/health"), timedelta(seconds=0.3), poll=0.05
    )
    assert not verdict.ok
    assert verdict.reason.startswith("not healthy within 300ms: GET http://127.0.0.1:9/health: ")


@pytest.mark.parametrize(
    ("check", "status", "body", "ok"),
    [
        (HttpCheck("http://h/x"), 204, "", True),
        (HttpCheck("http://h/x"), 500, "", False),
        (HttpCheck("http://h/x", "200,503"), 503, "", True),
        (HttpCheck("http://h/x", "200", "ready"), 200, "not ready", True),
        (HttpCheck("http://h/x", "200", "READY"), 200, "ready", False),
    ],
)
def test_judge_answer(check: HttpCheck, status: int, body: str, ok: bool) -> None:
    assert judge_answer(check, status, body).ok is ok
