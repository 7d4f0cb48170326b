"""The outcome sink: a new record's `decision.recorded` line when the level writes it, its
count in remediator_decisions_total whatever the level, a repeat counted but not logged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from remediator import log
from remediator.core.alert import Alert
from remediator.core.judge import Verdict
from remediator.core.outcomes import Outcome
from remediator.metrics import Metrics
from remediator.sink import OutcomeSink

pytestmark = pytest.mark.usefixtures("logging_restored")


def verdict(new: bool = True) -> Verdict:
    alert = Alert(
        "alertmanager",
        "firing",
        {"alertname": "ContainerDown", "container": "web-1"},
        {},
        datetime(2026, 1, 1, tzinfo=UTC),
        "fp-1",
        "ep-1",
    )
    return Verdict(7, "restart-web", alert, "docker.restart", "web-1", Outcome.DRY_RUN, "dry", new)


def counted(metrics: Metrics) -> float | None:
    labels = {"policy": "restart-web", "outcome": "dry_run"}
    return metrics.registry.get_sample_value("remediator_decisions_total", labels)


@pytest.mark.parametrize(
    ("level", "new", "logged"),
    [
        ("debug", True, True),
        ("info", True, True),
        ("warning", True, False),
        ("error", True, False),
        ("info", False, False),  # a repeat counted on an existing record is not logged
    ],
)
def test_a_verdict_is_logged_by_level_and_counted_at_every_level(
    capsys: pytest.CaptureFixture[str], level: str, new: bool, logged: bool
) -> None:
    log.configure(level)
    metrics = Metrics()
    OutcomeSink(metrics).recorded(verdict(new))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    recorded = [line for line in lines if line["event"] == "decision.recorded"]
    assert len(recorded) == (1 if logged else 0)
    if logged:
        assert recorded[0]["decision_id"] == 7 and recorded[0]["target"] == "web-1"
    assert counted(metrics) == 1.0
