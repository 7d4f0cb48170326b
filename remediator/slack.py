"""Slack: approval messages (Block Kit, built with slack_sdk's models so Slack's limits are
checked before sending), their updates, result replies, and request signature checks.

What an approval allows is decided by the engine; this module only talks to Slack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
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
from remediator.errors import RemediatorError

_log = log.get("remediator.slack")
APPROVE, DENY = "approve", "deny"


class SlackError(RemediatorError):
    """Slack refused or could not be reached; approvals still work through the API."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(moment: datetime) -> str:
    # Slack renders <!date^...> in each reader's time zone; the fallback is UTC ISO.
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment.isoformat()}>"


def _facts(approval: Approval, context: Mapping[str, Any]) -> list[Block]:
    labels = context.get("labels") or {}
    label_text = ", ".join(f"`{k}={v}`" for k, v in sorted(labels.items())) or "_none_"
    params = context.get("params") or {}
    param_text = ", ".join(f"{k}=`{v}`" for k, v in sorted(params.items()))
    name = context.get("alertname") or "(no alertname)"
    alert = f"*{name}* ({context.get('status', 'firing')}, {context.get('source', '?')})"
    lines = [
        f"*Alert:* {alert}",
        f"*Labels:* {label_text}",
    ]
    if context.get("summary"):
        lines.append(f"*Summary:* {context['summary']}")
    if context.get("link"):
        lines.append(f"*Source:* <{context['link']}|graph>")
    action = f"*Action:* `{approval.action}` on `{approval.target}`" + (
        f" ({param_text})" if param_text else ""
    )
    policy = f"*Policy:* `{approval.policy}`" + (
        f" — {context['description']}" if context.get("description") else ""
    )
    guards = " ".join(f"✓ {g}" for g in context.get("guards") or [])
    return [
        SectionBlock(text=MarkdownTextObject(text=_cut("\n".join(lines), 3000))),
        SectionBlock(text=MarkdownTextObject(text=_cut(f"{action}\n{policy}", 3000))),
        ContextBlock(elements=[MarkdownTextObject(text=_cut(f"Guards passed: {guards}", 2000))]),
    ]


def request_message(
    approval: Approval, context: Mapping[str, Any], status: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for an approval; buttons only while it is pending."""
    pending = approval.state is ApprovalState.PENDING
    headline = f"Approval needed: {approval.action} {approval.target}"
    top = f":warning: *{headline}*" if pending else f"*{approval.action} {approval.target}*"
    progress = f"{len(approval.approved_by)} of {approval.required} approval(s)"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_cut(top, 3000))),
        *_facts(approval, context),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{progress} · expires {_when(approval.expires_at)} · id `{approval.id}`"
                )
            ]
        ),
    ]
    if status:
        blocks.insert(1, SectionBlock(text=MarkdownTextObject(text=_cut(status, 3000))))
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
                            text=_cut(
                                f"{approval.target} will not be touched for this alert.", 300
                            ),
                            confirm="Deny",
                            deny="Cancel",
                            style="danger",
                        ),
                    ),
                ],
            )
        )
    text = headline if pending else f"{approval.action} {approval.target}: {approval.state.value}"
    return text, [block.to_dict() for block in blocks]


def status_line(approval: Approval, outcome: str | None = None, at: datetime | None = None) -> str:
    """Who decided what, and when, for the top of an updated message."""
    who = ", ".join(f"<@{user}>" for user in approval.approved_by)
    when = f" at {_when(at)}" if at else ""
    if approval.state is ApprovalState.APPROVED:
        return f":white_check_mark: *Approved* by {who}{when}" + (
            f" — {outcome}" if outcome else ""
        )
    if approval.state is ApprovalState.DENIED:
        return f":no_entry: *Denied* by <@{approval.decided_by}>{when}"
    if approval.state is ApprovalState.EXPIRED:
        when = _when(approval.expires_at)
        return f":hourglass: *Expired* at {when}: nobody decided in time; nothing ran"
    if approval.state is ApprovalState.CANCELLED:
        return ":leftwards_arrow_with_hook: *Cancelled*: the alert resolved first; nothing ran"
    missing = approval.required - len(approval.approved_by)
    return f":hourglass_flowing_sand: Approved by {who}; {missing} more needed"


class SlackApprover:
    """The Slack Web API as the engine uses it, plus interaction signature checks."""

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
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
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
            raise SlackError(f"slack {method}: {exc.response.get('error', 'error')}") from None
        except (OSError, TimeoutError) as exc:
            raise SlackError(f"slack {method}: unreachable: {exc}") from None
        data: dict[str, Any] = dict(response.data) if isinstance(response.data, dict) else {}
        return data

    async def post(
        self,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        extra: dict[str, Any] = {"blocks": list(blocks)} if blocks is not None else {}
        if thread_ts:
            extra["thread_ts"] = thread_ts
        data = await self._call("chat.postMessage", channel=self.channel, text=text, **extra)
        return str(data.get("channel", self.channel)), str(data["ts"])

    async def update(
        self, channel: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]]
    ) -> None:
        await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=list(blocks))

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._call("chat.postEphemeral", channel=channel, user=user, text=text)
