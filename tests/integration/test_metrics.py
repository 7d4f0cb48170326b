"""The daemon's /metrics page over HTTP: every loaded policy's decision and action series from the
start (and a reloaded set's at once), no `_created` series, and the README's list of metrics
the same set as the families the page really exports."""

from __future__ import annotations

import re
from itertools import product

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from remediator.core.outcomes import FINAL, Outcome
from remediator.metrics import RESULTS
from tests.integration.conftest import API, Harness, HarnessFactory
from tests.integration.test_webhook_http import POLICY, body
from tests.unit.test_grafana_dashboard import readme_metrics

SINGLE = "---\n" + POLICY
# A ladder: each of its steps' action types has its own series.
LADDER = """---
name: restart-then-recreate
match: {matchers: ['alertname="StillDown"']}
steps:
  - action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
    verify: {within: 1s}
  - action: {type: docker.recreate, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
    verify: {within: 1s}
  - action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
"""
ADDED = """---
name: call-the-hook
match: {matchers: ['alertname="HookMe"']}
action:
  type: http.request
  params: {url: "https://ci.example.com/job/rollback"}
  allow_targets: ["https://ci.example.com/job/*"]
"""
COUNTED = {outcome.value for outcome in FINAL - {Outcome.AWAITING_APPROVAL}}


async def page(h: Harness) -> str:
    resp = await h.client.get("/metrics")
    assert resp.status == 200
    return await resp.text()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def action_series(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (labels["policy"], labels["action"], labels["result"]): value
        for key, value in samples(text, "remediator_actions_total").items()
        for labels in [dict(key)]
    }


def decision_series(text: str) -> dict[tuple[str, str], float]:
    return {
        (labels["policy"], labels["outcome"]): value
        for key, value in samples(text, "remediator_decisions_total").items()
        for labels in [dict(key)]
    }


async def test_a_daemon_that_never_acted_has_every_action_series_at_zero(
    harness: HarnessFactory,
) -> None:
    h = await harness(SINGLE + LADDER)
    text = await page(h)
    results = {result.value for result in RESULTS}
    assert results == {"executed", "failed", "interrupted", "paused", "tripped", "cooldown"}
    expected = set(product(["restart-web"], ["docker.restart"], results)) | set(
        product(["restart-then-recreate"], ["docker.restart", "docker.recreate"], results)
    )
    series = action_series(text)
    assert set(series) == expected
    assert set(series.values()) == {0.0}
    decisions = decision_series(text)
    assert set(decisions) == set(product(["restart-web", "restart-then-recreate"], COUNTED))
    assert set(decisions.values()) == {0.0}


async def test_the_page_has_no_created_series(harness: HarnessFactory) -> None:
    h = await harness(SINGLE)
    # Labelled counters and histograms get children only with traffic: with it, the client
    # library would add `_created` beside each of them.
    assert (await h.post(body("web-1")))[0] == 200
    assert (await h.post(body("web-1"), headers={"Authorization": "Bearer wrong"}))[0] == 401
    text = await page(h)
    assert 'remediator_alerts_received_total{source="alertmanager",status="firing"} 1.0' in text
    assert 'remediator_webhook_rejected_total{code="401",endpoint="alertmanager"} 1.0' in text
    assert 'remediator_webhook_request_duration_seconds_count{endpoint="alertmanager"}' in text
    created = [line for line in text.splitlines() if re.search(r"_created(\{| |$)", line)]
    assert created == []


async def test_a_reload_adds_the_new_policys_series(harness: HarnessFactory) -> None:
    h = await harness(SINGLE)
    assert (await h.post(body("web-1")))[0] == 200
    before = await page(h)
    assert not any(key[0] == "call-the-hook" for key in action_series(before))
    (h.folder / "policies" / "p.yaml").write_text(SINGLE + ADDED)
    status, answer = await h.api("/-/reload", headers=API)
    assert status == 200 and answer["added"] == ["call-the-hook"], answer
    after = await page(h)
    series = action_series(after)
    for result in RESULTS:
        assert series[("call-the-hook", "http.request", result.value)] == 0.0
    decisions = decision_series(after)
    assert {o for p, o in decisions if p == "call-the-hook"} == COUNTED
    assert decisions[("restart-web", "dry_run")] == 1.0  # counts survive the reload


async def test_the_page_is_what_the_client_library_would_write(harness: HarnessFactory) -> None:
    """/metrics writes the per-policy count families itself, for speed: byte for byte what
    generate_latest writes for the same registry, counted, zero and other families alike."""
    h = await harness(SINGLE + LADDER)
    assert (await h.post(body("web-1")))[0] == 200
    assert (await h.post(body("web-1")))[0] == 200  # a repeat: deduplicated
    metrics = h.daemon.metrics
    metrics.acted("restart-then-recreate", "docker.recreate", "failed")
    await h.daemon.intake.flush_repeats()
    # Go's number format from a million on (1e+06), as the library writes it.
    metrics.decisions.counts["restart-web", "deduplicated"] = 1234567.0
    text = await page(h)
    assert text.encode() == generate_latest(metrics.registry)
    assert 'decisions_total{outcome="deduplicated",policy="restart-web"} 1.234567e+06' in text
    assert (
        'remediator_actions_total{action="docker.recreate",policy="restart-then-recreate",'
        'result="failed"} 1.0' in text
    )


async def test_the_readme_lists_exactly_the_metrics_the_page_exports(
    harness: HarnessFactory,
) -> None:
    h = await harness(SINGLE)
    assert (await h.post(body("web-1")))[0] == 200
    text = await page(h)
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    listed = readme_metrics()
    assert set(listed) - exported == set(), "listed in the README, not exported"
    assert exported - set(listed) == set(), "exported, not listed in the README"
    # Where a family has series, the README names exactly their labels.
    for family in text_string_to_metric_families(text):
        name = next(n for n in exported if n == family.name or n == family.name + "_total")
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        if family.samples:
            assert labels == listed[name], name
