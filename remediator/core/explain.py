"""Why a policy does not match an alert: the first of its source, matchers and status that
fails, as one line an operator can read (`simulate`, the daemon's debug log). Pure.

Label values come from the network: what is shown of one is cut to a bounded length and
escaped so that it stays on its line (newlines, control, format and separator characters
become `\\uXXXX`) and cannot pose as another part of the line (quotes are escaped).
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

from remediator.core.alert import Alert
from remediator.core.policy import Policy

SHOWN_CHARS = 64  # of a label value; the rest becomes "..."
# Unicode categories that would break or disguise a line: controls (Cc, incl. \n \r \x85),
# format characters (Cf: bidi overrides, zero-width), line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(value: str, limit: int = SHOWN_CHARS, quotes: str = "") -> str:
    """`value` escaped onto one line, at most `limit` of its characters (then a note of
    how many there were); `quotes` and the backslash are escaped too when given."""
    special = quotes + "\\" if quotes else ""
    out = []
    for char in value[:limit]:
        if char in special:
            out.append("\\" + char)
        elif char.isascii() and char.isprintable():
            out.append(char)
        elif char in _SHORT:
            out.append(_SHORT[char])
        elif unicodedata.category(char) in _HIDDEN:
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    if len(value) > limit:
        out.append(f"... ({len(value)} characters)")
    return "".join(out)


def shown(value: str, limit: int = SHOWN_CHARS) -> str:
    """`value` as a double-quoted one-line string, at most `limit` of its characters."""
    text = one_line(value[:limit], limit, quotes='"')
    suffix = f"... ({len(value)} characters)" if len(value) > limit else ""
    return f'"{text}"{suffix}'


class Miss(NamedTuple):
    """What failed (`source`, `status`, or a matcher as written) and what the alert has."""

    failed: str
    detail: str

    def __str__(self) -> str:
        return f"{self.failed} ({self.detail})"


def why_not(policy: Policy, alert: Alert) -> Miss | None:
    """None when `policy` matches `alert`; else the first check that fails, in the order
    source, matchers (as written), status. A missing label reads as "" (Alertmanager)."""
    match = policy.match
    if match.source not in ("any", alert.source):
        return Miss("source", f"the alert is from {alert.source}, the policy takes {match.source}")
    for matcher in match.matchers:
        if not matcher.matches(alert.labels):
            value = alert.labels.get(matcher.name)
            has = "not set" if value is None else f"is {shown(value)}"
            return Miss(str(matcher), f"{matcher.name} {has}")
    if match.status != alert.status:
        return Miss("status", f"the alert is {alert.status}, the policy takes {match.status}")
    return None
