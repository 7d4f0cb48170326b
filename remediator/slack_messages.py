"""Slack messages: the approval request (Block Kit, built with slack_sdk's models so Slack's
limits are checked before sending), its status line, and the escaping of alert text in them.

Kept apart from slack.py, the Web API client, because this half is pure text: what a message
says can be built and tested without a client, a token or a network. Every string that came
from an alert (labels, annotations, the generator URL, targets, rendered params) is
untrusted: it is escaped before it goes into mrkdwn, never spliced in raw.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from remediator.core.approval import Approval, ApprovalState
from remediator.core.mrkdwn import NOT_INLINE, escape_mrkdwn

# slack_sdk's package import loads its whole Web API client (about 40 ms of every start), so
# its Block Kit models are imported where a message is built, not with this module: a daemon
# without Slack never loads slack_sdk (tests/unit/test_deferred.py).
if TYPE_CHECKING:
    from slack_sdk.models.blocks import Block, MarkdownTextObject

# The buttons' action_id: web/webhooks.py tells a click's approve from its deny by these.
APPROVE, DENY = "approve", "deny"


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
    from slack_sdk.models.blocks import MarkdownTextObject  # noqa: PLC0415  # see above

    # verbatim: Slack must not auto-link bare URLs or parse "@here"/"#channel" in alert text;
    # our own <…> markup (date, link, mention) is still rendered.
    return MarkdownTextObject(text=_cut_markup(text, limit), verbatim=True)


# --- messages -------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    # Slack renders <!date^...> in each reader's time zone; the fallback is UTC ISO.
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment.isoformat()}>"


def _facts(approval: Approval, context: Mapping[str, Any]) -> list[Block]:
    from slack_sdk.models.blocks import ContextBlock, SectionBlock  # noqa: PLC0415  # see above

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
    from slack_sdk.models.blocks import (  # noqa: PLC0415  # see the imports above
        ActionsBlock,
        ButtonElement,
        ConfirmObject,
        ContextBlock,
        PlainTextObject,
        SectionBlock,
    )

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
