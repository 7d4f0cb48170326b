"""An alert no policy takes, through the real webhook: counted by source (repeats answered
from memory too), logged as alert.unmatched at most once per alertname a minute, and traced
at debug with the policies tried; one some policy takes is never counted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remediator import log
from tests.integration.conftest import HarnessFactory
from tests.integration.test_webhook_http import POLICY

pytestmark = pytest.mark.usefixtures("logging_restored")


def body(alertname: str, *, status: str = "firing", fingerprint: str = "") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "receiver": "remediator",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "container": "web-1"},
                "annotations": {},
                "startsAt": "2026-11-22T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T10:05:00Z",
                "fingerprint": fingerprint or f"fp-{alertname}",
            }
        ],
    }


def events(capsys: pytest.CaptureFixture[str], name: str) -> list[dict[str, Any]]:
    found = []
    for line in capsys.readouterr().err.splitlines():
        event = json.loads(line)  # every line is JSON
        if event["event"] == name:
            found.append(event)
    return found


async def test_series_exist_at_zero_from_start(harness: HarnessFactory) -> None:
    h = await harness(POLICY)
    resp = await h.client.get("/metrics")
    text = await resp.text()
    assert 'remediator_alerts_unmatched_total{source="alertmanager"} 0.0' in text
    assert 'remediator_alerts_unmatched_total{source="datadog"} 0.0' in text


async def test_an_unmatched_alert_is_counted_every_time_and_logged_once_a_minute(
    harness: HarnessFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    log.configure("info")
    h = await harness(POLICY)
    for _ in range(3):  # the first through the store, the repeats answered from memory
        status, answer = await h.post(body("DiskFull"))
        assert status == 200 and answer["decisions"] == []
    assert await h.post(body("DiskFull", fingerprint="other"))  # another alert, same name
    assert h.metric("remediator_alerts_unmatched_total", source="alertmanager") == 4
    assert h.metric("remediator_alerts_unmatched_total", source="datadog") == 0
    [line] = events(capsys, "alert.unmatched")
    assert line["alertname"] == "DiskFull" and line["source"] == "alertmanager"
    assert line["fingerprint"] == "fp-DiskFull" and line["level"] == "info"
    await h.post(body("Other"))
    assert [e["alertname"] for e in events(capsys, "alert.unmatched")] == ["Other"]
    assert await h.decisions() == []  # and it left nothing in the audit log


async def test_an_alert_a_policy_takes_is_not_counted_even_resolved(
    harness: HarnessFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    log.configure("info")
    h = await harness(POLICY)
    status, answer = await h.post(body("ContainerDown"))
    assert status == 200 and [d["outcome"] for d in answer["decisions"]] == ["dry_run"]
    await h.post(body("ContainerDown"))  # a repeat, from memory
    # Resolved: no policy acts on it, but it settles restart-web's episode: taken.
    assert (await h.post(body("ContainerDown", status="resolved")))[0] == 200
    assert h.metric("remediator_alerts_unmatched_total", source="alertmanager") == 0
    assert events(capsys, "alert.unmatched") == []


async def test_a_firing_alert_only_resolved_policies_concern_is_unmatched(
    harness: HarnessFactory,
) -> None:
    h = await harness(POLICY.replace("match: {", "match: {status: resolved, "))
    await h.post(body("ContainerDown"))
    assert h.metric("remediator_alerts_unmatched_total", source="alertmanager") == 1


async def test_debug_traces_the_policies_tried_in_json(
    harness: HarnessFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    log.configure("debug")
    h = await harness(POLICY)
    await h.post(body("ContainerDown"))
    await h.post(body("DiskFull"))
    tried = events(capsys, "alert.tried")  # events() parses every line as JSON
    assert [(t["alertname"], t["matched"]) for t in tried] == [
        ("ContainerDown", ["restart-web"]),
        ("DiskFull", []),
    ]
    assert tried[1]["tried"] == 0 and tried[1]["not_tried"] == 1
