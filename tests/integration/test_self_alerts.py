"""deploy/prometheus/remediator-alerts.yml, the alerts on remediator itself: valid for the
real promtool, each one fired and held back by its shipped `promtool test rules` file, and
none routed to remediator by the shipped Alertmanager config (it must not act on itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.procs import require_binary

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "remediator-alerts.yml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "remediator-alerts.test.yml"
ROUTES = REPO / "deploy" / "alertmanager.yml"
# What the issue asks the daemon to be watched for, by the alert that watches it.
WATCHED = {
    "RemediatorDown": "up",
    "RemediatorStoreDown": 'remediator_backend_up{backend="store"}',
    "RemediatorBreakerOpen": "remediator_policy_tripped",
    "RemediatorPausedTooLong": "remediator_paused",
    "RemediatorApprovalsWaiting": "remediator_approvals_pending",
    "RemediatorActionsFailing": 'remediator_actions_total{result="failed"}',
    "RemediatorReloadFailed": "remediator_config_last_reload_successful",
}


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool", "Debian package prometheus")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


def test_promtool_checks_the_self_alerts() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_each_alert_watches_what_it_says_and_tells_what_to_do() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert by_name.keys() == WATCHED.keys()
    for name, series in WATCHED.items():
        rule = by_name[name]
        assert series in rule["expr"], name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), name


def test_promtool_fires_each_alert_and_holds_it_back_short_of_firing() -> None:
    done = promtool("test", "rules", str(ALERTS_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    # The shipped test file covers every alert both ways.
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fired == quiet == set(WATCHED)


def test_promtool_test_fails_when_an_alert_would_not_fire(tmp_path: Path) -> None:
    """The test file has teeth: with one alert's `for` doubled, its firing case fails."""
    data = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in data["groups"] for r in g["rules"] if r["alert"] == "RemediatorDown")
    rule["for"] = "10m"
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(data))
    (tmp_path / ALERTS_TEST.name).write_text(ALERTS_TEST.read_text())
    done = promtool("test", "rules", str(tmp_path / ALERTS_TEST.name))
    assert done.returncode != 0
    assert "alertname: RemediatorDown" in done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(WATCHED))
def test_the_shipped_route_never_sends_a_self_alert_to_remediator(name: str) -> None:
    rule = next(r for r in rules() if r["alert"] == name)
    assert "remediation" not in rule["labels"]
    amtool = require_binary("amtool", "Debian package prometheus-alertmanager")
    labels = {"alertname": name, "namespace": "remediator", "job": "remediator", **rule["labels"]}
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ROUTES}"]
        + [f"{key}={value}" for key, value in labels.items()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    receivers = done.stdout.strip().split(",")
    assert "remediator" not in receivers
    assert receivers == ["oncall"]  # a person hears of it
