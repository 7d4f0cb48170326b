"""Alertmanager label matchers: `name="value"`, `!=`, `=~`, `!~`, regexes fully anchored.

Semantics follow Alertmanager's `pkg/labels`: a missing label matches as the empty string,
and a regex means `^(?:RE)$` in Go's RE2 syntax. Regexes run on RE2 (google-re2), never on
Python's backtracking `re`: label values come from the network, and RE2 is linear in them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

Op = Literal["=", "!=", "=~", "!~"]

# The matcher *syntax* is parsed with `re` on the policy's own (trusted, short) text; no
# label value from an alert ever reaches these two patterns.
_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER = re.compile(
    rf"""^\s*(?P<name>{_NAME}|"(?:[^"\\]|\\.)*")\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$""",
    re.DOTALL,
)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _options() -> object:
    options = re2.Options()
    options.log_errors = False  # a bad policy regex is reported by `check`, not on stderr
    options.never_capture = True  # only "does it match" is asked; no submatch bookkeeping
    return options


_OPTIONS = _options()


# Characters that are literal in RE2 wherever they stand outside a class: a regex that
# starts with them can only fully match a value that starts with them (see literal_prefix).
_LITERAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:/@=,;%&#~!<>'\" "
)


def literal_prefix(pattern: str) -> str:
    """Text every value the fully anchored `pattern` matches starts with ("" if none known).

    Conservative: the leading run of always-literal characters, less its last character
    when a `?`, `*` or `{` makes that one optional, or when a group follows (a quantifier
    after an empty group binds to it: RE2 matches "" with `a(?i)*`); nothing when the
    pattern has a `|` anywhere (an alternative may start otherwise).
    """
    if "|" in pattern:
        return ""
    end = 0
    while end < len(pattern) and pattern[end] in _LITERAL_CHARS:
        end += 1
    if end < len(pattern) and pattern[end] in "?*{(":
        end -= 1
    return pattern[: max(end, 0)]


class Re2Pattern:
    """A typed wrapper over a compiled google-re2 pattern (the package has no stubs)."""

    __slots__ = ("_compiled", "pattern", "prefix")

    def __init__(self, pattern: str) -> None:
        """Compile `pattern` with Go's RE2 syntax; ValueError says why it cannot be.

        Where Python's `re` and RE2 differ (documented here because policies are often
        written by someone who tested their regex in Python):
        - `\\d`, `\\w`, `\\s`, `\\b` are ASCII-only, as in Go: `\\d` does not match `٣`.
        - No backreferences, lookahead/lookbehind, possessive or atomic groups: an error.
        - `\\Z` does not exist (use `\\z`); `$` without `(?m)` is the end of the text only.
        - `(?P<n>...)` and `(?<n>...)` are accepted (named groups; the name is unused).
        - `.` never matches a newline unless `(?s)`, as Alertmanager compiles without it.
        C++ RE2 accepts `\\C` (any byte); Go's regexp does not, so neither do we.
        The pattern must compile on its own: Alertmanager's string splice `^(?:` + RE + `)$`
        would turn `a)|(b` into "starts with a or ends with b"; here that is an error.
        """
        if _has_any_byte_escape(pattern):
            raise ValueError("\\C (any byte) is not supported by Go's RE2")
        try:
            self._compiled = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise ValueError(str(detail)) from None
        except UnicodeEncodeError:
            raise ValueError("the regex is not valid UTF-8 (a lone surrogate)") from None
        self.pattern = pattern
        self.prefix = literal_prefix(pattern)

    def fullmatch(self, value: str) -> bool:
        """RE2's ANCHOR_BOTH: the same as Go matching `^(?:RE)$`, linear in the value."""
        # A call into google-re2 costs about 3 us, most of it in its Python wrapper; most
        # values a policy regex sees (`svc-17.*` against every alert's service) fail on
        # the first characters. The prefix is ASCII, so replacing lone surrogates (_utf8)
        # cannot change whether the value starts with it.
        if not value.startswith(self.prefix):
            return False
        return self._compiled.fullmatch(_utf8(value)) is not None

    def __repr__(self) -> str:
        return f"Re2Pattern({self.pattern!r})"


def _has_any_byte_escape(pattern: str) -> bool:
    """Whether `pattern` uses `\\C` outside a `\\Q...\\E` literal."""
    index, literal = 0, False
    while index < len(pattern) - 1:
        pair = pattern[index : index + 2]
        if literal:
            literal = pair != "\\E"
            index += 1 if literal else 2
        elif pair == "\\C":
            return True
        else:
            literal = pair == "\\Q"
            index += 2 if pair[0] == "\\" else 1
    return False


def _utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON body may carry a lone surrogate (`"\ud800"`); Go's JSON decoder would
        # have made it U+FFFD, so the regex sees what Alertmanager's would.
        return _SURROGATE.sub("\ufffd", value).encode("utf-8")


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
    _regex: Re2Pattern | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        if self._regex is None:  # only parse_matcher builds regex matchers, always with one
            raise ValueError(f"matcher {self} has no compiled regex")
        hit = self._regex.fullmatch(actual)
        return hit if self.op == "=~" else not hit

    @property
    def required_prefix(self) -> str:
        """For `=~`: text every value it accepts starts with ("" when none is known)."""
        return self._regex.prefix if self.op == "=~" and self._regex is not None else ""

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


# Policy sets repeat matchers (`service=~"web|api"` in thousands of policies), and an RE2
# compile is the dearest part of a parse: each text is parsed once. A Matcher is immutable
# and a compiled RE2 is safe to share, so every policy naming the text gets the same one.
# Failures are not cached (they raise each time). Bounded, as render's template cache.
@functools.lru_cache(maxsize=16_384)
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
            regex = Re2Pattern(value)
        except ValueError as exc:
            raise ValueError(
                f"invalid regex in matcher {text!r}: {exc} (matchers use Go's RE2 syntax)"
            ) from None
    return Matcher(name, op, value, regex)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    # A loop, not all(genexpr): this runs for every candidate, and the generator cost more
    # than the usual one or two matchers it tries.
    for matcher in matchers:  # noqa: SIM110
        if not matcher.matches(labels):
            return False
    return True
