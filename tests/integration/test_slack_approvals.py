"""Approvals in Slack against the loopback Slack Web API stand-in, with interaction requests
signed by Slack's v0 algorithm, and a real Docker container as what gets restarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.actions.docker import DockerExecutor
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.slack_api import SlackAPI, interaction_request
from tests.integration.conftest import (
    AM_TOKEN,
    API_TOKEN,
    Harness,
    HarnessFactory,
    on_both_backends,
)

pytestmark = on_both_backends

SECRET = "slack-signing-secret-0123456789"
CHANNEL = "C0123456"


def config(slack: SlackAPI, **limits: str) -> str:
    extra = "".join(f"\n  {k}: {v}" for k, v in limits.items())
    return f"""
auth:
  alertmanager: {{bearer_token: {AM_TOKEN}}}
  api: {{bearer_token: {API_TOKEN}}}
slack:
  bot_token: {slack.token}
  signing_secret: {SECRET}
  channel: {CHANNEL}
  approvers: [U111, U222, "api:api"]
  api_url: {slack.url}/api/
limits:
  approval_ttl: 15m{extra}
"""


def policy(guards: str = "approval: always") -> str:
    return f"""
name: restart-web
description: Service Down runbook, step 3
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: docker.restart
  params: {{container: "{{{{ labels.container }}}}", timeout: 1s}}
  allow_targets: ["web-*"]
guards: {{{guards}}}
verify: {{within: 20s}}
"""


def alert(container: str, status: str = "firing") -> dict[str, Any]:
    return {
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "ContainerDown", "container": container, "env": "prod"},
                "annotations": {"summary": f"{container} is down"},
                "startsAt": "2026-11-22T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T10:05:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            }
        ]
    }


async def eventually(probe: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def request_approval(
    h: Harness, slack: SlackAPI, container: str = "web-1"
) -> tuple[dict[str, Any], dict[str, Any]]:
    [decision] = (await h.post(alert(container)))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    message = await eventually(lambda: slack.messages(CHANNEL), "the approval message")
    return decision, message[-1]


async def click(
    h: Harness,
    message: dict[str, Any],
    user: str,
    action: str = "approve",
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
) -> int:
    value = next(
        e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    )
    body, headers = interaction_request(
        secret,
        user_id=user,
        action_id=action,
        value=value,
        channel=CHANNEL,
        message_ts=message["ts"],
        timestamp=timestamp,
    )
    resp = await h.client.post("/slack/interactions", data=body, headers=headers)
    return resp.status


def executors(docker: DockerEngine) -> dict[str, Any]:
    return {"docker.restart": DockerExecutor(docker.url)}


async def test_the_approval_message_shows_the_alert_action_and_buttons(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy(), config(slack_api))
    decision, message = await request_approval(h, slack_api)
    text = str(message["blocks"])
    for expected in (
        "ContainerDown",
        "`container=web-1`",
        "web-1 is down",
        "docker.restart",
        "`web-1`",
        "restart-web",
        "Service Down runbook, step 3",
        "http://prometheus:9090/graph?g0.expr=up",
    ):
        assert expected in text, expected
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    approve, deny = actions["elements"]
    assert (approve["action_id"], approve.get("style"), approve["value"]) == (
        "approve",
        "primary",
        decision["approval_id"],
    )
    assert (deny["action_id"], deny.get("style")) == ("deny", "danger") and "confirm" in deny
    assert len(decision["approval_id"]) >= 16  # not guessable


@pytest.mark.parametrize("case", ["wrong-secret", "stale", "garbled-timestamp", "no-signature"])
async def test_bad_signatures_are_401_and_change_nothing(
    harness: HarnessFactory, slack_api: SlackAPI, case: str
) -> None:
    h = await harness(policy(), config(slack_api))
    _, message = await request_approval(h, slack_api)
    if case == "wrong-secret":
        status = await click(h, message, "U111", secret="not-the-secret")
    elif case == "stale":
        status = await click(h, message, "U111", timestamp=int(time.time()) - 301)
    else:
        value = message["blocks"][-1]["elements"][0]["value"]
        body, headers = interaction_request(
            SECRET,
            user_id="U111",
            action_id="approve",
            value=value,
            channel=CHANNEL,
            message_ts=message["ts"],
        )
        if case == "garbled-timestamp":
            headers["X-Slack-Request-Timestamp"] = "yesterday"
        else:
            del headers["X-Slack-Signature"]
        status = (await h.client.post("/slack/interactions", data=body, headers=headers)).status
    assert status == 401
    assert [
        a["state"] for a in (await (await h.client.get("/api/v1/approvals")).json())["approvals"]
    ] == ["pending"]


async def test_a_click_while_the_store_is_down_changes_nothing_and_says_so(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy(), config(slack_api))
    _, message = await request_approval(h, slack_api)
    await h.daemon.store.close()  # as unreachable as a stopped PostgreSQL
    assert await click(h, message, "U111") == 200  # Slack always gets its 200 in time
    [note] = await eventually(lambda: slack_api.ephemerals, "the ephemeral answer")
    assert (
        note["user"] == "U111" and "cannot reach its state store; nothing changed" in note["text"]
    )
    assert h.daemon.runner.running == 0


async def test_a_non_approver_is_refused_and_told(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy(), config(slack_api))
    decision, message = await request_approval(h, slack_api)
    assert await click(h, message, "U999") == 200
    [note] = await eventually(lambda: slack_api.ephemerals, "the ephemeral refusal")
    assert note["user"] == "U999" and "not an approver" in note["text"]
    detail = await (await h.client.get(f"/api/v1/approvals/{decision['approval_id']}")).json()
    assert detail["state"] == "pending"
    assert [(e["who"], e["event"]) for e in detail["events"]] == [("U999", "refused")]
    assert (
        h.metric("remediator_approval_decisions_total", policy="restart-web", decision="refused")
        == 1
    )


async def test_approve_restarts_a_real_container_once_and_reports_in_thread(
    harness: HarnessFactory, slack_api: SlackAPI, docker_cleanup: DockerEngine
) -> None:
    docker_cleanup.run("web-1")
    before = docker_cleanup.started_at_ns("web-1")
    h = await harness(policy(), config(slack_api), executors=executors(docker_cleanup))
    decision, message = await request_approval(h, slack_api)
    assert docker_cleanup.started_at_ns("web-1") == before
    # two approvers click at once, and one of them twice: the first decision wins
    statuses = await asyncio.gather(
        click(h, message, "U111"), click(h, message, "U222"), click(h, message, "U111")
    )
    assert list(statuses) == [200, 200, 200]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert docker_cleanup.started_at_ns("web-1") > before
    assert (
        h.metric(
            "remediator_actions_total",
            policy="restart-web",
            action="docker.restart",
            result="executed",
        )
        == 1
    )
    updated = await eventually(
        lambda: (
            "Approved" in str(slack_api.message(CHANNEL, message["ts"])["blocks"])
            and slack_api.message(CHANNEL, message["ts"])
        ),
        "the message to show the approval",
    )
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]  # no buttons once decided
    [reply] = await eventually(
        lambda: slack_api.thread(CHANNEL, message["ts"]), "the result in the thread"
    )
    assert "executed" in reply["text"] and "web-1" in reply["text"]
    assert len([n for n in slack_api.ephemerals if "already approved" in n["text"]]) == 2


async def test_deny(harness: HarnessFactory, slack_api: SlackAPI) -> None:
    h = await harness(policy(), config(slack_api))
    _decision, message = await request_approval(h, slack_api)
    assert await click(h, message, "U222", "deny") == 200
    await eventually(lambda: h.metric("remediator_approvals_pending") == 0, "the denial")
    assert await h.outcomes() == ["denied"]
    await eventually(
        lambda: "Denied" in str(slack_api.message(CHANNEL, message["ts"])["blocks"]),
        "the denied message",
    )


async def test_two_person_rule_needs_two_distinct_approvers(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(
        policy("approval: always, approvals_required: 2, dry_run: true"), config(slack_api)
    )
    _decision, message = await request_approval(h, slack_api)
    await click(h, message, "U111")
    await eventually(
        lambda: "1 more needed" in str(slack_api.message(CHANNEL, message["ts"])["blocks"]),
        "1 of 2",
    )
    await click(h, message, "U111")
    await eventually(
        lambda: any("already approved" in n["text"] for n in slack_api.ephemerals), "the refusal"
    )
    assert await h.outcomes() == ["awaiting_approval"]
    await click(h, message, "U222")
    await eventually(lambda: h.metric("remediator_approvals_pending") == 0, "the second approval")
    assert await h.outcomes() == ["dry_run"]


async def test_an_expired_approval_never_runs(harness: HarnessFactory, slack_api: SlackAPI) -> None:
    now = [datetime.now(UTC)]
    h = await harness(policy(), config(slack_api), clock=lambda: now[0])
    _decision, message = await request_approval(h, slack_api)
    now[0] += timedelta(minutes=15)
    await h.daemon.approvals.expire_approvals()
    await eventually(
        lambda: "Expired" in str(slack_api.message(CHANNEL, message["ts"])["blocks"]),
        "the expired message",
    )
    await click(h, message, "U111")
    await eventually(
        lambda: any("expired" in n["text"] for n in slack_api.ephemerals), "the refusal"
    )
    assert await h.outcomes() == ["expired"]


async def test_a_resolved_alert_cancels_the_request(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy(), config(slack_api))
    _decision, message = await request_approval(h, slack_api)
    await h.post(alert("web-1", status="resolved"))
    await eventually(
        lambda: "Cancelled" in str(slack_api.message(CHANNEL, message["ts"])["blocks"]),
        "the cancelled message",
    )
    assert await h.outcomes() == ["cancelled"]


async def test_slack_down_leaves_the_approval_usable_through_the_api(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    slack_api.fail_next("chat.postMessage", "channel_not_found")
    h = await harness(policy("approval: always, dry_run: true"), config(slack_api))
    [decision] = (await h.post(alert("web-1")))[1]["decisions"]
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "U111"})
    assert status == 200
    assert await h.outcomes() == ["dry_run"]


async def test_notify_posts_to_the_channel(harness: HarnessFactory, slack_api: SlackAPI) -> None:
    notify = """
name: tell-oncall
match: {matchers: ['alertname="ContainerDown"']}
action: {type: notify, params: {text: "{{ labels.container }} is down: restarting is up to you"}}
"""
    h = await harness(notify, config(slack_api))
    [decision] = (await h.post(alert("web-7")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed"
    assert slack_api.messages(CHANNEL)[-1]["text"] == "web-7 is down: restarting is up to you"


async def test_notify_posts_to_its_own_channel_when_it_names_one(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    notify = """
name: tell-security
match: {matchers: ['alertname="ContainerDown"']}
action: {type: notify, params: {text: "{{ labels.container }} is down", channel: "#security"}}
"""
    h = await harness(notify, config(slack_api))
    [decision] = (await h.post(alert("web-8")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "executed", record
    assert slack_api.messages("#security")[-1]["text"] == "web-8 is down"
    assert slack_api.messages(CHANNEL) == []


async def test_post_results_reports_every_action(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(
        policy("cooldown: 1m"),
        config(slack_api).replace("  api_url:", "  post_results: true\n  api_url:"),
    )
    [decision] = (await h.post(alert("web-missing")))[1]["decisions"]
    record = await h.wait_outcome(decision["id"], {"executed", "failed"})
    assert record["outcome"] == "failed"  # no Docker executor configured here
    [posted] = await eventually(lambda: slack_api.messages(CHANNEL), "the result post")
    assert (
        ":x:" in posted["text"]
        and "web-missing" in posted["text"]
        and "restart-web" in posted["text"]
    )


async def test_a_tripped_breaker_is_announced(harness: HarnessFactory, slack_api: SlackAPI) -> None:
    h = await harness(policy(), config(slack_api))
    await h.daemon.switches.trip("restart-web", "not recovered within 2m: value 0.2 is not < 0.05")
    [posted] = await eventually(lambda: slack_api.messages(CHANNEL), "the breaker message")
    assert "Policy `restart-web` tripped: not recovered within 2m" in posted["text"]
    assert "POST /api/v1/policies/restart-web/reset" in posted["text"]


async def test_a_click_from_another_workspace_is_refused(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(
        policy("approval: always, dry_run: true"),
        config(slack_api).replace("  api_url:", "  team_id: T111\n  api_url:"),
    )
    decision, message = await request_approval(h, slack_api)
    body, headers = slack_api.click(
        SECRET,
        channel=CHANNEL,
        ts=message["ts"],
        action_id="approve",
        user_id="U111",
        team_id="T0FOREIGN",
    )
    resp = await h.client.post("/slack/interactions", data=body, headers=headers)
    assert resp.status == 200  # Slack's contract: acknowledge; the click itself changes nothing
    assert h.metric("remediator_webhook_rejected_total", endpoint="slack", code="403") == 1
    detail = await (await h.client.get(f"/api/v1/approvals/{decision['approval_id']}")).json()
    assert (detail["state"], detail["events"]) == ("pending", [])
    assert await h.outcomes() == ["awaiting_approval"] and not slack_api.ephemerals
    # a payload without any team is foreign too
    body, headers = interaction_request(
        SECRET,
        user_id="U111",
        action_id="approve",
        value=decision["approval_id"],
        channel=CHANNEL,
        message_ts=message["ts"],
        team_id="",
    )
    assert (await h.client.post("/slack/interactions", data=body, headers=headers)).status == 200
    assert h.metric("remediator_webhook_rejected_total", endpoint="slack", code="403") == 2
    assert await click(h, message, "U111") == 200  # our own workspace (T111) is honoured
    await eventually(lambda: h.metric("remediator_approvals_pending") == 0, "the approval")
    assert await h.outcomes() == ["dry_run"]


async def test_a_long_retry_after_fails_the_post_at_once(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    slack_api.rate_limit_next("chat.postMessage", retry_after=3600)
    h = await harness(policy("approval: always, dry_run: true"), config(slack_api))
    started = time.monotonic()
    [decision] = (await h.post(alert("web-1")))[1]["decisions"]
    await eventually(
        lambda: h.daemon.supervisor.spawned == 0 and slack_api.calls_to("chat.postMessage"),
        "the refused post",
    )
    assert time.monotonic() - started < 5
    assert len(slack_api.calls_to("chat.postMessage")) == 1 and not slack_api.messages(CHANNEL)
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "U111"})
    assert status == 200
    assert await h.outcomes() == ["dry_run"]


async def test_a_short_retry_after_is_waited_for(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    slack_api.rate_limit_next("chat.postMessage", retry_after=1)
    h = await harness(policy(), config(slack_api))
    _, message = await request_approval(h, slack_api)
    assert len(slack_api.calls_to("chat.postMessage")) == 2 and message["blocks"]
