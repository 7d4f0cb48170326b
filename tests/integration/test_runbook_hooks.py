"""Runbooks 001 and 003's `http.request` steps as shipped: each policy file loaded as it is
(only its public hosts pointed at loopback, each swap checked to occur), fired with the labels
of its rule in deploy/prometheus/rules.yml, calling a real loopback HTTP hook through the real
executor. Each test asserts the exact request the hook received: method, path, headers with
the secret filled in (and never in a reason, the audit log, Slack or the daemon's log) and the
JSON body. Approvals go through the Slack stand-in; the error-rate rollback's condition and
verification through a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from remediator import log
from remediator.actions.http import HttpExecutor
from remediator.checks.prometheus import PrometheusChecker
from remediator.core.job import secret_names
from remediator.core.matchers import matches_all
from remediator.core.policy import parse_policies
from tests.fixtures.health_endpoint import HealthEndpoint
from tests.fixtures.http_hook import Hook, Received
from tests.fixtures.procs import wait_for
from tests.fixtures.prometheus import JOB, ErrorApp, PrometheusFactory
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import Harness, HarnessFactory
from tests.integration.test_runbook_004 import RULES, STARTS, rule_labels, shipped
from tests.integration.test_slack_approvals import CHANNEL, config

# What remediator.yaml's `secrets` holds in production; here each hook checks what arrives.
SECRETS = {
    "ci_token": "ci-token-6f1d2c9a8b7e",
    "jira_basic_auth": "b25jYWxsQG1nbXQtdmliZS5jb206amlyYS10b2tlbg==",
    "statuspage_api_key": "statuspage-key-93a1b7c4",
    "launchdarkly_token": "api-ld-token-5e2f8d1c",
}
STARTED = STARTS.replace("Z", "+00:00")  # how a template sees alert.starts_at
GENERATOR = "http://prometheus:9090/graph?g0.expr=up"

CI = "https://ci.vibesheets.com"
JIRA = "https://mgmt-vibe.atlassian.net"
STATUSPAGE = "https://api.statuspage.io"
LAUNCHDARKLY = "https://app.launchdarkly.com"

ROLLBACK_WHEN_DOWN = "001-rollback-when-restart-did-not-help"
ROLLBACK_ON_ERRORS = "001-rollback-on-error-rate-via-ci"
SCALE_OUT = "001-scale-out-when-slow-and-busy"
TICKET = "003-open-incident-ticket"
STATUS_PAGE = "003-update-status-page-after-approval"
KILL_SWITCH = "003-kill-switch-on-feature-errors"


def swapped(text: str, swaps: dict[str, tuple[str, int]]) -> str:
    """The shipped text with each `old` (which must occur exactly `times`) made `new`."""
    for old, (new, times) in swaps.items():
        assert text.count(old) == times, (old, text.count(old))
        text = text.replace(old, new)
    return text


def local(name: str, public: str, hook: Hook) -> str:
    """The shipped policy with its public API host (in `url` and `allow_targets`) on loopback."""
    return swapped(shipped(name), {public: (hook.url, 2)})


def http_executors() -> dict[str, Any]:
    return {"http.request": HttpExecutor({k: SecretStr(v) for k, v in SECRETS.items()})}


def webhook(
    labels: dict[str, str], annotations: dict[str, str] | None = None, status: str = "firing"
) -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": STARTS,
        "endsAt": (
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if status == "resolved"
            else "0001-01-01T00:00:00Z"
        ),
        "generatorURL": GENERATOR,
    }
    return {"version": "4", "status": status, "alerts": [alert]}


class Scripted(Hook):
    """A hook that answers `status` with `headers`, and calls `then` on each request (what
    the job's effect would be: the site back, the error rate down)."""

    def __init__(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        self.headers = headers or {}
        self.then = then
        super().__init__(status=status, body=b'{"id": "10042"}')

    def answer(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        if self.then is not None:
            self.then()
        return self.status, self.headers, self.body


HookFactory = Callable[..., Scripted]


@pytest.fixture
def hooks() -> Iterator[HookFactory]:
    made: list[Scripted] = []

    def make(
        status: int = 201,
        headers: dict[str, str] | None = None,
        then: Callable[[], None] | None = None,
    ) -> Scripted:
        made.append(Scripted(status, headers, then))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


class DaemonLog:
    """Every line the in-process daemon logs during a test, at debug level, as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        return self.path.read_text()


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[DaemonLog]:
    """The daemon's own log configuration pointed at a file for the test; restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = tmp_path / "daemon.log"
    with path.open("w") as sink:
        real, sys.stderr = sys.stderr, sink
        try:
            log.configure("debug")  # binds the stderr of this moment: the file
        finally:
            sys.stderr = real
        yield DaemonLog(path)
        log.configure("info")  # a new generation: no cached logger keeps the file
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level


def assert_secrets_kept(*texts: str) -> None:
    for text in texts:
        for name, value in SECRETS.items():
            assert value not in text, f"the secret {name} leaked"


async def audit(h: Harness, decision_id: int) -> str:
    """The audit log, the decision's actions as stored (params, reason, result) and every
    byte of the state database, as text."""
    [action] = await h.daemon.store.actions_of(decision_id)
    assert "${secret:" in action.params["header.Authorization"]  # stored as the policy wrote it
    return "\n".join([json.dumps(await h.decisions()), json.dumps(action.to_api()), stored(h)])


def stored(h: Harness) -> str:
    """Every byte of the state database (and its journal), as text."""
    return "".join(p.read_bytes().decode("latin-1") for p in h.db_path.parent.glob("state.db*"))


async def fingerprint(h: Harness, decision_id: int) -> str:
    [found] = [d for d in await h.decisions() if d["id"] == decision_id]
    return str(found["fingerprint"])


async def approval_request(slack: SlackAPI, daemon_log: DaemonLog) -> dict[str, Any]:
    """The one approval request in the channel; on a timeout, what the daemon logged of it."""
    deadline = asyncio.get_running_loop().time() + 30
    while not (found := slack.messages(CHANNEL)):
        if asyncio.get_running_loop().time() > deadline:
            logged = [line for line in daemon_log.text().splitlines() if "approval" in line]
            pytest.fail("no approval request in Slack; the daemon logged:\n" + "\n".join(logged))
        await asyncio.sleep(0.05)
    [message] = found
    return message


def one_json_request(hook: Hook) -> tuple[Received, Any]:
    [sent] = hook.requests
    return sent, json.loads(sent.body)


# -- the shipped files and their rules ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        (ROLLBACK_WHEN_DOWN, "ci_token"),
        (ROLLBACK_ON_ERRORS, "ci_token"),
        (SCALE_OUT, "ci_token"),
        (TICKET, "jira_basic_auth"),
        (STATUS_PAGE, "statuspage_api_key"),
        (KILL_SWITCH, "launchdarkly_token"),
    ],
)
def test_each_hook_policy_names_its_one_secret_and_its_rule_exists(name: str, secret: str) -> None:
    [policy], problems = parse_policies(shipped(name), f"{name}.yaml")
    assert problems == []
    assert policy.name == name[4:]
    assert secret_names(policy) == {secret}
    # Each secret is in a header the policy wrote, never in a URL that the audit log shows.
    assert "${secret:" not in policy.action.params["url"].source
    alertnames = [m.value for m in policy.match.matchers if m.name == "alertname"]
    for alertname in alertnames:  # the ticket policy has none: every paging rule fires it
        assert matches_all(policy.match.matchers, rule_labels(alertname))


PAGING = [
    rule["alert"]
    for group in RULES["groups"]
    for rule in group["rules"]
    if rule["labels"].get("severity") in ("critical", "page")
]


@pytest.mark.parametrize("alert", PAGING)
def test_every_paging_rule_opens_an_incident_ticket(alert: str) -> None:
    [policy], _ = parse_policies(shipped(TICKET), "t.yaml")
    assert matches_all(policy.match.matchers, rule_labels(alert))


# -- R1-2: site still down after the restart -> ./deploy.sh --rollback, after approval --------


async def test_site_still_down_rolls_back_through_ci_once_a_person_approves(
    harness: HarnessFactory,
    hooks: HookFactory,
    slack_api: SlackAPI,
    health_endpoint: HealthEndpoint,
    daemon_log: DaemonLog,
) -> None:
    health_endpoint.fail()  # down until the CI job has rolled back
    hook = hooks(201, then=lambda: health_endpoint.fail(False))
    text = swapped(
        local(ROLLBACK_WHEN_DOWN, CI, hook),
        {
            'url: "https://vibesheets.com/health"': (f'url: "{health_endpoint.url}/health"', 1),
            "within: 15m": ("within: 20s", 1),
        },
    )
    h = await harness(text, config(slack_api), executors=http_executors())
    status, answer = await h.post(webhook(rule_labels("VibeSheetsStillDown")))
    assert status == 200, answer
    [decision] = answer["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    assert decision["target"] == f"{hook.url}/job/rollback-production/build"
    message = await approval_request(slack_api, daemon_log)
    assert "rollback-production" in json.dumps(message)
    assert hook.requests == []  # nothing before a person says so
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "answered 201" in record["reason"] and "healthy: GET" in record["reason"]
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("POST", "/job/rollback-production/build")
    assert sent.headers["Authorization"] == f"Bearer {SECRETS['ci_token']}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent_body == {
        "parameters": {"ENVIRONMENT": "production", "ROLLBACK": "true"},
        "cause": f"remediator: VibeSheetsStillDown since {STARTED}",
        "fingerprint": await fingerprint(h, decision["id"]),
    }
    assert_secrets_kept(
        await audit(h, decision["id"]),
        json.dumps(slack_api.messages(CHANNEL)),
        daemon_log.text(),
    )
    assert '"event": "action.executed"' in daemon_log.text()  # the log was captured


async def test_a_denied_rollback_never_calls_ci(
    harness: HarnessFactory, hooks: HookFactory, slack_api: SlackAPI
) -> None:
    hook = hooks(201)
    h = await harness(local(ROLLBACK_WHEN_DOWN, CI, hook), config(slack_api), http_executors())
    [decision] = (await h.post(webhook(rule_labels("VibeSheetsStillDown"))))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/deny")
    assert status == 200
    assert (await h.wait_outcome(decision["id"], {"denied"}))["outcome"] == "denied"
    assert (await h.post(webhook(rule_labels("VibeSheetsStillDown"))))[1]["decisions"][0][
        "outcome"
    ] == "deduplicated"  # the repeat of a denied episode asks no one again
    assert hook.requests == []


# -- R1-4: error rate over 10% -> rollback through CI, checked and verified in Prometheus -----


RATIO = (
    f'sum(rate(http_requests_total{{job="{JOB}",code=~"5.."}}[3s]))'
    f' / sum(rate(http_requests_total{{job="{JOB}"}}[3s]))'
)


def _ratios(prometheus: Any, seconds: float) -> list[float]:
    answer = prometheus.query_range(RATIO, seconds, 1)
    series = answer["data"]["result"] if answer.get("status") == "success" else []
    return [float(v) for _, v in series[0]["values"]] if series else []


async def test_error_rate_over_10_percent_rolls_back_through_ci_and_is_verified(
    harness: HarnessFactory,
    hooks: HookFactory,
    error_app: ErrorApp,
    prometheus_factory: PrometheusFactory,
) -> None:
    prometheus = prometheus_factory(error_app)
    hook = hooks(201, then=lambda: error_app.set("checkout", error_ratio=0.0))
    # The shipped file with its job, 1m windows and minutes made the test's (each swap checked).
    text = swapped(
        local(ROLLBACK_ON_ERRORS, CI, hook),
        {
            'job="vibesheets"': (f'job="{JOB}"', 7),  # the comment's rule too
            "[1m]": ("[3s]", 7),
            "    above: 0.10\n    for: 5m": ("    above: 0.10\n    for: 4s\n    step: 1s", 1),
            "within: 15m": ("within: 30s", 1),
        },
    )
    h = await harness(text, executors=http_executors(), checker=PrometheusChecker(prometheus.url))
    alert = webhook(rule_labels("VibeSheetsHighErrorRate"))
    # Healthy traffic for the whole window: a late or stray alert rolls nothing back.
    await asyncio.to_thread(
        wait_for, lambda: len(_ratios(prometheus, 6)) >= 6, timeout=60, what="6 s of traffic"
    )
    [early] = (await h.post(alert))[1]["decisions"]
    assert early["outcome"] == "condition_not_met", early
    assert hook.requests == []
    # 30% of requests fail for the whole window: the repeat of the same alert acts.
    error_app.set("checkout", error_ratio=0.3)
    await asyncio.to_thread(
        wait_for,
        lambda: (found := _ratios(prometheus, 6)) and len(found) >= 6 and min(found) > 0.1,
        timeout=60,
        what="6 s of a 30% error rate",
    )
    [decision] = (await h.post(alert))[1]["decisions"]
    assert decision["target"] == f"{hook.url}/job/rollback-production/build"
    record = await h.wait_outcome(decision["id"], {"executed", "failed"}, within=60)
    assert record["outcome"] == "executed", record
    assert "answered 201" in record["reason"] and "is < 0.02" in record["reason"]
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("POST", "/job/rollback-production/build")
    assert sent.headers["Authorization"] == f"Bearer {SECRETS['ci_token']}"
    assert sent_body == {
        "parameters": {"ENVIRONMENT": "production", "ROLLBACK": "true"},
        "cause": f"remediator: VibeSheetsHighErrorRate since {STARTED}",
        "fingerprint": await fingerprint(h, decision["id"]),
    }
    assert_secrets_kept(await audit(h, decision["id"]))


# -- R1-7: slow and busy -> scale the ECS service out through CI -----------------------------


async def test_slow_and_busy_scales_out_to_the_runbooks_count_once_per_episode(
    harness: HarnessFactory, hooks: HookFactory, daemon_log: DaemonLog
) -> None:
    hook = hooks(201)
    h = await harness(local(SCALE_OUT, CI, hook), executors=http_executors())
    alert = webhook(rule_labels("VibeSheetsSlowAndBusy"))
    [decision] = (await h.post(alert))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    [repeat] = (await h.post(alert))[1]["decisions"]
    assert repeat["outcome"] == "deduplicated"
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("POST", "/job/scale-out-production/build")
    assert sent.headers["Authorization"] == f"Bearer {SECRETS['ci_token']}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent_body == {
        "parameters": {
            "CLUSTER": "vibesheets-cluster",
            "SERVICE": "vibesheets-service",
            "DESIRED_COUNT": "2",
        },
        "cause": f"remediator: VibeSheetsSlowAndBusy since {STARTED}",
        "fingerprint": await fingerprint(h, decision["id"]),
    }
    assert_secrets_kept(await audit(h, decision["id"]), daemon_log.text())


# -- R3-1: any paging alert -> an incident ticket --------------------------------------------


async def test_a_paging_alert_opens_one_jira_incident_with_its_text_kept_literal(
    harness: HarnessFactory, hooks: HookFactory, daemon_log: DaemonLog
) -> None:
    hook = hooks(201)
    h = await harness(local(TICKET, JIRA, hook), executors=http_executors())
    labels = rule_labels("VibeSheetsStillDown")
    # An annotation with quotes, a newline and markup: text in the ticket, never JSON.
    summary = 'vibesheets.com "down"\n<b>"}, "project": {"key": "OPS"}'
    annotations = {"summary": summary, "runbook_url": "https://runbooks.example.com/001"}
    [decision] = (await h.post(webhook(labels, annotations)))[1]["decisions"]
    assert decision["target"] == f"{hook.url}/rest/api/2/issue"
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    [repeat] = (await h.post(webhook(labels, annotations)))[1]["decisions"]
    assert repeat["outcome"] == "deduplicated"  # Alertmanager's repeat: no second ticket
    # Another paging alert of the same outage, within the minute: recorded, no second ticket.
    [burst] = (await h.post(webhook(rule_labels("MgmtVibeCustomerImpact"))))[1]["decisions"]
    assert burst["outcome"] == "cooldown"
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("POST", "/rest/api/2/issue")
    assert sent.headers["Authorization"] == f"Basic {SECRETS['jira_basic_auth']}"
    assert sent.headers["Content-Type"] == "application/json"
    listed = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    assert sent_body == {
        "fields": {
            "project": {"key": "INC"},
            "issuetype": {"name": "Incident"},
            "summary": "VibeSheetsStillDown: " + summary.replace("\n", " "),
            "description": "\n".join(
                [
                    summary,
                    "",
                    "Alert: VibeSheetsStillDown (severity critical)",
                    f"Started: {STARTED}",
                    f"Labels: {listed}",
                    f"Source: {GENERATOR}",
                    "Runbook: https://runbooks.example.com/001",
                    f"Fingerprint: {await fingerprint(h, decision['id'])}",
                ]
            ),
            "labels": ["remediator"],
        }
    }
    assert_secrets_kept(await audit(h, decision["id"]), daemon_log.text())
    # A warning is not an incident: the scale-out rule opens no ticket.
    status, answer = await h.post(webhook(rule_labels("VibeSheetsSlowAndBusy")))
    assert status == 200 and answer["decisions"] == []


async def test_an_alert_cannot_pull_a_secret_into_the_ticket(
    harness: HarnessFactory, hooks: HookFactory
) -> None:
    hook = hooks(201)
    h = await harness(local(TICKET, JIRA, hook), executors=http_executors())
    hostile = {"summary": "see ${secret:jira_basic_auth}"}
    [decision] = (await h.post(webhook(rule_labels("VibeSheetsStillDown"), hostile)))[1][
        "decisions"
    ]
    assert decision["outcome"] == "render_error"
    assert "only the policy's own text may reference" in decision["reason"]
    assert hook.requests == []


# -- R3-3: customer impact -> status page incident, after approval ---------------------------


async def test_the_status_page_incident_opens_only_once_a_person_approves(
    harness: HarnessFactory, hooks: HookFactory, slack_api: SlackAPI, daemon_log: DaemonLog
) -> None:
    hook = hooks(201)
    h = await harness(
        local(STATUS_PAGE, STATUSPAGE, hook), config(slack_api), executors=http_executors()
    )
    [decision] = (await h.post(webhook(rule_labels("MgmtVibeCustomerImpact"))))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    message = await approval_request(slack_api, daemon_log)
    assert f"{hook.url}/v1/pages/kctbh9vrtdwd/incidents" in json.dumps(message)
    assert hook.requests == []  # customers read it: nothing before a person confirms
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 200
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("POST", "/v1/pages/kctbh9vrtdwd/incidents")
    assert sent.headers["Authorization"] == f"OAuth {SECRETS['statuspage_api_key']}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent_body == {
        "incident": {
            "name": "Service disruption: Web application",
            "status": "investigating",
            "body": "We have detected a service disruption affecting Web application. Our "
            "team is actively working to resolve this issue. Updates will be provided as "
            "the situation develops.",
            "component_ids": ["4dd3y1vnf1zn"],
            "components": {"4dd3y1vnf1zn": "major_outage"},
            "deliver_notifications": True,
        }
    }
    assert_secrets_kept(
        await audit(h, decision["id"]),
        json.dumps(slack_api.messages(CHANNEL)),
        daemon_log.text(),
    )


async def test_impact_that_ends_before_anyone_approves_never_reaches_customers(
    harness: HarnessFactory, hooks: HookFactory, slack_api: SlackAPI
) -> None:
    hook = hooks(201)
    h = await harness(
        local(STATUS_PAGE, STATUSPAGE, hook), config(slack_api), executors=http_executors()
    )
    labels = rule_labels("MgmtVibeCustomerImpact")
    [decision] = (await h.post(webhook(labels)))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    await h.post(webhook(labels, status="resolved"))
    assert (await h.wait_outcome(decision["id"], {"cancelled"}))["outcome"] == "cancelled"
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve")
    assert status == 409  # too late: the approval is no longer pending
    assert hook.requests == []


# -- R3-5: one feature failing -> its kill switch off ----------------------------------------


async def test_a_failing_features_kill_switch_is_turned_off(
    harness: HarnessFactory, hooks: HookFactory, daemon_log: DaemonLog
) -> None:
    hook = hooks(200)
    h = await harness(local(KILL_SWITCH, LAUNCHDARKLY, hook), executors=http_executors())
    labels = {**rule_labels("FeatureHighErrorRate"), "feature": "export"}
    [decision] = (await h.post(webhook(labels)))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert "answered 200" in record["reason"]
    sent, sent_body = one_json_request(hook)
    assert (sent.method, sent.path) == ("PATCH", "/api/v2/flags/mgmt-vibe/kill-switch-export")
    assert sent.headers["Authorization"] == SECRETS["launchdarkly_token"]
    assert (
        sent.headers["Content-Type"] == "application/json; domain-model=launchdarkly.semanticpatch"
    )
    assert sent_body == {
        "environmentKey": "production",
        "instructions": [{"kind": "turnFlagOff"}],
        "comment": f"remediator: FeatureHighErrorRate for feature export since {STARTED}",
    }
    assert_secrets_kept(await audit(h, decision["id"]), daemon_log.text())


# -- attacks and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "public", "alert", "label", "value"),
    [
        (KILL_SWITCH, LAUNCHDARKLY, "FeatureHighErrorRate", "feature", "x/../../other/flag"),
        (KILL_SWITCH, LAUNCHDARKLY, "FeatureHighErrorRate", "feature", "x/..%2F..%2Fother"),
        (KILL_SWITCH, LAUNCHDARKLY, "FeatureHighErrorRate", "feature", "export%2Fbilling"),
        (KILL_SWITCH, LAUNCHDARKLY, "FeatureHighErrorRate", "feature", "export/extra"),
        (KILL_SWITCH, LAUNCHDARKLY, "FeatureHighErrorRate", "feature", "export?env=test"),
        (SCALE_OUT, CI, "VibeSheetsSlowAndBusy", "environment", "production/../../deploy"),
        (SCALE_OUT, CI, "VibeSheetsSlowAndBusy", "environment", "production%2F..%2Fdeploy"),
        (ROLLBACK_WHEN_DOWN, CI, "VibeSheetsStillDown", "environment", "staging"),
    ],
)
async def test_a_label_cannot_steer_the_hook_to_another_path(
    harness: HarnessFactory,
    hooks: HookFactory,
    name: str,
    public: str,
    alert: str,
    label: str,
    value: str,
) -> None:
    hook = hooks(201)
    h = await harness(local(name, public, hook), executors=http_executors())
    [decision] = (await h.post(webhook({**rule_labels(alert), label: value})))[1]["decisions"]
    assert decision["outcome"] == "out_of_scope", decision
    assert hook.requests == []


@pytest.mark.parametrize("answer", [302, 503])
async def test_a_hook_that_redirects_or_fails_is_failed_and_never_retried(
    harness: HarnessFactory, hooks: HookFactory, answer: int
) -> None:
    elsewhere = hooks(200)  # where a redirect would send the token
    location = f"{elsewhere.url}/api/v2/flags/mgmt-vibe/kill-switch-export"
    hook = hooks(answer, headers={"Location": location} if answer == 302 else None)
    h = await harness(local(KILL_SWITCH, LAUNCHDARKLY, hook), executors=http_executors())
    labels = {**rule_labels("FeatureHighErrorRate"), "feature": "export"}
    [decision] = (await h.post(webhook(labels)))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed", record
    if answer == 302:
        assert f"answered 302, a redirect to Location {location}" in record["reason"]
        assert "redirects are never followed" in record["reason"]
    else:
        assert "answered 503, expected 200" in record["reason"]
    assert len(hook.requests) == 1  # it may have reached the API: never sent twice
    assert elsewhere.requests == []
    assert_secrets_kept(await audit(h, decision["id"]))
