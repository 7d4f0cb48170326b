"""Alertmanager label matchers: `name="value"`, `!=`, `=~`, `!~`, regexes fully anchored.

Semantics follow Alertmanager's `pkg/labels`: a missing label matches as the empty string,
and a regex is compiled as `^(?:RE)$`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]

_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER = re.compile(
    rf"""^\s*(?P<name>{_NAME}|"(?:[^"\\]|\\.)*")\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$""",
    re.DOTALL,
)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _unquote(text: str) -> str:
    """Undo Alertmanager's quoting: `\\"`, `\\\\` and `\\n` are the only escapes."""
    if not (len(text) >= 2 and text[0] == '"' and text[-1] == '"'):
        if '"' in text:
            raise ValueError(f"unbalanced quotes in {text!r}")
        return text
    out: list[str] = []
    chars = iter(text[1:-1])
    for char in chars:
        if char == '"':
            raise ValueError(f"unescaped quote inside {text!r}")
        if char == "\\":
            nxt = next(chars, None)
            if nxt is None or nxt not in _ESCAPES:
                raise ValueError(f"invalid escape sequence in {text!r}")
            out.append(_ESCAPES[nxt])
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        if self._regex is None:  # only parse_matcher builds regex matchers, always with one
            raise ValueError(f"matcher {self} has no compiled regex")
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; ValueError says what is wrong with it."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f'invalid matcher {text!r}: expected name="value" with =, !=, =~ or !~')
    name = _unquote(found["name"])
    op: Op = found["op"]  # type: ignore[assignment]  # the regex only admits the four ops
    value = _unquote(found["value"])
    regex = None
    if op in ("=~", "!~"):
        try:
            # Alertmanager compiles `^(?:RE)$` without (?s); fullmatch is the same anchoring.
            regex = re.compile(f"(?:{value})")
        except re.error as exc:
            raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
    return Matcher(name, op, value, regex)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
