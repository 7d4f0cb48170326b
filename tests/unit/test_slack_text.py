"""Alert text in Slack mrkdwn: escaped as Slack documents, links only when plainly safe,
and Retry-After waits capped. Pure functions, table-driven."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from remediator.core.approval import Approval, ApprovalState
from remediator.core.mrkdwn import escape_mrkdwn
from remediator.slack import (
    CappedRateLimitRetryHandler,
    request_message,
    retry_after_seconds,
    safe_link,
    status_line,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
# What would make Slack ping, link or reformat if it reached mrkdwn raw.
MENTION_OR_LINK = re.compile(r"<[!@#]|<https?:|<javascript:|<mailto:")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("<@U999>", "&lt;@U999&gt;"),
        ("<#C123>", "&lt;#C123&gt;"),
        ("<!subteam^S1>", "&lt;!subteam^S1&gt;"),
        ("<https://evil.example/approve|Approve>", "&lt;https://evil.example/approve|Approve&gt;"),
        ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),  # entities stay text, not markup
        ("*bold* _it_ ~s~ `c`", "*bold* _it_ ~s~ `c`"),  # only the three documented characters
        ("line\nbreak", "line\nbreak"),
    ],
)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("http://prometheus:9090/graph?g0.expr=up&g0.tab=1", True),
        ("https://grafana.example.com/d/abc?orgId=1", True),
        ("HTTPS://EXAMPLE.COM/", True),
        ("https://[::1]:9090/graph", True),
        ("javascript:alert(1)", False),
        ("https://x|<!here>", False),
        ("https://evil.example/approve|Approve", False),
        ("https://x/<!channel>", False),
        ("https://x/a>b", False),
        ("https://x/a b", False),
        ("https://x/a\tb", False),
        ("https://x/a\nb", False),
        ("https://x/a\u00a0b", False),  # no-break space
        ("https://x/\u202eevil", False),  # right-to-left override
        ("https://ours.example@evil.example/", False),  # userinfo passes one host for another
        ("ftp://files.example/x", False),
        ("data:text/html,hi", False),
        ("//evil.example/x", False),
        ("https://", False),
        ("https://x:notaport/", False),
        ("", False),
        ("https://x/" + "a" * 2100, False),
    ],
)
def test_safe_link(url: str, linked: bool) -> None:
    assert (safe_link(url) == url) is linked


def approval(target: str = "web-1", **overrides: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": "a" * 22,
        "decision_id": 1,
        "policy": "restart-web",
        "action": "docker.restart",
        "target": target,
        "state": ApprovalState.PENDING,
        "requested_at": NOW,
        "expires_at": NOW + timedelta(minutes=15),
        "required": 1,
        "approvers": ("U111",),
    }
    fields.update(overrides)
    return Approval(**fields)


HOSTILE_CONTEXT: dict[str, Any] = {
    "alertname": "Down*<!channel>*",
    "status": "firing",
    "source": "alertmanager",
    "labels": {"container": "<@U999>", "<!here>": "x", "tick": "a`*b*`c"},
    "summary": "<!channel> click <https://evil.example/approve|Approve>\n*Action:* fake & more",
    "link": "https://x|<!here>",
    "description": "runbook <!everyone>",
    "params": {"container": "<https://evil.example|web-1>", "timeout": 10},
    "guards": ["scope", "<!here>"],
}


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string of a message, wherever Block Kit nests it."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


@pytest.mark.parametrize("state", [ApprovalState.PENDING, ApprovalState.APPROVED])
def test_a_hostile_alert_cannot_mention_or_link(state: ApprovalState) -> None:
    text, blocks = request_message(
        approval("web-<!here>", state=state, approved_by=("U111",)),
        HOSTILE_CONTEXT,
        status_line(approval(state=state, approved_by=("U111",)), None, NOW),
    )
    texts = mrkdwn_texts(blocks)
    assert texts, blocks
    for shown in [text, *texts]:
        found = MENTION_OR_LINK.findall(shown)
        # our own markup only: the expiry date, and the approver's mention in the status line
        assert set(found) <= {"<!", "<@"}, shown
        assert "<!channel" not in shown and "<!here" not in shown and "<!everyone" not in shown
        assert "<@U999" not in shown and "<https://evil" not in shown, shown
    whole = json.dumps(blocks)
    assert "&lt;!channel&gt;" in whole and "&lt;@U999&gt;" in whole
    assert "&lt;https://evil.example/approve|Approve&gt;" in whole
    assert "&lt;!here&gt;" in text  # the fallback text (notifications) is escaped too


def test_every_mrkdwn_object_is_verbatim() -> None:
    # verbatim: Slack neither auto-links a bare URL nor parses "@here" in alert text.
    _, blocks = request_message(approval(), HOSTILE_CONTEXT)

    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            own = [node] if node.get("type") == "mrkdwn" else []
            return own + [o for v in node.values() for o in objects(v)]
        if isinstance(node, list):
            return [o for v in node for o in objects(v)]
        return []

    found = objects(blocks)
    assert found and all(o.get("verbatim") is True for o in found)


def test_the_summary_is_quoted_so_it_cannot_pass_for_our_lines() -> None:
    _, blocks = request_message(approval(), HOSTILE_CONTEXT)
    facts = blocks[1]["text"]["text"]
    assert "\n>&lt;!channel&gt; click" in facts
    assert "\n>*Action:* fake &amp; more" in facts  # its second line is quoted too
    assert "\n*Action:*" not in facts


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a`*b*`c", "`tick=a\u02cb*b*\u02cbc`"),  # a backtick cannot end our code span (U+02CB)
        ("<@U999>", "`container=&lt;@U999&gt;`"),
        ("x", "`&lt;!here&gt;=x`"),  # label names are alert data too
    ],
)
def test_labels_are_inline_code(value: str, shown: str) -> None:
    _, blocks = request_message(approval(), HOSTILE_CONTEXT)
    assert shown in blocks[1]["text"]["text"]


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
            "*Source:* <http://prometheus:9090/graph?g0.expr=up&amp;g0.tab=1|graph>"
            " on `prometheus:9090`",
        ),
        (
            "javascript:alert(1)",
            "*Source:* `javascript:alert(1)` (not linked: not a plain http(s) URL)",
        ),
        (
            "https://x|<!here>",
            "*Source:* `https://x|&lt;!here&gt;` (not linked: not a plain http(s) URL)",
        ),
    ],
)
def test_the_generator_url_is_a_link_only_when_safe(link: str, expected: str) -> None:
    _, blocks = request_message(approval(), {**HOSTILE_CONTEXT, "link": link})
    assert expected in blocks[1]["text"]["text"]


def test_targets_and_multiline_values_stay_on_one_line() -> None:
    text, blocks = request_message(approval("web-1\n*Approved* by <@U111>"), {})
    top = blocks[0]["text"]["text"]
    assert (
        top
        == ":warning: *Approval needed:* `docker.restart` on `web-1 *Approved* by &lt;@U111&gt;`"
    )
    assert "\n" not in text and "<@" not in text


def test_bold_alertname_cannot_end_our_bold() -> None:
    _, blocks = request_message(approval(), {"alertname": "Down*<!channel>*"})
    assert "*Alert:* *Down\u2217&lt;!channel&gt;\u2217*" in blocks[1]["text"]["text"]


def test_long_alert_text_is_cut_without_half_an_entity() -> None:
    _, blocks = request_message(
        approval(), {"summary": "<" * 5000, "labels": {f"k{i}": "&" * 200 for i in range(40)}}
    )
    for shown in mrkdwn_texts(blocks):
        assert len(shown) <= 3000
        assert not re.search(r"&[a-z]{0,3}…", shown), shown[-20:]


@pytest.mark.parametrize(
    ("who", "shown"),
    [
        ("U111", "<@U111>"),
        ("W0ABC", "<@W0ABC>"),
        ("api:alice", "`api:alice`"),
        ("<!channel>", "`&lt;!channel&gt;`"),
        ("U111> <!here", "`U111&gt; &lt;!here`"),
    ],
)
def test_deciders_are_mentions_only_when_they_are_slack_ids(who: str, shown: str) -> None:
    approved = approval(state=ApprovalState.APPROVED, approved_by=(who,))
    denied = approval(state=ApprovalState.DENIED, decided_by=who)
    assert f"*Approved* by {shown}" in status_line(approved)
    assert f"*Denied* by {shown}" in status_line(denied)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": ["3"]}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": ["1.5"]}, 1.5),
        ({"Retry-After": ["3600"]}, 3600.0),
        ({}, 1.0),  # absent: Slack always sends it; a short pause as slack_sdk assumes
        ({"Retry-After": ["-1"]}, None),
        ({"Retry-After": ["nan"]}, None),
        ({"Retry-After": ["inf"]}, None),
        ({"Retry-After": ["Wed, 21 Oct 2026 07:28:00 GMT"]}, None),
        ({"Retry-After": ["soon"]}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, Any], seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


REQUEST = HttpRequest(method="POST", url="https://slack.test/api/chat.postMessage", headers={})


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "retried"),
    [
        (429, "1", 0, True),
        (429, "10", 0, True),
        (429, "11", 0, False),  # over the cap: fail now, never sleep on it
        (429, "3600", 0, False),
        (429, "garbage", 0, False),
        (429, "1", 2, False),  # retries are bounded
        (500, "1", 0, False),
        (200, "1", 0, False),
    ],
)
async def test_the_rate_limit_retry_is_capped(
    status: int, retry_after: str, attempt: int, retried: bool
) -> None:
    handler = CappedRateLimitRetryHandler(max_retry_count=2, cap_seconds=10)
    response = HttpResponse(status_code=status, headers={"Retry-After": retry_after})
    state = RetryState(current_attempt=attempt)
    assert await handler.can_retry_async(state=state, request=REQUEST, response=response) is retried


async def test_the_retry_waits_what_slack_asked() -> None:
    handler = CappedRateLimitRetryHandler(cap_seconds=10)
    response = HttpResponse(status_code=429, headers={"Retry-After": "0"})
    state = RetryState()
    await handler.prepare_for_next_attempt_async(state=state, request=REQUEST, response=response)
    assert state.next_attempt_requested and state.current_attempt == 1
