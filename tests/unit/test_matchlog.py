"""alert.unmatched (sampled, with its metric) and the debug trace of the policies tried."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from remediator import log
from remediator.core.alert import Alert, Source
from remediator.core.policy import parse_policies
from remediator.core.policy_index import PolicyIndex
from remediator.matchlog import NAME_CHARS, MatchLog
from remediator.metrics import Metrics

pytestmark = pytest.mark.usefixtures("logging_restored")


def alert(name: str, source: Source = "alertmanager", **labels: str) -> Alert:
    return Alert(
        source,
        "firing",
        {"alertname": name, **labels},
        {},
        datetime(2026, 1, 1, tzinfo=UTC),
        f"fp-{name[:10]}",
        "ep",
    )


def lines(capsys: pytest.CaptureFixture[str], event: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    return [line for line in found if line["event"] == event]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_unmatched_alert_is_counted_and_the_first_per_alertname_a_minute_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure("info")
    metrics, clock = Metrics(), Clock()
    matchlog = MatchLog(metrics, clock)
    batch = [alert("Foo"), alert("Foo"), alert("Bar", "datadog"), alert("Foo")]
    matchlog.unmatched(batch, [0, 1, 2, 3])
    clock.now += 59
    matchlog.unmatched(batch, [0])
    clock.now += 1
    matchlog.unmatched(batch, [1])

    def count(source: str) -> float | None:
        return metrics.registry.get_sample_value(
            "remediator_alerts_unmatched_total", {"source": source}
        )

    assert count("alertmanager") == 5 and count("datadog") == 1
    logged = lines(capsys, "alert.unmatched")
    assert [(e["alertname"], e["source"], e["suppressed"]) for e in logged] == [
        ("Foo", "alertmanager", 0),
        ("Bar", "datadog", 0),
        ("Foo", "alertmanager", 3),  # the three held back in the minute before
    ]
    assert logged[0]["level"] == "info" and logged[0]["fingerprint"] == "fp-Foo"
    assert logged[0]["status"] == "firing"


def test_both_sources_series_exist_from_start_at_zero() -> None:
    registry = Metrics().registry
    for source in ("alertmanager", "datadog"):
        value = registry.get_sample_value("remediator_alerts_unmatched_total", {"source": source})
        assert value == 0.0


def test_a_huge_alertname_is_cut_in_the_line_and_in_the_sampler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure("info")
    matchlog = MatchLog(Metrics(), Clock())
    huge = "A" * 100_000
    matchlog.unmatched([alert(huge), alert(huge + "B")], [0, 1])  # same first 200: one key
    [line] = lines(capsys, "alert.unmatched")
    assert line["alertname"] == "A" * NAME_CHARS


POLICIES = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"', 'env!="dev"']}
action: {type: notify, params: {text: hi}}
---
name: scale-api
match: {matchers: ['alertname="HighLatency"']}
action: {type: notify, params: {text: hi}}
---
name: any-critical
match: {source: datadog, matchers: ['severity="critical"', 'team=~"a.*"']}
action: {type: notify, params: {text: hi}}
"""


def index() -> PolicyIndex:
    policies, problems = parse_policies(POLICIES, "p.yaml")
    assert problems == []
    return PolicyIndex(policies)


def test_debug_says_which_policies_were_tried_and_why_each_did_not_match(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure("debug")
    MatchLog.trace(index(), [alert("ContainerDown", env="dev"), alert("Other")])
    first, second = lines(capsys, "alert.tried")
    assert first["level"] == "debug" and first["alertname"] == "ContainerDown"
    # restart-web is filed under ContainerDown, any-critical under severity (missing: "")...
    assert first["tried"] + first["not_tried"] == 3
    assert first["matched"] == []
    assert 'restart-web: env!="dev" (env is "dev")' in first["not_matched"]
    assert not any(reason.startswith("scale-api") for reason in first["not_matched"])
    assert second["matched"] == [] and second["alertname"] == "Other"


def test_debug_trace_names_a_match(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("debug")
    MatchLog.trace(index(), [alert("HighLatency")])
    [line] = lines(capsys, "alert.tried")
    assert line["matched"] == ["scale-api"] and line["not_matched"] == []


def test_no_trace_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info")
    MatchLog.trace(index(), [alert("ContainerDown")])
    assert lines(capsys, "alert.tried") == []
