"""The audit API's questions as plain data: the filters of a decisions or operator-events page,
parsed from a query string, and an operator's act as it is recorded. Pure: no I/O.

A filter the caller misspells is refused (AuditQueryError names it), never ignored: an
ignored `?outcome=` answers a different question than the one asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from remediator.core.outcomes import Outcome
from remediator.core.timestamps import parse_rfc3339_ns

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
MAX_ID = 2**63 - 1  # ids are BIGINT on PostgreSQL: a larger cursor is malformed, not a 5xx
_MAX_TEXT = 1000
# An offset's `+` that reached us unencoded in a query string arrives as a space.
_SPACED_OFFSET = re.compile(r" (\d\d:\d\d)$")
# What the operator-events journal records: approve and deny by a person (API token or
# Slack click), and the acts on the daemon itself.
ACTS = ("approve", "deny", "pause", "resume", "reset", "reload")


class AuditQueryError(ValueError):
    """A query parameter that is unknown or malformed: HTTP 400, naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class DecisionQuery:
    """A page of the decision log, newest first: decisions older (lower id) than `before`
    that match every filter given."""

    limit: int = DEFAULT_LIMIT
    policy: str | None = None
    outcome: str | None = None
    target: str | None = None
    since: datetime | None = None
    before: int | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A page of the operator-events journal, newest first."""

    limit: int = DEFAULT_LIMIT
    who: str | None = None
    act: str | None = None
    policy: str | None = None
    since: datetime | None = None
    before: int | None = None


@dataclass(frozen=True, slots=True)
class OperatorEvent:
    """One act of an operator (`who`: `api:NAME`, or a Slack user ID for a click), recorded
    durably with the change it made. `id` is the store's (None before it is written)."""

    time: datetime
    who: str
    act: str
    policy: str | None = None
    decision_id: int | None = None
    approval_id: str | None = None
    detail: str = ""
    id: int | None = None

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "who": self.who,
            "act": self.act,
            "policy": self.policy,
            "decision_id": self.decision_id,
            "approval_id": self.approval_id,
            "detail": self.detail,
        }


def _single(pairs: Iterable[tuple[str, str]], known: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            raise AuditQueryError(name, f"unknown filter; known: {', '.join(known)}")
        if name in found:
            raise AuditQueryError(name, "given more than once")
        found[name] = value
    return found


def _integer(name: str, raw: str, low: int, high: int) -> int:
    # isdigit() alone admits "²" and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise AuditQueryError(name, f"must be an integer from {low} to {high}")
    return int(raw)


def _text(name: str, raw: str) -> str:
    """A value compared as is: not empty, bounded, and storable text (PostgreSQL refuses a
    NUL, and an undecodable byte arrives as a lone surrogate)."""
    if not raw:
        raise AuditQueryError(name, "must not be empty")
    if len(raw) > _MAX_TEXT:
        raise AuditQueryError(name, f"longer than {_MAX_TEXT} characters")
    if "\x00" in raw:
        raise AuditQueryError(name, "contains a NUL character")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise AuditQueryError(name, "is not valid UTF-8") from None
    return raw


def _since(raw: str) -> datetime:
    text = _SPACED_OFFSET.sub(r"+\1", raw.strip()).upper()
    try:
        return parse_rfc3339_ns(text)[0]
    except ValueError:
        raise AuditQueryError(
            "since", "must be an RFC 3339 time such as 2026-11-22T10:00:00Z"
        ) from None


def _limit(given: dict[str, str]) -> int:
    raw = given.get("limit")
    return DEFAULT_LIMIT if raw is None else _integer("limit", raw, 1, MAX_LIMIT)


def _before(given: dict[str, str]) -> int | None:
    raw = given.get("before")
    return None if raw is None else _integer("before", raw, 1, MAX_ID)


def _since_of(given: dict[str, str]) -> datetime | None:
    raw = given.get("since")
    return None if raw is None else _since(raw)


def _text_of(given: dict[str, str], name: str) -> str | None:
    raw = given.get(name)
    return None if raw is None else _text(name, raw)


def _choice(given: dict[str, str], name: str, choices: Iterable[str]) -> str | None:
    raw, allowed = given.get(name), tuple(choices)
    if raw is not None and raw not in allowed:
        raise AuditQueryError(name, f"{raw[:40]!r} is not one of: {', '.join(allowed)}")
    return raw


def parse_decision_query(pairs: Iterable[tuple[str, str]]) -> DecisionQuery:
    """`GET /api/v1/decisions`'s query string (every pair, repeats included)."""
    given = _single(pairs, ("policy", "outcome", "target", "since", "before", "limit"))
    return DecisionQuery(
        limit=_limit(given),
        policy=_text_of(given, "policy"),
        outcome=_choice(given, "outcome", (o.value for o in Outcome)),
        target=_text_of(given, "target"),
        since=_since_of(given),
        before=_before(given),
    )


def parse_event_query(pairs: Iterable[tuple[str, str]]) -> EventQuery:
    """`GET /api/v1/operator-events`'s query string."""
    given = _single(pairs, ("who", "act", "policy", "since", "before", "limit"))
    return EventQuery(
        limit=_limit(given),
        who=_text_of(given, "who"),
        act=_choice(given, "act", ACTS),
        policy=_text_of(given, "policy"),
        since=_since_of(given),
        before=_before(given),
    )


def parse_id(raw: str) -> int:
    """A decision id from a path: a positive integer within BIGINT."""
    return _integer("id", raw, 1, MAX_ID)
