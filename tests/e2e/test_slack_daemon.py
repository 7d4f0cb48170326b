"""Slack approvals in the daemon as a subprocess: an approval survives kill -9 (and a Slack
outage) and stays approvable; no forged or random interaction ever makes anything run."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.daemon import Daemon, DaemonFactory
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.procs import wait_for
from tests.fixtures.slack_api import SlackAPI, interaction_request

SECRET = "slack-signing-secret-0123456789"
CHANNEL = "C0123456"
POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action:
  type: docker.restart
  params: {container: "{{ labels.container }}", timeout: 1s}
  allow_targets: ["web-*"]
guards: {approval: always}
verify: {within: 20s}
"""
ALERT = {
    "alerts": [
        {
            "labels": {"alertname": "ContainerDown", "container": "web-s"},
            "startsAt": "2026-11-22T10:00:00Z",
        }
    ]
}


def slack_config(slack: SlackAPI) -> dict[str, Any]:
    return {
        "bot_token": slack.token,
        "signing_secret": SECRET,
        "channel": CHANNEL,
        "approvers": ["U111"],
        "api_url": f"{slack.url}/api/",
    }


def post_interaction(daemon: Daemon, body: bytes, headers: dict[str, str]) -> int:
    status, _ = daemon.request("POST", "/slack/interactions", body, headers)
    return status


def test_an_approval_survives_kill_9_and_a_slack_outage(
    daemon_factory: DaemonFactory, slack_api: SlackAPI, docker_cleanup: DockerEngine
) -> None:
    docker_cleanup.run("web-s")
    before = docker_cleanup.started_at_ns("web-s")
    daemon = daemon_factory(
        POLICY, slack=slack_config(slack_api), docker={"url": docker_cleanup.url}
    )
    daemon.start()
    slack_api.down()  # the approval is committed, but its message cannot be posted
    [decision] = daemon.webhook(ALERT)[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    wait_for(lambda: daemon.events("approval.announce_failed"), timeout=30, what="the failed post")
    daemon.kill9()
    slack_api.up()
    daemon.start()  # a pending approval without a message is announced at start
    [message] = wait_for(
        lambda: slack_api.messages(CHANNEL), timeout=30, what="the approval message"
    )
    value = next(
        e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    )
    assert value == decision["approval_id"]
    body, headers = interaction_request(
        SECRET,
        user_id="U111",
        action_id="approve",
        value=value,
        channel=CHANNEL,
        message_ts=message["ts"],
    )
    assert post_interaction(daemon, body, headers) == 200
    wait_for(
        lambda: [d for d in daemon.decisions() if d["outcome"] == "executed"],
        timeout=40,
        what="the restart",
    )
    assert docker_cleanup.started_at_ns("web-s") > before
    wait_for(
        lambda: slack_api.thread(CHANNEL, message["ts"]),
        timeout=20,
        what="the result in the thread",
    )


def _user() -> st.SearchStrategy[str]:
    return st.sampled_from(["U111", "U999", "", "u111", "U111 ", "W111"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_nothing_executes_without_a_valid_signature_and_an_allowed_user(
    daemon_factory: DaemonFactory, slack_api: SlackAPI, data: st.DataObject
) -> None:
    state = test_nothing_executes_without_a_valid_signature_and_an_allowed_user.__dict__
    if "daemon" not in state:  # one daemon for every example: state accumulates on purpose
        daemon = daemon_factory(
            POLICY, slack=slack_config(slack_api), docker={"url": "unix:///nonexistent.sock"}
        )
        daemon.start()
        [decision] = daemon.webhook(ALERT)[1]["decisions"]
        [message] = wait_for(
            lambda: slack_api.messages(CHANNEL), timeout=30, what="the approval message"
        )
        state.update(daemon=daemon, approval=decision["approval_id"], ts=message["ts"])
    daemon, approval, ts = state["daemon"], state["approval"], state["ts"]
    kind = data.draw(st.sampled_from(["noise", "forged", "random-user", "bad-value"]))
    action = data.draw(st.sampled_from(["approve", "deny", "other"]))
    if kind == "noise":  # anything at all: no valid signature can arise by chance
        body = data.draw(st.binary(max_size=400))
        headers = data.draw(
            st.dictionaries(
                st.sampled_from(["X-Slack-Signature", "X-Slack-Request-Timestamp", "Content-Type"]),
                # what an HTTP/1.1 header can carry: Latin-1, no line breaks
                st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40),
            )
        )
    elif kind == "forged":  # an approver's click, signed with the wrong secret
        wrong = SECRET + data.draw(st.text(min_size=1, max_size=10))
        body, headers = interaction_request(
            wrong, user_id="U111", action_id=action, value=approval, channel=CHANNEL, message_ts=ts
        )
    elif kind == "random-user":  # correctly signed, by someone who is not an approver
        user = data.draw(_user().filter(lambda u: u != "U111"))
        body, headers = interaction_request(
            SECRET, user_id=user, action_id=action, value=approval, channel=CHANNEL, message_ts=ts
        )
    else:  # an approver clicking something that is not this approval
        value = data.draw(st.text(max_size=30).filter(lambda v: v != approval))
        body, headers = interaction_request(
            SECRET, user_id="U111", action_id=action, value=value, channel=CHANNEL, message_ts=ts
        )
    status = post_interaction(daemon, body, headers)
    if kind == "noise":  # aiohttp itself answers 400 to malformed headers (control characters)
        assert status in (400, 401), status
    else:
        assert status == (401 if kind == "forged" else 200), (kind, status)
    with urllib.request.urlopen(f"{daemon.url}/api/v1/approvals/{approval}", timeout=5) as resp:
        assert json.loads(resp.read())["state"] == "pending"
    outcomes = [d["outcome"] for d in daemon.decisions()]
    assert outcomes == ["awaiting_approval"]
