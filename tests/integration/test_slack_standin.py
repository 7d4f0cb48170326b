"""The Slack stand-in driven by the real slack_sdk client and verifier, so that it is held to
Slack's answers rather than to what the daemon expects."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from remediator.config import SlackConfig
from remediator.slack import RETRY_AFTER_CAP_SECONDS, SlackApprover, SlackError
from tests.fixtures.slack_api import SlackAPI, interaction_request

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CH = "C0123"


def button(action_id: str = "approve", **overrides: Any) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": "Approve rollback"},
        "value": "7f3a",
    }
    element.update(overrides)
    return element


# The approval message of PROTOCOLS C.1.
BLOCKS: list[dict[str, Any]] = [
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*HighErrorRate* checkout 14.2% 5xx (prod)"},
    },
    {
        "type": "actions",
        "block_id": "remed:7f3a:v1",
        "elements": [
            button(
                style="primary",
                confirm={
                    "title": {"type": "plain_text", "text": "Roll back checkout?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": "Deployment prod/checkout → previous revision",
                    },
                    "confirm": {"type": "plain_text", "text": "Roll back"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger",
                },
            ),
            button("reject", style="danger", text={"type": "plain_text", "text": "Reject"}),
        ],
    },
]


def actions(*elements: Any, **block: Any) -> list[dict[str, Any]]:
    return [{"type": "actions", "elements": list(elements), **block}]


def make_client(api: SlackAPI, **kwargs: Any) -> AsyncWebClient:
    kwargs.setdefault(
        "retry_handlers",
        [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    kwargs.setdefault("token", api.token)
    return AsyncWebClient(base_url=api.url + "/api/", timeout=5, **kwargs)


@pytest.fixture
def client(slack_api: SlackAPI) -> AsyncWebClient:
    # No shared session: slack_sdk then opens and closes one per call, as the daemon's default.
    return make_client(slack_api)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


async def test_post_message_with_blocks(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    resp = await client.chat_postMessage(channel=CH, text="Approve rollback?", blocks=BLOCKS)

    assert resp["ok"] and resp["channel"] == CH
    ts = resp["ts"]
    assert isinstance(ts, str)
    assert Decimal(ts) > time.time() - 60
    assert resp["message"]["ts"] == ts and resp["message"]["text"] == "Approve rollback?"
    stored = slack_api.message(CH, ts)
    assert stored["blocks"][1] == BLOCKS[1]
    # Slack gives a block_id to every block sent without one; the daemon's own are kept.
    assert isinstance(stored["blocks"][0]["block_id"], str)
    assert slack_api.messages(CH) == [stored]
    call = slack_api.calls[-1]
    assert call.method == "chat.postMessage"
    assert call.headers["content-type"] == "application/json;charset=utf-8"
    assert call.headers["authorization"] == f"Bearer {slack_api.token}"
    assert call.body["blocks"] == BLOCKS


@pytest.mark.parametrize(
    ("blocks", "why"),
    [
        (actions(button(text={"type": "plain_text", "text": "x" * 76})), "button text > 75"),
        (actions(button(value="v" * 2001)), "value > 2000"),
        (actions(button(action_id="a" * 256)), "action_id > 255"),
        (actions(button(style="green")), "style not primary/danger"),
        (
            actions(
                button(
                    confirm={
                        "title": {"type": "plain_text", "text": "t" * 101},
                        "text": {"type": "mrkdwn", "text": "sure?"},
                        "confirm": {"type": "plain_text", "text": "Yes"},
                        "deny": {"type": "plain_text", "text": "No"},
                    }
                )
            ),
            "confirm title > 100",
        ),
        (actions(*[button(f"b{i}") for i in range(26)]), "26 elements"),
        (actions(button("same"), button("same")), "duplicate action_id"),
        (actions(button(acton_id="typo")), "unknown field"),
        (actions(), "no elements"),
        ([{"type": "section", "text": "a bare string"}], "text must be an object"),
        ([{"type": "sektion", "text": {"type": "mrkdwn", "text": "x"}}], "unknown block type"),
        (
            actions(button(), block_id="dup") + actions(button(), block_id="dup"),
            "duplicate block_id",
        ),
        ([{"type": "divider"}] * 51, "more than 50 blocks"),
    ],
)
async def test_invalid_blocks_are_refused(
    slack_api: SlackAPI, client: AsyncWebClient, blocks: list[dict[str, Any]], why: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CH, text="t", blocks=blocks)

    assert caught.value.response["error"] == "invalid_blocks", why
    assert caught.value.response["errors"], why
    assert slack_api.messages(CH) == []


async def test_form_encoded_body_is_accepted(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    resp = await client.api_call(
        "chat.postMessage",
        data={"channel": CH, "text": "form", "blocks": json.dumps(BLOCKS)},
    )

    assert resp["ok"]
    assert slack_api.message(CH, str(resp["ts"]))["blocks"][1] == BLOCKS[1]
    assert slack_api.calls[-1].headers["content-type"] == "application/x-www-form-urlencoded"
    with pytest.raises(SlackApiError) as caught:
        await client.api_call(
            "chat.postMessage", data={"channel": CH, "text": "x", "blocks": "[not json"}
        )
    assert caught.value.response["error"] == "invalid_blocks_format"


async def test_update_keeps_blocks_unless_given(
    slack_api: SlackAPI, client: AsyncWebClient
) -> None:
    ts = str((await client.chat_postMessage(channel=CH, text="pending", blocks=BLOCKS))["ts"])

    resp = await client.chat_update(channel=CH, ts=ts, text="approved by <@W1>")
    assert (resp["ok"], resp["channel"], resp["ts"], resp["text"]) == (
        True,
        CH,
        ts,
        "approved by <@W1>",
    )
    kept = slack_api.message(CH, ts)
    assert kept["text"] == "approved by <@W1>" and kept["blocks"][1] == BLOCKS[1]
    assert "edited" in kept

    done = [
        {"type": "section", "block_id": "remed:7f3a:v2", "text": {"type": "mrkdwn", "text": "Done"}}
    ]
    await client.chat_update(channel=CH, ts=ts, text="done", blocks=done)
    assert slack_api.message(CH, ts)["blocks"] == done

    await client.chat_update(channel=CH, ts=ts, text="cleared", blocks=[])
    assert slack_api.message(CH, ts)["blocks"] == []
    assert [m["ts"] for m in slack_api.messages(CH)] == [ts]


async def test_update_errors(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#ops", text="pending")
    channel_id = str(posted["channel"])
    assert channel_id == slack_api.channel_id("#ops") != "#ops"

    for channel, ts, error in [
        (channel_id, "1.000001", "message_not_found"),
        ("#ops", str(posted["ts"]), "channel_not_found"),  # chat.update wants the ID
    ]:
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel=channel, ts=ts, text="x")
        assert caught.value.response["error"] == error

    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(
            channel=channel_id, ts=str(posted["ts"]), text="x", blocks=actions()
        )
    assert caught.value.response["error"] == "invalid_blocks"
    assert slack_api.message(channel_id, str(posted["ts"]))["text"] == "pending"


async def test_missing_channel_and_text(client: AsyncWebClient) -> None:
    # api_call directly: chat_postMessage itself warns about a missing text before sending.
    cases: list[tuple[dict[str, Any], str]] = [
        ({"text": "x"}, "channel_not_found"),
        ({"channel": CH}, "no_text"),
        ({"channel": CH, "text": "", "blocks": []}, "no_text"),
    ]
    for body, error in cases:
        with pytest.raises(SlackApiError) as caught:
            await client.api_call("chat.postMessage", json=body)
        assert caught.value.response["error"] == error


async def test_ts_are_unique_and_increasing(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    posted = await asyncio.gather(
        *(client.chat_postMessage(channel=CH, text=f"m{i}") for i in range(10))
    )

    assert len({p["ts"] for p in posted}) == 10
    in_arrival = [Decimal(m["ts"]) for m in slack_api.messages(CH)]
    assert all(a < b for a, b in itertools.pairwise(in_arrival))


async def test_thread_replies(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    parent = str((await client.chat_postMessage(channel=CH, text="approval needed"))["ts"])
    first = await client.chat_postMessage(channel=CH, text="approved", thread_ts=parent)
    # A reply to a reply lands in the same thread, under the parent.
    await client.chat_postMessage(channel=CH, text="executed", thread_ts=str(first["ts"]))
    await client.chat_postMessage(channel=CH, text="unrelated")

    assert first["message"]["thread_ts"] == parent
    assert [m["text"] for m in slack_api.thread(CH, parent)] == ["approved", "executed"]
    assert slack_api.message(CH, parent)["reply_count"] == 2
    assert len(slack_api.messages(CH)) == 4
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CH, text="x", thread_ts="1.000002")
    assert caught.value.response["error"] == "invalid_thread_ts"


async def test_ephemeral(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    resp = await client.chat_postEphemeral(channel=CH, user="W111", text="You may not approve this")

    assert resp["ok"] and isinstance(resp["message_ts"], str)
    assert slack_api.ephemerals == [
        {
            "channel": CH,
            "user": "W111",
            "text": "You may not approve this",
            "blocks": [],
            "message_ts": resp["message_ts"],
        }
    ]
    assert slack_api.messages(CH) == []  # ephemerals are not channel history
    with pytest.raises(SlackApiError) as caught:
        await client.api_call("chat.postEphemeral", json={"channel": CH, "text": "x"})
    assert caught.value.response["error"] == "invalid_arguments"


async def test_auth(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    me = await client.auth_test()
    assert me["ok"] and me["user_id"] and me["team_id"] == "T111"

    for token, error in [("xoxb-wrong", "invalid_auth"), (None, "not_authed")]:
        with pytest.raises(SlackApiError) as caught:
            await make_client(slack_api, token=token).chat_postMessage(channel=CH, text="x")
        assert caught.value.response.status_code == 200
        assert caught.value.response["error"] == error

    with pytest.raises(SlackApiError) as caught:
        await client.api_call("conversations.bogus", json={"channel": CH})
    assert caught.value.response["error"] == "unknown_method"
    assert slack_api.messages(CH) == []


async def test_rate_limit_is_retried(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    slack_api.rate_limit_next("chat.postMessage", retry_after=1)

    started = time.monotonic()
    resp = await client.chat_postMessage(channel=CH, text="after a 429")

    assert resp["ok"] and time.monotonic() - started >= 1
    assert len(slack_api.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in slack_api.messages(CH)] == ["after a 429"]


async def test_rate_limit_without_retry_handler(slack_api: SlackAPI) -> None:
    slack_api.rate_limit_next("chat.update", retry_after=30)
    plain = make_client(slack_api, retry_handlers=[])

    with pytest.raises(SlackApiError) as caught:
        await plain.chat_update(channel=CH, ts="1.000001", text="x")

    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "30"
    assert caught.value.response["error"] == "ratelimited"


def approver(api: SlackAPI) -> SlackApprover:
    """The daemon's own client, with its retry handlers, against the stand-in."""
    config = SlackConfig.model_validate(
        {
            "bot_token": api.token,
            "signing_secret": SECRET,
            "channel": CH,
            "api_url": api.url + "/api/",
        }
    )
    return SlackApprover(config)


@pytest.mark.parametrize(
    ("retry_after", "times", "posted", "calls"),
    [
        (3600, 1, False, 1),  # over the cap: refused at once, never slept on
        (int(RETRY_AFTER_CAP_SECONDS) + 1, 1, False, 1),
        (1, 1, True, 2),  # a short wait is honoured
        (0, 5, False, 3),  # and retried a bounded number of times
    ],
)
async def test_the_daemon_caps_retry_after(
    slack_api: SlackAPI, retry_after: int, times: int, posted: bool, calls: int
) -> None:
    slack_api.rate_limit_next("chat.postMessage", retry_after=retry_after, times=times)
    started = time.monotonic()
    if posted:
        await approver(slack_api).post("after a 429")
    else:
        with pytest.raises(SlackError, match=f"rate limited \\(Retry-After {retry_after}s"):
            await approver(slack_api).post("never posted")
    assert time.monotonic() - started < (retry_after + 3 if posted else 3)
    assert len(slack_api.calls_to("chat.postMessage")) == calls
    assert [m["text"] for m in slack_api.messages(CH)] == (["after a 429"] if posted else [])


async def test_fail_next(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    ts = str((await client.chat_postMessage(channel=CH, text="pending"))["ts"])
    slack_api.fail_next("chat.update", "edit_window_closed", times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_update(channel=CH, ts=ts, text="late")
        assert caught.value.response["error"] == "edit_window_closed"
    assert slack_api.message(CH, ts)["text"] == "pending"
    await client.chat_update(channel=CH, ts=ts, text="late")
    assert slack_api.message(CH, ts)["text"] == "late"


async def test_down_and_up(
    slack_api: SlackAPI, client: AsyncWebClient, session: aiohttp.ClientSession
) -> None:
    pooled = make_client(slack_api, session=session)
    await pooled.chat_postMessage(channel=CH, text="keep-alive")

    slack_api.down()
    for each in (client, pooled):
        with pytest.raises(aiohttp.ClientConnectionError):
            await each.chat_postMessage(channel=CH, text="lost")

    slack_api.up()
    for each in (client, pooled):
        assert (await each.chat_postMessage(channel=CH, text="back"))["ok"]
    assert [m["text"] for m in slack_api.messages(CH)] == ["keep-alive", "back", "back"]


async def test_wait_until_async(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    task = asyncio.create_task(client.chat_postMessage(channel=CH, text="later"))
    found = await slack_api.wait_until_async(lambda: slack_api.messages(CH), what="a message")
    await task
    assert found[0]["text"] == "later"


def test_sync_caller(slack_api: SlackAPI) -> None:
    # A daemon running as a subprocess reaches the same server from outside the test's loop.
    request = urllib.request.Request(
        slack_api.url + "/api/chat.postMessage",
        data=b"channel=C9&text=from+a+subprocess",
        headers={"Authorization": f"Bearer {slack_api.token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.load(resp)["ok"]
    messages = slack_api.wait_until(lambda: slack_api.messages("C9"), what="the message")
    assert messages[0]["text"] == "from a subprocess"


def payload_of(body: bytes) -> dict[str, Any]:
    form = parse_qs(body.decode(), strict_parsing=True)
    assert list(form) == ["payload"]
    parsed: dict[str, Any] = json.loads(form["payload"][0])
    return parsed


def test_interaction_request_verifies() -> None:
    body, headers = interaction_request(
        SECRET,
        user_id="W111",
        action_id="approve",
        value="7f3a",
        channel=CH,
        message_ts="1732300000.000100",
        block_id="remed:7f3a:v1",
    )

    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert headers["X-Slack-Signature"] == verifier.generate_signature(
        timestamp=headers["X-Slack-Request-Timestamp"], body=body
    )
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload = payload_of(body)
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "W111" and payload["team"]["id"] == "T111"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1732300000.000100",
        "channel_id": CH,
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == CH and payload["message"]["ts"] == "1732300000.000100"
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "remed:7f3a:v1",
        "7f3a",
        "button",
    )
    assert payload["response_url"].startswith("https://hooks.slack.com/actions/")
    assert payload["trigger_id"] and payload["api_app_id"] and payload["token"]


def test_interaction_request_rejections() -> None:
    verifier = SignatureVerifier(SECRET)
    args: dict[str, Any] = {
        "user_id": "W111",
        "action_id": "approve",
        "value": "7f3a",
        "channel": CH,
        "message_ts": "1.000001",
    }
    body, headers = interaction_request(SECRET, **args)
    assert not verifier.is_valid_request(body.replace(b"7f3a", b"7f3b"), headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    for skew in (-301, 301):
        stale_body, stale = interaction_request(SECRET, timestamp=int(time.time()) + skew, **args)
        assert not verifier.is_valid_request(stale_body, stale)
    edge_body, edge = interaction_request(SECRET, timestamp=int(time.time()) - 290, **args)
    assert verifier.is_valid_request(edge_body, edge)


async def test_click_a_stored_button(slack_api: SlackAPI, client: AsyncWebClient) -> None:
    ts = str((await client.chat_postMessage(channel=CH, text="Approve?", blocks=BLOCKS))["ts"])

    body, headers = slack_api.click(SECRET, channel=CH, ts=ts, action_id="reject", user_id="U222")

    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    payload = payload_of(body)
    (action,) = payload["actions"]
    assert (action["block_id"], action["value"], action["style"]) == (
        "remed:7f3a:v1",
        "7f3a",
        "danger",
    )
    assert action["text"] == {"type": "plain_text", "text": "Reject"}
    assert payload["message"] == slack_api.message(CH, ts)
    with pytest.raises(AssertionError, match="no element"):
        slack_api.click(SECRET, channel=CH, ts=ts, action_id="escalate", user_id="U222")


def test_stored_state_is_a_copy(slack_api: SlackAPI) -> None:
    request = urllib.request.Request(
        slack_api.url + "/api/chat.postMessage",
        data=json.dumps({"channel": CH, "text": "t", "blocks": BLOCKS}).encode(),
        headers={
            "Authorization": f"Bearer {slack_api.token}",
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        ts = json.load(resp)["ts"]
    slack_api.message(CH, ts)["blocks"].clear()
    slack_api.messages(CH)[0]["blocks"].clear()
    assert slack_api.message(CH, ts)["blocks"][1] == BLOCKS[1]
