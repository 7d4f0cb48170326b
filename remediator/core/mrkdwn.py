"""Slack mrkdwn escaping: what an alert wrote is shown as itself, never parsed as markup.

Pure; here so both templates (notify texts) and the Slack messages use the one rule.
"""

from __future__ import annotations

import re

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Characters that would break one line of a message or reorder what a reader sees: C0/C1
# controls (newlines included) and the Unicode bidi controls.
NOT_INLINE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def escape_mrkdwn(text: str) -> str:
    """`text` shown as itself in Slack mrkdwn, never parsed as markup.

    Slack's documented escaping (api.slack.com/reference/surfaces/formatting#escaping): `&`,
    `<` and `>` become entities, so no `<!channel>`, `<@U…>` or `<https://…|label>` in it can
    become a mention or a link.
    """
    return text.translate(_ESCAPES)


def inline_mrkdwn(text: str) -> str:
    """An untrusted value inside a message's own text (a notify template's `{{ ... }}`):
    escaped, and kept on its line, so an alert can neither add a line that reads as the
    message's own ("Status: resolved") nor reorder what is shown with bidi controls."""
    return escape_mrkdwn(NOT_INLINE.sub(" ", text))
