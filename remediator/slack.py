"""Slack: approval messages (Block Kit, built with slack_sdk's models so Slack's limits are
checked before sending), their updates, result replies, and request signature checks.

What an approval allows is decided by approvals.py; this module only talks to Slack. Every
string that came from an alert (labels, annotations, the generator URL, targets, rendered
params) is untrusted: it is escaped before it goes into mrkdwn, never spliced in raw.
"""

from __future__ import annotations

import asyncio
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from remediator import log
from remediator.config import SlackConfig
from remediator.core.approval import Approval, ApprovalState
from remediator.core.mrkdwn import NOT_INLINE, escape_mrkdwn
from remediator.errors import RemediatorError

_log = log.get("remediator.slack")
APPROVE, DENY = "approve", "deny"
# A 429 is retried only after a Retry-After of at most this many seconds, at most this many
# times: a hostile or broken API saying "Retry-After: 3600" fails the call instead of parking
# it (and whatever awaits it) for an hour.
RETRY_AFTER_CAP_SECONDS = 10.0
RATE_LIMIT_RETRIES = 2


class SlackError(RemediatorError):
    """Slack refused or could not be reached; approvals still work through the API."""


# --- untrusted text in mrkdwn ---------------------------------------------------------------

_NOT_IN_PROSE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_MAX_LINK = 2000


def _cut(text: str, limit: int) -> str:
    """Raw text (not yet escaped) cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_markup(text: str, limit: int) -> str:
    """Finished mrkdwn cut to `limit` characters without leaving half an entity (`&am`) or
    half of our own `<…>` markup; every `<` left in it is ours, alert text is escaped."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    amp = kept.rfind("&")
    if amp >= len(kept) - len("&amp;") and ";" not in kept[amp:]:
        kept = kept[:amp]
    opened = kept.rfind("<")
    if opened != -1 and ">" not in kept[opened:]:
        kept = kept[:opened]
    return kept + "…"


def _line(value: object, limit: int = 300) -> str:
    """An untrusted value on one line: controls become spaces, then cut, then escaped."""
    return escape_mrkdwn(_cut(NOT_INLINE.sub(" ", str(value)), limit))


def code_span(value: object, limit: int = 300) -> str:
    """An untrusted value as inline code. A backtick in it would close the span early and let
    the rest format itself, so it is shown as the look-alike U+02CB."""
    text = _line(value, limit).replace("`", "\u02cb")
    return f"`{text}`" if text.strip() else "_(empty)_"


def _bold(value: object, limit: int = 200) -> str:
    """An untrusted value in bold; a `*` in it (which would end the bold) is shown as U+2217."""
    text = _line(value, limit).replace("*", "\u2217").strip()
    return f"*{text}*" if text else "_(empty)_"


def _quote(value: object, limit: int = 1000) -> str:
    """Untrusted prose (an annotation) as a block quote, so none of its lines can pass for one
    of ours: each line starts with our `>`, its own `>` are escaped."""
    text = _cut(_NOT_IN_PROSE.sub(" ", str(value)), limit)
    return "\n".join(">" + escape_mrkdwn(line) for line in text.split("\n"))


def _unsafe_in_link(char: str) -> bool:
    return (
        char in "|<>"
        or char.isspace()
        or unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
    )


def safe_link(url: str) -> str | None:
    """`url` if Slack may show it as a link: http(s), a host, no userinfo (`ours@evil`), and
    nothing that ends or relabels `<url|label>` (`|`, `<`, `>`, whitespace, controls)."""
    if not url or len(url) > _MAX_LINK or any(_unsafe_in_link(c) for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    if "@" in parts.netloc:
        return None
    return url


def _source(link: object) -> str:
    url = safe_link(link) if isinstance(link, str) else None
    if url is None:
        return f"{code_span(link, 500)} (not linked: not a plain http(s) URL)"
    # In a link only `&` can still be special; Slack decodes &amp; back to `&`.
    return f"<{escape_mrkdwn(url)}|graph> on {code_span(urlsplit(url).netloc)}"


def mention(identity: str) -> str:
    """A Slack user ID as a mention; anything else (api:alice) as text."""
    return f"<@{identity}>" if _SLACK_USER.fullmatch(identity) else code_span(identity, 100)


def _mrkdwn(text: str, limit: int) -> MarkdownTextObject:
    # verbatim: Slack must not auto-link bare URLs or parse "@here"/"#channel" in alert text;
    # our own <…> markup (date, link, mention) is still rendered.
    return MarkdownTextObject(text=_cut_markup(text, limit), verbatim=True)


# --- messages -------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    # Slack renders <!date^...> in each reader's time zone; the fallback is UTC ISO.
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment.isoformat()}>"


def _facts(approval: Approval, context: Mapping[str, Any]) -> list[Block]:
    labels = context.get("labels") or {}
    label_text = ", ".join(code_span(f"{k}={v}") for k, v in sorted(labels.items())) or "_none_"
    params = context.get("params") or {}
    param_text = ", ".join(f"{_line(k, 100)}={code_span(v)}" for k, v in sorted(params.items()))
    name = _bold(context.get("alertname") or "(no alertname)")
    status, source = _line(context.get("status", "firing"), 50), _line(context.get("source", "?"))
    lines = [
        f"*Alert:* {name} ({status}, {source})",
        f"*Labels:* {label_text}",
    ]
    if context.get("summary"):
        lines.append(f"*Summary:*\n{_quote(context['summary'])}")
    if context.get("link"):
        lines.append(f"*Source:* {_source(context['link'])}")
    # A ladder's request names its step (our own text: "step 2 of 3").
    step = f" ({_line(context['step'], 50)})" if context.get("step") else ""
    action = f"*Action{step}:* {code_span(approval.action)} on {code_span(approval.target)}" + (
        f" ({param_text})" if param_text else ""
    )
    # The description is the policy's own text (trusted), escaped all the same.
    policy = f"*Policy:* {code_span(approval.policy)}" + (
        f" — {_line(context['description'], 500)}" if context.get("description") else ""
    )
    guards = " ".join(f"✓ {_line(g, 50)}" for g in context.get("guards") or [])
    return [
        SectionBlock(text=_mrkdwn("\n".join(lines), 3000)),
        SectionBlock(text=_mrkdwn(f"{action}\n{policy}", 3000)),
        ContextBlock(elements=[_mrkdwn(f"Guards passed: {guards}", 2000)]),
    ]


def request_message(
    approval: Approval, context: Mapping[str, Any], status: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for an approval; buttons only while it is pending.

    `status` is our own mrkdwn (from `status_line`); everything in `context` is escaped here.
    """
    pending = approval.state is ApprovalState.PENDING
    what = f"{code_span(approval.action)} on {code_span(approval.target)}"
    top = f":warning: *Approval needed:* {what}" if pending else what
    progress = f"{len(approval.approved_by)} of {approval.required} approval(s)"
    blocks: list[Block] = [
        SectionBlock(text=_mrkdwn(top, 3000)),
        *_facts(approval, context),
        ContextBlock(
            elements=[
                _mrkdwn(
                    f"{progress} · expires {_when(approval.expires_at)} · "
                    f"id {code_span(approval.id)}",
                    2000,
                )
            ]
        ),
    ]
    if status:
        blocks.insert(1, SectionBlock(text=_mrkdwn(status, 3000)))
    if pending:
        # block_id is per approval; the value is the approval's unguessable id, never details.
        blocks.append(
            ActionsBlock(
                block_id=f"remed:{approval.id}",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Approve"),
                        action_id=APPROVE,
                        value=approval.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text=PlainTextObject(text="Deny"),
                        action_id=DENY,
                        value=approval.id,
                        style="danger",
                        confirm=ConfirmObject(
                            title=_cut(f"Deny {approval.action}?", 100),
                            text=_mrkdwn(
                                f"{code_span(approval.target, 200)} will not be touched for this "
                                "alert.",
                                300,
                            ),
                            confirm="Deny",
                            deny="Cancel",
                            style="danger",
                        ),
                    ),
                ],
            )
        )
    # The fallback text is what notifications show: mrkdwn too, so escaped the same way.
    plain = f"{_line(approval.action, 100)} {_line(approval.target)}"
    text = f"Approval needed: {plain}" if pending else f"{plain}: {approval.state.value}"
    return text, [block.to_dict() for block in blocks]


def status_line(approval: Approval, outcome: str | None = None, at: datetime | None = None) -> str:
    """Who decided what, and when, for the top of an updated message.

    `outcome` is the caller's own mrkdwn; anything from an alert in it must be escaped there.
    """
    who = ", ".join(mention(user) for user in approval.approved_by)
    when = f" at {_when(at)}" if at else ""
    if approval.state is ApprovalState.APPROVED:
        return f":white_check_mark: *Approved* by {who}{when}" + (
            f" — {outcome}" if outcome else ""
        )
    if approval.state is ApprovalState.DENIED:
        return f":no_entry: *Denied* by {mention(approval.decided_by or '?')}{when}"
    if approval.state is ApprovalState.EXPIRED:
        when = _when(approval.expires_at)
        return f":hourglass: *Expired* at {when}: nobody decided in time; nothing ran"
    if approval.state is ApprovalState.CANCELLED:
        why = outcome or "the alert resolved first"
        return f":leftwards_arrow_with_hook: *Cancelled*: {why}; nothing ran"
    missing = approval.required - len(approval.approved_by)
    return f":hourglass_flowing_sand: Approved by {who}; {missing} more needed"


# --- the Web API ------------------------------------------------------------------------------


_ABSENT = object()


def retry_after_seconds(headers: Mapping[str, Any]) -> float | None:
    """Retry-After in seconds, 1.0 when absent (Slack always sends it; slack_sdk assumes about
    1 s too); None when it is not a finite number >= 0 (an HTTP date or garbage is not
    something we wait on)."""
    raw: Any = _ABSENT
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
    if raw is _ABSENT:
        return 1.0
    try:
        seconds = float(str(raw).strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class CappedRateLimitRetryHandler(AsyncRetryHandler):
    """slack_sdk's AsyncRateLimitErrorRetryHandler sleeps for whatever Retry-After says.

    This one retries a 429 only when Retry-After is at most `cap_seconds` (1 s when absent, as
    Slack always sends it), at most `max_retry_count` times; a longer or unreadable one is not
    retried, so the call fails at once as a SlackError.
    """

    def __init__(
        self,
        max_retry_count: int = RATE_LIMIT_RETRIES,
        cap_seconds: float = RETRY_AFTER_CAP_SECONDS,
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.cap_seconds = cap_seconds

    def _wait(self, response: HttpResponse | None) -> float | None:
        if response is None or response.status_code != 429:
            return None
        seconds = retry_after_seconds(response.headers)
        return seconds if seconds is not None and seconds <= self.cap_seconds else None

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return self._wait(response) is not None

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = self._wait(response)
        if wait is None:  # only reached after _can_retry_async said yes
            raise error or SlackError("rate limited")
        state.next_attempt_requested = True
        await asyncio.sleep(wait)
        state.increment_current_attempt()


def _refusal(method: str, exc: SlackApiError) -> SlackError:
    response = exc.response
    error = response.get("error", "error") if isinstance(response.data, dict) else "error"
    if response.status_code == 429:
        retry_after = retry_after_seconds(dict(response.headers or {}))
        shown = "?" if retry_after is None else f"{retry_after:g}s"
        _log.warning(
            "slack.rate_limited",
            method=method,
            retry_after=shown,
            cap_seconds=RETRY_AFTER_CAP_SECONDS,
        )
        return SlackError(
            f"slack {method}: rate limited (Retry-After {shown}; we wait at most "
            f"{RETRY_AFTER_CAP_SECONDS:g}s, {RATE_LIMIT_RETRIES} times)"
        )
    return SlackError(f"slack {method}: {error}")


class SlackApprover:
    """The Slack Web API as conversation.py uses it, plus interaction signature checks."""

    def __init__(self, config: SlackConfig) -> None:
        if config.bot_token is None or config.signing_secret is None or not config.channel:
            raise ValueError("slack needs bot_token, signing_secret and channel")
        self.channel = config.channel
        self.approvers = tuple(config.approvers)
        self._client = AsyncWebClient(
            token=config.bot_token.get_secret_value(),
            base_url=config.api_url,
            timeout=10,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                CappedRateLimitRetryHandler(),
            ],
        )
        self._verifier = SignatureVerifier(config.signing_secret.get_secret_value())

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Slack's v0 signature on the raw body, 5-minute window."""
        try:
            return self._verifier.is_valid_request(body, dict(headers))
        except (ValueError, TypeError):  # e.g. a non-numeric X-Slack-Request-Timestamp
            return False

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _refusal(method, exc) from None
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise SlackError(f"slack {method}: unreachable: {exc}") from None
        data: dict[str, Any] = dict(response.data) if isinstance(response.data, dict) else {}
        return data

    async def post(
        self,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> tuple[str, str]:
        """Post `text` (mrkdwn: the caller escapes what came from an alert) and `blocks`, to
        `channel` (default: the configured one)."""
        # No unfurling: a URL an alert chose is never fetched by Slack nor previewed.
        extra: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if blocks is not None:
            extra["blocks"] = list(blocks)
        if thread_ts:
            extra["thread_ts"] = thread_ts
        where = channel or self.channel
        data = await self._call("chat.postMessage", channel=where, text=text, **extra)
        return str(data.get("channel", where)), str(data["ts"])

    async def update(
        self, channel: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]]
    ) -> None:
        await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=list(blocks))

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._call("chat.postEphemeral", channel=channel, user=user, text=text)
