"""The shipped alerting path end to end: every rule in deploy/prometheus/rules.yml, as
Prometheus hands it to Alertmanager, goes through the shipped Alertmanager configuration
(deploy/alertmanager.yml, a real Alertmanager, only its URLs, credentials and timings
changed for the test) to a real daemon that loads every shipped policy (policies/ and its
slack/ and hooks/ folders) in dry run; each is decided by the policies written for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from remediator.policy_files import load_policies
from tests.fixtures.alertmanager import AlertmanagerFactory, firing
from tests.fixtures.daemon import AM_TOKEN, DaemonFactory
from tests.fixtures.procs import free_port, wait_for
from tests.fixtures.slack_api import SlackAPI

REPO = Path(__file__).resolve().parents[2]
POLICIES = [REPO / "policies", REPO / "policies" / "slack", REPO / "policies" / "hooks"]
SECRETS = ("ci_token", "jira_basic_auth", "statuspage_api_key", "launchdarkly_token")


def rules() -> list[dict[str, Any]]:
    shipped = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    return [rule for group in shipped["groups"] for rule in group["rules"]]


def labels_of(rule: dict[str, Any]) -> dict[str, str]:
    """The alert of a rule as Alertmanager gets it: the rule's labels, and what its series
    would carry (one container, or one production deployment, each)."""
    series = {"container": f"{rule['alert'].lower()}-1", "namespace": "prod", "deployment": "web"}
    return {**series, "alertname": rule["alert"], **{k: str(v) for k, v in rule["labels"].items()}}


def written_for(labels: dict[str, str]) -> set[str]:
    """The shipped policies whose `match` takes this firing Alertmanager alert."""
    return {
        policy.name
        for policy in load_policies(POLICIES)
        if policy.match.source in ("alertmanager", "any")
        and policy.match.status == "firing"
        and all(matcher.matches(labels) for matcher in policy.match.matchers)
    }


def shipped_alertmanager(url: str, token: str) -> dict[str, Any]:
    """deploy/alertmanager.yml as shipped, but for where it sends and how soon."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if receiver["name"] == "remediator":
                hook["url"] = url
                hook["http_config"]["authorization"] = {"type": "Bearer", "credentials": token}
            else:  # the pager: nobody listens there, and its failures are not this test's
                hook["url"] = f"http://127.0.0.1:{free_port()}/alert"
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="2s")
    return config


def test_every_shipped_rule_reaches_the_policies_written_for_it(
    daemon_factory: DaemonFactory,
    alertmanager_factory: AlertmanagerFactory,
    slack_api: SlackAPI,
    tmp_path: Path,
) -> None:
    every = rules()
    expected = {rule["alert"]: written_for(labels_of(rule)) for rule in every}
    unhandled = sorted(alert for alert, policies in expected.items() if not policies)
    assert unhandled == [], f"rules no shipped policy takes: {unhandled}"
    daemon = daemon_factory("")
    secrets = {}
    for name in SECRETS:
        (tmp_path / name).write_text("test-secret-value\n")
        secrets[f"{name}_file"] = str(tmp_path / name)
    daemon.config.update(
        policies=[str(folder) for folder in POLICIES],
        dry_run=True,
        secrets=secrets,
        slack={
            "bot_token": slack_api.token,
            "signing_secret": "slack-signing-secret-0123456789",
            "channel": "C0123456",
            "api_url": f"{slack_api.url}/api/",
        },
    )
    daemon.start()
    am = alertmanager_factory(
        "", "", config=shipped_alertmanager(f"{daemon.url}/webhook/alertmanager", AM_TOKEN)
    )
    starts = datetime.now(UTC)
    for rule in every:
        am.push(firing(labels_of(rule), starts, summary=f"{rule['alert']} fired"))

    def decided() -> dict[str, set[str]] | None:
        by_alert: dict[str, set[str]] = {}
        for decision in daemon.decisions():
            by_alert.setdefault(decision["alertname"], set()).add(decision["policy"])
        return by_alert if all(by_alert.get(a) == p for a, p in expected.items()) else None

    wait_for(decided, timeout=60, what="every rule's alert decided by the policies it matches")
    # Dry run: decided through every guard, and nothing ran.
    outcomes = {d["outcome"] for d in daemon.decisions()}
    assert "executed" not in outcomes and "executing" not in outcomes, outcomes
