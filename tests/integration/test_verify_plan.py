"""The verify check rendered with an action travels with it: stored beside its params (never
among them, so neither the executor, the approval's Slack context nor the audit sees it), run
when the action runs, also when its approval arrives later, and read back from the rows the
version before wrote (the check as reserved params `_verify_query`/`_verify_bound`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.checks.prometheus import PrometheusChecker
from remediator.core.verify import PrometheusCheck, VerifyPlan
from remediator.store.dialect import Tx
from tests.integration.conftest import HarnessFactory, on_both_backends
from tests.integration.test_guards_pipeline import alert, message

pytestmark = on_both_backends

POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}"}
  allow_targets: ["web-*"]
guards: {%s}
verify:
  within: 5s
  prometheus: {query: 'errors{container="{{ labels.container }}"}', below: 0.1}
"""
QUERY = 'errors{container="web-1"}'
PLAN = VerifyPlan(timedelta(seconds=5), PrometheusCheck(QUERY, below=0.1))


class Recorder:
    """An executor that succeeds and keeps every request it was given."""

    def __init__(self) -> None:
        self.requests: list[ActionRequest] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.requests.append(request)
        return ActionResult(ok=True, detail=f"restarted {request.target}")

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


class Prometheus(PrometheusChecker):
    """Answers every query with a recovered value and keeps the queries."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9")
        self.queries: list[str] = []

    async def instant(self, query: str) -> dict[str, Any]:
        self.queries.append(query)
        sample = {"metric": {}, "value": [0, "0.01"]}
        return {"status": "success", "data": {"resultType": "vector", "result": [sample]}}

    async def probe(self) -> str | None:
        return None


async def test_an_action_verifies_with_the_check_rendered_for_its_alert(
    harness: HarnessFactory,
) -> None:
    executor, prometheus = Recorder(), Prometheus()
    h = await harness(POLICY % "", executors={"docker.restart": executor}, checker=prometheus)
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "recovered: value 0.01 is < 0.1" in record["reason"]
    assert prometheus.queries == [QUERY]
    [request] = executor.requests
    assert request.params == {"container": "web-1"}  # the check is not a param
    assert request.verify == PLAN


@pytest.mark.parametrize("written_by", ["this version", "the version before"])
async def test_an_approved_action_verifies_with_the_check_stored_with_its_request(
    harness: HarnessFactory, written_by: str
) -> None:
    executor, prometheus = Recorder(), Prometheus()
    h = await harness(
        POLICY % "approval: always", executors={"docker.restart": executor}, checker=prometheus
    )
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    approval_id = decision["approval_id"]
    context = await h.daemon.store.approval_context(approval_id)
    assert context["params"] == {"container": "web-1"}  # what Slack shows: no verify internals
    if written_by == "the version before":
        legacy = {"container": "web-1", "_verify_query": QUERY, "_verify_bound": "below 0.1"}
        async with h.daemon.store.transaction() as tx:
            await cast(Tx, tx).sql.run(
                "UPDATE approvals SET params = ? WHERE id = ?", json.dumps(legacy), approval_id
            )
    assert prometheus.queries == []  # nothing verified before the approval
    status, _ = await h.api(f"/api/v1/approvals/{approval_id}/approve", {"by": "ok"})
    assert status == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "recovered: value 0.01 is < 0.1" in record["reason"]
    assert prometheus.queries == [QUERY]
    [request] = executor.requests
    assert request.params == {"container": "web-1"}
    assert request.verify == PLAN
