"""POST /webhook/alertmanager at the HTTP edge: auth, bad input, the real corpus, the audit API."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.errors import StoreError
from tests.conftest import CORPUS
from tests.integration.conftest import API, AUTH, Harness, HarnessFactory

POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}"}
  allow_targets: ["web-*"]
guards: {dry_run: true}
"""


def body(
    container: str = "web-1", starts: str = "2026-11-22T10:00:00.123456789Z", status: str = "firing"
) -> dict[str, object]:
    return {
        "version": "4",
        "status": status,
        "receiver": "remediator",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "ContainerDown", "container": container},
                "annotations": {},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T10:05:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": f"fp-{container}",
            }
        ],
    }


async def test_a_valid_alert_is_decided_and_listed(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    status, answer = await h.post(body())
    assert status == 200
    assert answer["alerts"] == 1
    [decision] = answer["decisions"]
    assert decision["outcome"] == "dry_run" and decision["target"] == "web-1"
    [record] = await h.decisions()
    assert set(record) == {
        "id",
        "time",
        "policy",
        "source",
        "alertname",
        "fingerprint",
        "action",
        "target",
        "outcome",
        "reason",
        "approval_id",
        "repeats",
    }
    assert record["policy"] == "restart-web" and record["source"] == "alertmanager"
    assert record["fingerprint"] == "fp-web-1" and record["action"] == "docker.restart"
    assert h.metric("remediator_alerts_received_total", source="alertmanager", status="firing") == 1
    assert h.metric("remediator_decisions_total", policy="restart-web", outcome="dry_run") == 1


@pytest.fixture
async def strict(harness: HarnessFactory) -> Harness:
    return await harness(POLICY, "max_body_bytes: 4096\n")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": AUTH["Authorization"].replace("Bearer", "Basic")}, 401),
        ({"Authorization": AUTH["Authorization"] + "x"}, 401),
        ({"Authorization": AUTH["Authorization"].upper()}, 401),  # tokens are case-sensitive
        (
            {"Authorization": AUTH["Authorization"].replace("Bearer", "BEARER")},
            200,
        ),  # schemes are not
    ],
)
async def test_auth_is_checked_and_wrong_auth_decides_nothing(
    harness: HarnessFactory, headers: dict[str, str], status: int
) -> None:
    h = await harness(POLICY)
    got, answer = await h.post(body(), headers)
    assert got == status
    if status == 401:
        assert answer == {"error": "missing or wrong credentials"}
        assert await h.decisions() == []
        assert (
            h.metric("remediator_webhook_rejected_total", endpoint="alertmanager", code="401") == 1
        )


async def test_basic_auth(harness: HarnessFactory, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2-long\n")
    h = await harness(
        POLICY,
        f"auth: {{alertmanager: {{basic: {{username: am, password_file: {tmp_path / 'pw'}}}}}}}\n",
    )
    good = base64.b64encode(b"am:hunter2-long").decode()
    bad = base64.b64encode(b"am:hunter3-long").decode()
    wrong_user = base64.b64encode(b"root:hunter2-long").decode()
    assert (await h.post(body(), {"Authorization": f"Basic {bad}"}))[0] == 401
    assert (await h.post(body(), {"Authorization": f"Basic {wrong_user}"}))[0] == 401
    assert (await h.post(body(), {"Authorization": "Basic !!notbase64"}))[0] == 401
    assert (await h.post(body(), {"Authorization": f"Basic {good}"}))[0] == 200


async def test_open_endpoint_when_no_auth_block(harness: HarnessFactory) -> None:
    h = await harness(POLICY, "auth: {alertmanager: null}\n")
    assert (await h.post(body(), {}))[0] == 200


BAD_BODIES = [
    (b"this is not json", 400, "Invalid JSON"),
    (b"", 400, "Invalid JSON"),
    (b"[1, 2]", 400, "Input should be an object"),
    (b'{"alerts": "many"}', 400, "alerts: Input should be a valid array"),
    (
        b'{"alerts": [{"labels": {"alertname": 5}, "startsAt": "2020-01-01T00:00:00Z"}]}',
        400,
        "alerts.0.labels.alertname",
    ),
    (b'{"alerts": [{"labels": {}, "startsAt": "soon"}]}', 400, "not an RFC3339 timestamp"),
    (
        b'{"alerts": [{"labels": {"a": "\xff\xfe"}, "startsAt": "2020-01-01T00:00:00Z"}]}',
        400,
        "Invalid JSON",
    ),
    (b'{"alerts": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400, "Invalid JSON"),
    (b'{"alerts": [' + b'{"labels": {"a": "' + b"x" * 5000 + b'"}}' + b"]}", 413, "max_body_bytes"),
]


@pytest.mark.parametrize(("raw", "status", "reason"), BAD_BODIES, ids=range(len(BAD_BODIES)))
async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    strict: Harness, raw: bytes, status: int, reason: str
) -> None:
    got, answer = await strict.post(raw)
    assert got == status
    assert reason in answer["error"]
    assert await strict.decisions() == []
    assert (await strict.client.get("/readyz")).status == 200


async def test_one_malformed_alert_rejects_the_whole_body(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    good = body()["alerts"][0]  # type: ignore[index]
    status, answer = await h.post({"alerts": [good, {"labels": {"alertname": "x"}}]})
    assert status == 400 and "alerts.1.startsAt" in answer["error"]
    assert await h.decisions() == []


async def test_chunked_body_over_the_limit_is_413(harness: HarnessFactory) -> None:
    h = await harness(POLICY, "max_body_bytes: 2048\n")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    headers = {**AUTH, "Content-Type": "application/json"}
    resp = await h.client.post("/webhook/alertmanager", data=chunks(), headers=headers)
    assert resp.status == 413
    assert await h.decisions() == []


CORPUS_BODIES = {p.name: p.read_bytes() for p in sorted((CORPUS / "alertmanager").glob("*.json"))}


@pytest.mark.parametrize("name", sorted(CORPUS_BODIES))
async def test_every_corpus_body_is_accepted(harness: HarnessFactory, name: str) -> None:
    catch_all = """
name: record-everything
match: {status: firing}
action: {type: docker.restart, params: {container: "{{ labels.alertname | replace(' ', '-') }}"}, allow_targets: ["nothing-matches-this"]}
---
name: record-resolved
match: {status: resolved}
action: {type: docker.restart, params: {container: "x"}, allow_targets: ["x"]}
guards: {dry_run: true}
"""
    h = await harness(catch_all)
    raw = CORPUS_BODIES[name]
    status, answer = await h.post(raw)
    assert status == 200, answer
    alerts = json.loads(raw)["alerts"]
    assert answer["alerts"] == len(alerts)
    # every alert got exactly one decision (firing: out_of_scope or render_error; resolved: dry_run)
    assert len(answer["decisions"]) == len(alerts)
    assert {d["outcome"] for d in answer["decisions"]} <= {
        "out_of_scope",
        "render_error",
        "dry_run",
        "deduplicated",
    }


async def test_decisions_limit_is_validated(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    for bad in ("0", "-1", "x", "100000"):
        resp = await h.client.get(f"/api/v1/decisions?limit={bad}")
        assert resp.status == 400
    for i in range(3):
        await h.post(body(container=f"web-{i}"))
    resp = await h.client.get("/api/v1/decisions?limit=2")
    records = (await resp.json())["decisions"]
    assert [r["target"] for r in records] == ["web-2", "web-1"]  # newest first


async def test_store_unavailable_is_503_and_retried_later(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    await h.daemon.store.close()
    status, answer = await h.post(body())
    assert status == 503 and "retry" in answer["error"]
    assert (await h.client.get("/readyz")).status == 503
    for path in ("/api/v1/decisions", "/api/v1/approvals", "/api/v1/approvals/abc"):
        assert (await h.client.get(path)).status == 503, path  # retryable, not a 500
    assert (await h.api("/api/v1/pause"))[0] == 503
    with pytest.raises(StoreError):
        await h.daemon.sync()
    assert h.metric("remediator_backend_up", backend="store") == 0
    health = await (await h.client.get("/healthz")).json()
    assert "state store" in health["backends"]["store"]
    await h.daemon.store.open()
    await h.daemon.sync()
    assert h.metric("remediator_backend_up", backend="store") == 1
    assert (await h.post(body()))[0] == 200


async def test_api_writes_need_the_api_token(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    for path in (
        "/api/v1/pause",
        "/api/v1/resume",
        "/api/v1/policies/restart-web/reset",
        "/api/v1/approvals/abc/approve",
        "/api/v1/approvals/abc/deny",
    ):
        status, _ = await h.api(path, {"by": "x"}, headers={})
        assert status == 401, path
        status, _ = await h.api(path, {"by": "x"}, headers={"Authorization": "Bearer nope"})
        assert status == 401, path
    assert h.daemon.switches.gates.paused is False
    assert (await h.api("/api/v1/policies/nope/reset"))[0] == 404
    assert (await h.api("/api/v1/approvals/nope/approve", {"by": "alice"}))[0] == 404
    assert (await h.api("/api/v1/approvals/nope/approve", {}))[0] == 404  # `by` is optional
    resp = await h.client.post(
        "/api/v1/approvals/nope/approve",
        data=b'{"by": ',
        headers={**API, "Content-Type": "application/json"},
    )
    assert resp.status == 400


async def test_metrics_and_health_endpoints(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    await h.post(body())
    text = await (await h.client.get("/metrics")).text()
    for name in (
        "remediator_alerts_received_total",
        "remediator_decisions_total",
        "remediator_webhook_request_duration_seconds",
        "remediator_policies_loaded",
        "remediator_paused",
        "remediator_approvals_pending",
        "remediator_actions_total",
        "remediator_action_duration_seconds",
        "remediator_approval_latency_seconds",
    ):
        assert name in text, name
    assert "remediator_policies_loaded 1.0" in text
    health = await (await h.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["paused"] is False
    ready = await (await h.client.get("/readyz")).json()
    assert ready == {"status": "ready", "policies": 1}
    assert API  # the API header constant is shared with other tests
