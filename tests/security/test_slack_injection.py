"""Finding 13 and the Slack part of 8, against the running daemon: alert text reaches Slack
escaped (no mention, no disguised link), a click signed for another workspace changes
nothing when `slack.team_id` is set, and a hostile Retry-After never stalls anything."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import pytest

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.procs import wait_for
from tests.fixtures.slack_api import TEAM_ID, SlackAPI, SlackCall

SECRET = "slack-signing-secret-0123456789"
CHANNEL = "C0123456"
NO_DOCKER = {"url": "unix:///nonexistent/docker.sock"}  # nothing here can really run
APPROVAL_POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 1s}
  allow_targets: ["web-*"]
guards: {approval: always, dry_run: true, approvers: ["U111", "api:api"]}
"""
NOTIFY_POLICY = """
name: tell-oncall
match: {matchers: ['alertname="ContainerDown"']}
action: {type: notify, params: {text: "{{ labels.owner }}: {{ annotations.summary }}"}}
"""
HOSTILE_SUMMARY = "<!channel> click <https://evil.example/approve|Approve>"
# Anything that would make Slack ping someone or link somewhere an alert chose.
FORBIDDEN = ("<!channel", "<!here", "<!everyone", "<@U999", "<javascript:", "<https://x|")
EVIL_LINK = re.compile(r"<[^<>]*evil\.example")


def slack_config(slack: SlackAPI, **extra: Any) -> dict[str, Any]:
    return {
        "bot_token": slack.token,
        "signing_secret": SECRET,
        "channel": CHANNEL,
        "approvers": ["U111"],
        "api_url": f"{slack.url}/api/",
        **extra,
    }


def alert(generator_url: str) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "labels": {
                    "alertname": "ContainerDown",
                    "container": "web-1",
                    "owner": "<@U999>",
                },
                "annotations": {"summary": HOSTILE_SUMMARY, "description": "<!here> see <@U999>"},
                "startsAt": "2026-11-22T10:00:00Z",
                "generatorURL": generator_url,
            }
        ]
    }


def healthz_within(daemon: Daemon, seconds: float) -> bool:
    started = time.monotonic()
    with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=seconds) as resp:
        ok = resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    return ok and time.monotonic() - started < seconds


@pytest.mark.parametrize("generator_url", ["javascript:alert(1)", "https://x|<!here>"])
def test_alert_text_reaches_slack_escaped(
    daemon_factory: DaemonFactory, slack_api: SlackAPI, generator_url: str
) -> None:
    daemon = daemon_factory(
        APPROVAL_POLICY + "---\n" + NOTIFY_POLICY,
        slack=slack_config(slack_api),
        docker=NO_DOCKER,
    )
    daemon.start()
    status, body = daemon.webhook(alert(generator_url))
    assert status == 200, body
    daemon.wait_decisions(
        lambda found: sorted(d["outcome"] for d in found) == ["awaiting_approval", "executed"],
        timeout=30,
        what="the approval request and the executed notify",
    )

    def both_posts() -> list[SlackCall] | None:
        calls = slack_api.calls_to("chat.postMessage")
        return calls if len(calls) >= 2 else None

    posts = wait_for(
        both_posts,
        timeout=30,
        what="the approval message and the notify post",
    )
    # What the stand-in received, byte for byte as JSON: text, blocks, everything.
    for call in posts:
        sent = json.dumps(call.body, ensure_ascii=False)
        for forbidden in FORBIDDEN:
            assert forbidden not in sent, (forbidden, sent)
        assert not EVIL_LINK.search(sent), sent
    [approval] = [c.body for c in posts if c.body.get("blocks")]
    shown = json.dumps(approval["blocks"], ensure_ascii=False)
    assert "&lt;!channel&gt; click &lt;https://evil.example/approve|Approve&gt;" in shown
    assert "&lt;@U999&gt;" in shown
    assert "not linked" in shown  # the generator URL is shown as text, never as a link
    [notify] = [c.body for c in posts if not c.body.get("blocks")]
    assert notify["text"] == (
        "&lt;@U999&gt;: &lt;!channel&gt; click &lt;https://evil.example/approve|Approve&gt;"
    )


def test_a_click_from_another_workspace_changes_nothing(
    daemon_factory: DaemonFactory, slack_api: SlackAPI
) -> None:
    daemon = daemon_factory(
        APPROVAL_POLICY,
        slack=slack_config(slack_api, team_id=TEAM_ID),
        docker=NO_DOCKER,
    )
    daemon.start()
    [decision] = daemon.webhook(alert("http://prometheus:9090/graph"))[1]["decisions"]
    [message] = wait_for(
        lambda: slack_api.messages(CHANNEL), timeout=30, what="the approval message"
    )
    # Correctly signed with our secret, by an approver's ID, from a workspace that is not ours.
    body, headers = slack_api.click(
        SECRET,
        channel=CHANNEL,
        ts=message["ts"],
        action_id="approve",
        user_id="U111",
        team_id="T0FOREIGN",
    )
    status, _ = daemon.request("POST", "/slack/interactions", body, headers)
    assert status == 200  # Slack always gets its 200; the click is refused, not failed
    [event] = wait_for(
        lambda: daemon.events("slack.foreign_team"), timeout=10, what="slack.foreign_team"
    )
    assert event["team_id"] == "T0FOREIGN"
    status, detail = daemon.api("GET", f"/api/v1/approvals/{decision['approval_id']}")
    assert (status, detail["state"], detail["events"]) == (200, "pending", [])
    assert [d["outcome"] for d in daemon.decisions()] == ["awaiting_approval"]
    assert not daemon.events("slack.click")
    _, metrics = daemon.request("GET", "/metrics")
    assert 'remediator_webhook_rejected_total{code="403",endpoint="slack"} 1.0' in metrics.decode()
    # The same click from our own workspace is honoured: the check refuses only the foreign one.
    body, headers = slack_api.click(
        SECRET, channel=CHANNEL, ts=message["ts"], action_id="approve", user_id="U111"
    )
    assert daemon.request("POST", "/slack/interactions", body, headers)[0] == 200
    daemon.wait_decisions(
        lambda found: any(d["outcome"] == "dry_run" for d in found),
        timeout=30,
        what="the approved dry run",
    )


def test_a_hostile_retry_after_does_not_stall_the_daemon(
    daemon_factory: DaemonFactory, slack_api: SlackAPI
) -> None:
    slack_api.rate_limit_next("chat.postMessage", retry_after=3600, times=100)
    daemon = daemon_factory(APPROVAL_POLICY, slack=slack_config(slack_api), docker=NO_DOCKER)
    daemon.start()
    sent = time.monotonic()
    [decision] = daemon.webhook(alert("http://prometheus:9090/graph"))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"

    def failed_post() -> list[dict[str, Any]]:
        assert healthz_within(daemon, 1.0), "/healthz did not answer within 1 s"
        return daemon.events("approval.announce_failed")

    [failed] = wait_for(failed_post, timeout=15, what="the rate-limited post to fail")
    assert time.monotonic() - sent < 15
    assert "Retry-After 3600s" in failed["error"]
    assert daemon.events("slack.rate_limited")
    assert len(slack_api.calls_to("chat.postMessage")) == 1  # refused at once, never retried
    assert healthz_within(daemon, 1.0)
    # Slack being hostile never blocks an approval through the API.
    status, body = daemon.api(
        "POST", f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "U111"}
    )
    assert status == 200, body
    daemon.wait_decisions(
        lambda found: any(d["outcome"] == "dry_run" for d in found),
        timeout=30,
        what="the approved dry run",
    )
    assert healthz_within(daemon, 1.0)
