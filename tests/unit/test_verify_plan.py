"""The typed verify plan: rendered with the job, carried beside the params (never among
them) into the rows a judgement writes, and stored and read back as the store does, also
from rows the version before wrote with the check as reserved params."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from remediator.core.alert import Alert
from remediator.core.durations import parse_rate
from remediator.core.guards import Facts, Gates, Settings
from remediator.core.job import Job, Stopped, render_job
from remediator.core.judge import Decided, Ids, Sighting, judge
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy, parse_policies
from remediator.core.verify import Checks, HttpCheck, PrometheusCheck, VerifyPlan
from remediator.store.records import params_from_json, params_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
QUERY = 'errors{container="web-1"}'


def policy(verify: str = "", guards: str = "{}") -> Policy:
    doc = (
        "name: p\n"
        "action: {type: docker.restart, params: {container: '{{ labels.container }}'},"
        " allow_targets: ['web-*']}\n"
        f"guards: {guards}\n{verify}"
    )
    [found], problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return found


def alert(**labels: str) -> Alert:
    return Alert(
        source="alertmanager",
        status="firing",
        labels={"alertname": "Down", "container": "web-1", **labels},
        annotations={},
        starts_at=NOW,
        fingerprint="e1",
        episode="e1",
    )


CHECKED = (
    "verify: {within: 30s, prometheus: "
    "{query: 'errors{container=\"{{ labels.container }}\"}', below: 0.1}}"
)

HEALTH = "verify: {http: {url: 'http://{{ labels.container }}:8080/health'}}"


@pytest.mark.parametrize(
    ("verify", "plan"),
    [
        ("", VerifyPlan(timedelta(minutes=2))),
        ("verify: {within: 30s}", VerifyPlan(timedelta(seconds=30))),
        (CHECKED, VerifyPlan(timedelta(seconds=30), PrometheusCheck(QUERY, below=0.1))),
        (
            CHECKED.replace("below", "above"),
            VerifyPlan(timedelta(seconds=30), PrometheusCheck(QUERY, above=0.1)),
        ),
        (
            HEALTH,
            VerifyPlan(timedelta(minutes=2), http=HttpCheck("http://web-1:8080/health")),
        ),
        (
            CHECKED[:-1] + ", http: {url: 'https://web/h', expect_status: '200', contains: ok}}",
            VerifyPlan(
                timedelta(seconds=30),
                PrometheusCheck(QUERY, below=0.1),
                HttpCheck("https://web/h", "200", "ok"),
            ),
        ),
    ],
)
def test_the_plan_is_rendered_with_the_job_and_never_among_its_params(
    verify: str, plan: VerifyPlan
) -> None:
    job = render_job(policy(verify), alert(), NOW)
    assert job.error is None
    assert job.params == {"container": "web-1"}
    assert job.verify == plan and job.check == (plan.checks or None)


def test_a_check_that_does_not_render_stops_the_job() -> None:
    bad = CHECKED.replace("labels.container", "labels.missing")
    job = render_job(policy(bad), alert(), NOW)
    assert isinstance(job.error, Stopped) and job.error.outcome is Outcome.RENDER_ERROR
    assert job.error.reason.startswith("verify.prometheus: ") and job.error.target == "web-1"
    assert job.verify is None


@pytest.mark.parametrize(
    ("container", "problem"),
    [
        ("evil.example@web-1", "has userinfo or whitespace"),
        ("web 1", "has userinfo or whitespace"),
        ("", "is not an http:// or https:// URL with a host"),
    ],
)
def test_a_health_url_an_alert_value_bent_is_a_render_error(container: str, problem: str) -> None:
    doc = (
        "name: p\n"
        "action: {type: docker.restart, params: {container: web-1}, allow_targets: ['web-*']}\n"
        + HEALTH
    )
    [pol], _ = parse_policies(doc, "t.yaml")
    job = render_job(pol, alert(container=container), NOW)
    assert job.error is not None and job.error.outcome is Outcome.RENDER_ERROR
    assert job.error.reason.startswith("verify.http: ") and problem in job.error.reason


@pytest.mark.parametrize(
    ("http", "problem"),
    [
        ("{url: 'ftp://web/h'}", "must be an http:// or https:// URL"),
        ("{url: 'http://web/${secret:T}'}", "takes no ${secret:...}"),
        ("{url: 'http://web/h', expect_status: often}", "expect_status 'often'"),
        ("{url: 'http://{{ lables.x }}/h'}", "template names lables"),
        ("{url: 'http://web/h', follow: true}", "Extra inputs are not permitted"),
    ],
)
def test_what_a_verify_http_may_not_say(http: str, problem: str) -> None:
    doc = (
        "name: p\n"
        "action: {type: docker.restart, params: {container: web-1}, allow_targets: ['web-*']}\n"
        f"verify: {{http: {http}}}\n"
    )
    _, problems = parse_policies(doc, "t.yaml")
    assert len(problems) == 1 and problem in problems[0], problems


def test_an_approval_time_job_has_no_plan() -> None:
    assert Job(None, policy(), NOW, "docker.restart", "web-1", {}).check is None


def _judged(guards: str) -> Decided:
    pol = policy(CHECKED, guards)
    facts = Facts(Gates(), Settings(parse_rate("5/1h"), timedelta(minutes=15)))
    ids = Ids(itertools.count(100), itertools.count(500))
    return judge([Sighting(alert(), 0, (render_job(pol, alert(), NOW, 0),))], facts, ids, NOW)


def test_an_action_row_and_its_verdict_carry_the_check_beside_the_params() -> None:
    decided = _judged("{}")
    [verdict], [action] = decided.verdicts, decided.actions
    assert action.params == {"container": "web-1"}
    assert action.verify == Checks(PrometheusCheck(QUERY, below=0.1))
    assert verdict.verify == VerifyPlan(timedelta(seconds=30), PrometheusCheck(QUERY, below=0.1))


def test_an_approval_row_keeps_the_check_and_its_message_never_shows_it() -> None:
    decided = _judged("{approval: always}")
    [row] = decided.approval_rows
    assert not decided.actions
    assert row.params == {"container": "web-1"}
    assert row.context["params"] == {"container": "web-1"}
    assert row.verify == Checks(PrometheusCheck(QUERY, below=0.1))


# --- stored beside the params, and read back from either version's rows ---------------------


@pytest.mark.parametrize(
    "check",
    [
        None,
        Checks(PrometheusCheck(QUERY, below=0.1)),
        Checks(PrometheusCheck(QUERY, above=1e-9)),
        Checks(PrometheusCheck("up", above=float("inf"))),
        Checks(http=HttpCheck("http://web-1:8080/health")),
        Checks(PrometheusCheck("up", above=0.5), HttpCheck("https://web/h", "200,204", "ok")),
    ],
)
def test_stored_params_round_trip(check: Checks | None) -> None:
    params = {"container": "web-1", "header.X-Token": "${secret:t}"}
    stored = params_json(params, check)
    assert json.loads(stored)["params"] == params
    assert params_from_json(stored) == (params, check)


@pytest.mark.parametrize(
    "params",
    [{}, {"container": "wéb-1"}, {"text": "a lone \ud800 surrogate"}, {"n": "1e400"}],
)
@pytest.mark.parametrize("check", [None, Checks()])
def test_params_without_checks_round_trip_whatever_their_text(
    params: dict[str, str], check: Checks | None
) -> None:
    """Without checks the column is written by orjson, which refuses a lone surrogate (a
    Datadog tag may carry one): that falls back to the standard library's text."""
    stored = params_json(params, check)
    assert params_from_json(stored) == (params, None)


@pytest.mark.parametrize(
    ("stored", "params", "check"),
    [
        (None, {}, None),
        ("", {}, None),
        ('{"container": "web-1"}', {"container": "web-1"}, None),
        (
            json.dumps(
                {"container": "web-1", "_verify_query": QUERY, "_verify_bound": "below 0.1"}
            ),
            {"container": "web-1"},
            Checks(PrometheusCheck(QUERY, below=0.1)),
        ),
        (  # schema 6: the Prometheus check alone beside the params
            json.dumps({"params": {"container": "web-1"}, "verify": {"query": "up", "above": 1}}),
            {"container": "web-1"},
            Checks(PrometheusCheck("up", above=1.0)),
        ),
        (
            json.dumps(
                {"url": "https://ci/x", "_verify_query": "up", "_verify_bound": "above 5.0"}
            ),
            {"url": "https://ci/x"},
            Checks(PrometheusCheck("up", above=5.0)),
        ),
    ],
)
def test_rows_the_version_before_wrote_are_read_as_it_meant_them(
    stored: str | None, params: dict[str, str], check: Checks | None
) -> None:
    assert params_from_json(stored) == (params, check)
