"""Slack: the Web API client (posting, updating and ephemeral replies, with capped
rate-limit retries) and the signature check on interactions.

What an approval allows is decided by approvals.py, and what a message says is built in
slack_messages.py; this module only talks to Slack. The message builders are re-exported
here, as they were defined here before the split, so importers keep one place to look.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from remediator import log
from remediator.config import SlackConfig
from remediator.errors import SlackError
from remediator.slack_messages import (
    APPROVE,
    DENY,
    code_span,
    mention,
    request_message,
    safe_link,
    status_line,
)

__all__ = [
    "APPROVE",
    "DENY",
    "RATE_LIMIT_RETRIES",
    "RETRY_AFTER_CAP_SECONDS",
    "CappedRateLimitRetryHandler",
    "SlackApprover",
    "SlackError",
    "code_span",
    "mention",
    "request_message",
    "retry_after_seconds",
    "safe_link",
    "status_line",
]

_log = log.get("remediator.slack")
# A 429 is retried only after a Retry-After of at most this many seconds, at most this many
# times: a hostile or broken API saying "Retry-After: 3600" fails the call instead of parking
# it (and whatever awaits it) for an hour.
RETRY_AFTER_CAP_SECONDS = 10.0
RATE_LIMIT_RETRIES = 2


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
