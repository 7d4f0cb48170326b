"""Slack mrkdwn escaping: what an alert wrote is shown as itself, never parsed as markup.

Pure; here so both templates (notify texts) and the Slack messages use the one rule.
"""

from __future__ import annotations

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_mrkdwn(text: str) -> str:
    """`text` shown as itself in Slack mrkdwn, never parsed as markup.

    Slack's documented escaping (api.slack.com/reference/surfaces/formatting#escaping): `&`,
    `<` and `>` become entities, so no `<!channel>`, `<@U…>` or `<https://…|label>` in it can
    become a mention or a link.
    """
    return text.translate(_ESCAPES)
