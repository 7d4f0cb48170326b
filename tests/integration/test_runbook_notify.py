"""The runbook steps that tell people (runbook 000's incident post and security team, 001's
security and legal notice and "INCIDENT ALERT - P0" template, 003's stakeholders) as shipped:
each policy file in policies/ loaded as it is, fired with the labels of its rule in
deploy/prometheus/rules.yml (routed to remediator: test_runbook_004's amtool check covers
every rule), posting through the real slack_sdk client to the Slack Web API stand-in. Each
test asserts the exact channel and text that reached Slack, and that what an alert carries
is shown as text, never as a mention or a link. Time is the harness's clock, moved past the
policies' one-minute cooldown where a test needs a second post."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import Harness, HarnessFactory
from tests.integration.test_runbook_004 import rule_labels, shipped
from tests.integration.test_slack_approvals import CHANNEL, config

STARTS = datetime.now(UTC).replace(microsecond=0)
SINCE = STARTS.isoformat()  # how the policies show alert.starts_at: "...T09:30:00+00:00"

# What Prometheus renders for each rule's summary annotation, as the tests' alerts carry it.
OUTAGE = "vibecode-webgui is unreachable: every health probe fails"
ERRORS = "vibecode-webgui: 2.5% of requests fail"
BREACH = "data_exfiltration: 3 security events in 5 minutes"
SITE_DOWN = "https://vibesheets.com/health is down: its health check fails (502/503 or timeout)"
S1 = "unauthorized_access: 1 security events in 5 minutes"
MGMT_DOWN = "mgmt-vibe-app: https://mgmt-vibe.com/api/health fails its health check"

# A label value written to pass for Slack markup: a broadcast, a disguised link, a mention.
HOSTILE = "<!channel> <https://evil.example/login|Reset your password> <@U111>"
HOSTILE_SHOWN = (
    "&lt;!channel&gt; &lt;https://evil.example/login|Reset your password&gt; &lt;@U111&gt;"
)


class Clock:
    """The daemon's clock: real time at the start, moved on only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def past_cooldown(self) -> None:
        """Past the shipped policies' `cooldown: 1m`."""
        self.now += timedelta(seconds=61)


def alert(labels: dict[str, str], summary: str | None = None) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {} if summary is None else {"summary": summary},
        "startsAt": STARTS.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def body(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": list(alerts)}


def posts(slack: SlackAPI) -> list[tuple[str, str]]:
    """(channel as the daemon named it, text) of every chat.postMessage, in order."""
    return [(c.body["channel"], c.body["text"]) for c in slack.calls_to("chat.postMessage")]


def stored(slack: SlackAPI, channel: str) -> list[str]:
    return [m["text"] for m in slack.messages(channel)]


async def executed(h: Harness, decisions: list[dict[str, Any]]) -> None:
    for decision in decisions:
        record = await h.wait_outcome(decision["id"], {"executed", "failed"})
        assert record["outcome"] == "executed", record


async def test_a_p0_or_p1_incident_posts_the_initial_update_to_alerts(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R0-5: P0 and P1 each post once to #alerts, at most one post a minute; a repeat, a P2
    and a security alert do not post."""
    clock = Clock()
    policy = shipped("000-start-incident-response")
    assert "cooldown: 1m" in policy
    h = await harness(policy, config(slack_api), clock=clock)
    p0 = rule_labels("VibecodeWebguiUnreachable")
    p1 = rule_labels("VibecodeWebguiErrorRateCritical")
    [first] = (await h.post(body(alert(p0, OUTAGE))))[1]["decisions"]
    assert (first["policy"], first["target"]) == ("start-incident-response", "slack")
    await executed(h, [first])
    clock.past_cooldown()
    [second] = (await h.post(body(alert(p1, ERRORS))))[1]["decisions"]
    await executed(h, [second])
    tail = (
        "Incident response is active: on-call, create #incident-YYYY-MM-DD-brief-description, "
        "post status updates every 30 minutes and stakeholder updates hourly in "
        "#engineering-leadership."
    )
    expected = [
        (
            "#alerts",
            f":rotating_light: P0 incident on vibecode-webgui: {OUTAGE}\n"
            f"Alert VibecodeWebguiUnreachable, firing since {SINCE}.\n{tail}",
        ),
        (
            "#alerts",
            f":rotating_light: P1 incident on vibecode-webgui: {ERRORS}\n"
            f"Alert VibecodeWebguiErrorRateCritical, firing since {SINCE}.\n{tail}",
        ),
    ]
    assert posts(slack_api) == expected
    assert stored(slack_api, "#alerts") == [text for _, text in expected]

    # Alertmanager's re-send of the same firing alert is the same episode: no second post.
    [repeat] = (await h.post(body(alert(p0, OUTAGE))))[1]["decisions"]
    assert repeat["outcome"] == "deduplicated"
    # Another alert of the same outage within the minute: recorded, not posted.
    [burst] = (await h.post(body(alert({**p1, "endpoint": "/api/ai"}, ERRORS))))[1]["decisions"]
    assert burst["outcome"] == "cooldown"
    # A P2 is not the runbook's trigger; a suspected breach goes to the security team only.
    p2 = {**p1, "priority": "P2"}
    assert (await h.post(body(alert(p2, ERRORS))))[1]["decisions"] == []
    breach = {**rule_labels("VibecodeWebguiDataBreachSuspected"), "type": "data_exfiltration"}
    assert (await h.post(body(alert(breach, BREACH))))[1]["decisions"] == []
    assert posts(slack_api) == expected
    assert not slack_api.messages(CHANNEL)


async def test_a_suspected_breach_reaches_the_security_team_and_nobody_else(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R0-7, with R0-5's policy loaded beside it: one post, to #security-team only."""
    both = shipped("000-start-incident-response") + "---\n" + shipped("000-notify-security-team")
    h = await harness(both, config(slack_api))
    labels = {**rule_labels("VibecodeWebguiDataBreachSuspected"), "type": "data_exfiltration"}
    [decision] = (await h.post(body(alert(labels, BREACH))))[1]["decisions"]
    assert decision["policy"] == "notify-security-team"
    await executed(h, [decision])
    text = (
        f"<!channel> Data breach suspected on vibecode-webgui: {BREACH}\n"
        f"Alert VibecodeWebguiDataBreachSuspected, firing since {SINCE}.\n"
        'Runbook 000 "Data Breach Suspected": preserve logs and evidence, isolate affected '
        "systems, begin incident response. Keep details out of public channels."
    )
    assert posts(slack_api) == [("#security-team", text)]
    assert stored(slack_api, "#security-team") == [text]
    assert not slack_api.messages("#alerts") and not slack_api.messages(CHANNEL)
    # Slack must not fetch or preview a link from a security alert.
    [call] = slack_api.calls_to("chat.postMessage")
    assert call.body["unfurl_links"] is False and call.body["unfurl_media"] is False


S1_SECURITY = (
    f"<!channel> S1 security incident on VibeSheets (data breach or unauthorized access): {S1}\n"
    f"Alert VibesheetsS1SecurityIncident, firing since {SINCE}.\n"
    'Runbook 001 "S1 Security Incident Response": immediate lockdown, then investigate access '
    "logs and data exfiltration. The legal team is told in #legal-team."
)
S1_LEGAL = (
    f"<!channel> S1 security incident on VibeSheets (data breach or unauthorized access): {S1}\n"
    f"Detected by VibesheetsS1SecurityIncident at {SINCE}; the security team is locking down "
    "and investigating in #security-team.\n"
    "Legal: assess the duty to notify affected users and regulators (under GDPR, 72 hours "
    "from awareness)."
)


def _s1_policies() -> str:
    return (
        shipped("001-notify-security-of-s1-incident")
        + "---\n"
        + shipped("001-notify-legal-of-s1-incident")
    )


async def test_an_s1_incident_tells_security_and_legal_each_in_their_own_channel(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R1-8: one S1 alert, two audiences, two posts; the on-call P0 template stays silent."""
    h = await harness(
        _s1_policies() + "---\n" + shipped("001-incident-alert-p0"), config(slack_api)
    )
    labels = {**rule_labels("VibesheetsS1SecurityIncident"), "type": "unauthorized_access"}
    decisions = (await h.post(body(alert(labels, S1))))[1]["decisions"]
    assert sorted(d["policy"] for d in decisions) == [
        "notify-legal-of-s1-incident",
        "notify-security-of-s1-incident",
    ]
    await executed(h, decisions)
    assert sorted(posts(slack_api)) == [("#legal-team", S1_LEGAL), ("#security-team", S1_SECURITY)]
    assert stored(slack_api, "#security-team") == [S1_SECURITY]
    assert stored(slack_api, "#legal-team") == [S1_LEGAL]
    assert not slack_api.messages("#vibesheets-alerts") and not slack_api.messages(CHANNEL)


async def test_one_audience_unreachable_never_keeps_the_other_from_being_told(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R1-8's reason for two policies: Slack refuses the first post, the second still goes,
    and the failure trips no breaker (the next S1 is posted to both)."""
    clock = Clock()
    h = await harness(_s1_policies(), config(slack_api), clock=clock)
    slack_api.fail_next("chat.postMessage", "channel_not_found")
    labels = {**rule_labels("VibesheetsS1SecurityIncident"), "type": "unauthorized_access"}
    decisions = (await h.post(body(alert(labels, S1))))[1]["decisions"]
    records = [await h.wait_outcome(d["id"], {"executed", "failed"}) for d in decisions]
    assert sorted(r["outcome"] for r in records) == ["executed", "failed"]
    [failed] = [r for r in records if r["outcome"] == "failed"]
    assert "channel_not_found" in failed["reason"]
    assert len(stored(slack_api, "#security-team")) + len(stored(slack_api, "#legal-team")) == 1
    assert h.metric("remediator_policy_tripped", policy=failed["policy"]) == 0

    clock.past_cooldown()
    again = {**labels, "type": "data_breach"}  # another episode of the same rule
    later = (await h.post(body(alert(again, S1))))[1]["decisions"]
    await executed(h, later)
    assert len(stored(slack_api, "#security-team")) + len(stored(slack_api, "#legal-team")) == 3


async def test_a_p0_posts_the_incident_alert_template_to_the_on_call_channel(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R1-9: the runbook's template, filled from the alert; any P0 of the service posts it."""
    clock = Clock()
    h = await harness(shipped("001-incident-alert-p0"), config(slack_api), clock=clock)
    labels = {**rule_labels("VibesheetsSiteDown"), "instance": "https://vibesheets.com/health"}
    [decision] = (await h.post(body(alert(labels, SITE_DOWN))))[1]["decisions"]
    await executed(h, [decision])
    text = (
        "INCIDENT ALERT - P0\n"
        "Service: VibeSheets\n"
        "Status: Investigating\n"
        f"Impact: {SITE_DOWN}\n"
        "ETA: not known yet\n"
        "Next Update: within 15 minutes\n"
        f"Alert: VibesheetsSiteDown, firing since {SINCE}"
    )
    assert posts(slack_api) == [("#vibesheets-alerts", text)]
    assert stored(slack_api, "#vibesheets-alerts") == [text]

    # Another P0 of the service (another rule, no summary): its name stands for the impact.
    clock.past_cooldown()
    database = {
        "alertname": "VibesheetsDatabaseFailure",
        "priority": "P0",
        "service": "vibesheets",
        "remediation": "restart",
    }
    [other] = (await h.post(body(alert(database))))[1]["decisions"]
    await executed(h, [other])
    assert posts(slack_api)[1][1].splitlines()[3] == "Impact: VibesheetsDatabaseFailure"
    # A P1 is not this template's trigger.
    assert (await h.post(body(alert({**database, "priority": "P1"}))))[1]["decisions"] == []


async def test_a_summary_cannot_forge_a_line_of_the_template(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R1-9: a summary with line breaks of its own stays on the Impact line, so no alert can
    make the post say "Status: Resolved"."""
    h = await harness(shipped("001-incident-alert-p0"), config(slack_api))
    labels = {**rule_labels("VibesheetsSiteDown"), "instance": "https://vibesheets.com/health"}
    forged = "site down\nStatus: Resolved\r\nETA: none\u2028Next Update: never"
    [decision] = (await h.post(body(alert(labels, forged))))[1]["decisions"]
    await executed(h, [decision])
    [(_, text)] = posts(slack_api)
    lines = text.split("\n")
    assert len(lines) == 7
    assert lines[2:6] == [
        "Status: Investigating",
        "Impact: site down Status: Resolved ETA: none Next Update: never",
        "ETA: not known yet",
        "Next Update: within 15 minutes",
    ]
    assert "\r" not in text and "\u2028" not in text


async def test_any_production_alert_of_the_app_notifies_stakeholders(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R3-2: its own health-check rule and the error-rate rollback's alert both post to
    #incidents; the same alert in staging does not."""
    clock = Clock()
    h = await harness(shipped("003-notify-stakeholders"), config(slack_api), clock=clock)
    health = {
        **rule_labels("MgmtVibeHealthCheckFailing"),
        "instance": "https://mgmt-vibe.com/api/health",
    }
    errors = {**rule_labels("HighErrorRate"), "namespace": "prod", "deployment": "mgmt-vibe-app"}
    [first] = (await h.post(body(alert(health, MGMT_DOWN))))[1]["decisions"]
    await executed(h, [first])
    clock.past_cooldown()
    [second] = (await h.post(body(alert(errors))))[1]["decisions"]
    assert second["policy"] == "notify-stakeholders"
    await executed(h, [second])
    tail = (
        "Updates follow here and in the incident ticket; the status page "
        "(status.mgmt-vibe.com) is updated once customer impact is confirmed."
    )
    expected = [
        (
            "#incidents",
            f":rotating_light: Incident on mgmt-vibe-app (prod): {MGMT_DOWN}\n"
            f"Alert MgmtVibeHealthCheckFailing (critical), firing since {SINCE}.\n{tail}",
        ),
        (
            "#incidents",
            ":rotating_light: Incident on mgmt-vibe-app (prod): HighErrorRate\n"
            f"Alert HighErrorRate (page), firing since {SINCE}.\n{tail}",
        ),
    ]
    assert posts(slack_api) == expected
    assert stored(slack_api, "#incidents") == [text for _, text in expected]
    staging = {**errors, "namespace": "staging"}
    assert (await h.post(body(alert(staging))))[1]["decisions"] == []
    assert len(posts(slack_api)) == 2


async def test_an_alert_storm_posts_once_a_minute_and_ten_times_an_hour(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """R3-2 listens to any alert: twelve at once post once (the rest `cooldown`); one new
    alert a minute posts until the tenth post of the hour, then `rate_limited`."""
    clock = Clock()
    policy = shipped("003-notify-stakeholders")
    assert "cooldown: 1m" in policy and 'rate_limit: "10/1h"' in policy
    h = await harness(policy, config(slack_api), clock=clock)
    base = rule_labels("MgmtVibeHealthCheckFailing")

    def probe(n: int) -> dict[str, Any]:
        return alert({**base, "instance": f"probe-{n}"}, f"probe {n} fails")

    decisions = (await h.post(body(*(probe(n) for n in range(12)))))[1]["decisions"]
    assert [d["outcome"] for d in decisions[1:]] == ["cooldown"] * 11
    await executed(h, decisions[:1])
    for n in range(12, 21):
        clock.past_cooldown()
        [decision] = (await h.post(body(probe(n))))[1]["decisions"]
        await executed(h, [decision])
    clock.past_cooldown()
    [limited] = (await h.post(body(probe(21))))[1]["decisions"]
    assert limited["outcome"] == "rate_limited"
    assert len(stored(slack_api, "#incidents")) == 10


# Each policy, the labels of its rule, and how many `<` its own text writes (its <!channel>).
EVERY_POLICY = [
    ("000-start-incident-response", "VibecodeWebguiUnreachable", "#alerts", 0),
    ("000-notify-security-team", "VibecodeWebguiDataBreachSuspected", "#security-team", 1),
    ("001-notify-security-of-s1-incident", "VibesheetsS1SecurityIncident", "#security-team", 1),
    ("001-notify-legal-of-s1-incident", "VibesheetsS1SecurityIncident", "#legal-team", 1),
    ("001-incident-alert-p0", "VibesheetsSiteDown", "#vibesheets-alerts", 0),
    ("003-notify-stakeholders", "MgmtVibeHealthCheckFailing", "#incidents", 0),
]


@pytest.mark.parametrize(("policy", "rule", "channel", "own"), EVERY_POLICY)
async def test_alert_values_are_shown_as_text_never_as_slack_markup(
    harness: HarnessFactory,
    slack_api: SlackAPI,
    policy: str,
    rule: str,
    channel: str,
    own: int,
) -> None:
    """A name and a summary written as a broadcast, a disguised link and a mention arrive
    escaped: Slack shows them as typed, pings nobody and links nowhere."""
    h = await harness(shipped(policy), config(slack_api))
    labels = {**rule_labels(rule), "alertname": HOSTILE}
    summary = "db <!here> & <https://evil.example|status page>"
    [decision] = (await h.post(body(alert(labels, summary))))[1]["decisions"]
    await executed(h, [decision])
    [(where, text)] = posts(slack_api)
    assert where == channel
    assert HOSTILE_SHOWN in text
    assert "db &lt;!here&gt; &amp; &lt;https://evil.example|status page&gt;" in text
    # The only markup left is the policy's own: its <!channel>, if it writes one, first.
    assert text.count("<") == own and text.count(">") == own
    assert text.startswith("<!channel> ") == (own == 1)
    assert stored(slack_api, channel) == [text]
