"""Datadog webhook bodies (deploy/datadog-webhook-payload.json, or Datadog's default payload)
-> one Alert.

Datadog signs nothing and renders a template: a variable it could not fill arrives as the
literal `$VARIABLE`, and `$TAGS` is one comma-separated string. Fields the daemon needs are
looked up under the template's key and the variable's own name; a body that lacks them is
rejected with a 400 naming them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remediator.core.alert import Alert, Cycle
from remediator.errors import IngestError

FIRING = {
    "Triggered": "start",
    "Warn": "start",
    "No Data": "start",
    "Re-Triggered": "repeat",
    "Re-Warn": "repeat",
    "Re-No Data": "repeat",
    "Renotify": "repeat",
}
RESOLVED = {"Recovered": "end"}
# Datadog's title: "[P1] [Triggered on {host:a,env:b}] Monitor name" (priority optional).
# The transitions a title's tag may name (no one is a prefix of another).
TRANSITIONS = (
    "Re-Triggered",
    "Triggered",
    "Re-Warn",
    "Warn",
    "Re-No Data",
    "No Data",
    "Renotify",
    "Recovered",
)
# `$DATE` is epoch milliseconds; more digits than this is not a date (year > 33658).
_MAX_DATE_DIGITS = 15
_UNREPLACED = re.compile(r"^\$[A-Z][A-Z0-9_]*(\[[^\]]*\])?$")
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
# Template key first, then the variable's own lower-case name (how many people write it).
ALIASES: dict[str, tuple[str, ...]] = {
    "cycle_key": ("cycle_key", "alert_cycle_key"),
    "monitor_id": ("monitor_id", "alert_id"),
    "transition": ("transition", "alert_transition"),
    "title": ("title", "event_title"),
    "monitor_name": ("alert_title", "monitor_name"),
    "alert_type": ("alert_type",),
    "priority": ("priority", "alert_priority"),
    "tags": ("tags",),
    "scope": ("scope", "alert_scope"),
    "hostname": ("hostname", "host"),
    "date": ("date",),
    "event_id": ("event_id", "id"),
    "text": ("text", "body", "event_msg"),
    "query": ("query", "alert_query"),
    "metric": ("metric", "alert_metric"),
    "status": ("status", "alert_status"),
    "link": ("link", "url"),
    "org_id": ("org_id",),
}


def _value(raw: Any) -> str | None:
    """A usable string, or None for absent, JSON null, empty and unreplaced `$VARIABLES`."""
    if raw is None or isinstance(raw, dict | list):
        return None
    text = str(raw).strip()
    if not text or text == "null" or _UNREPLACED.match(text):
        return None
    return text


def _field(body: Mapping[str, Any], name: str) -> str | None:
    for key in ALIASES[name]:
        found = _value(body.get(key))
        if found is not None:
            return found
    if name == "org_id" and isinstance(body.get("org"), dict):  # the default payload nests it
        return _value(body["org"].get("id"))
    return None


def tag_labels(tags: str) -> dict[str, str]:
    """`env:prod,role:db,canary` -> {env: prod, role: db, tag_canary: "true"}.

    Only the first colon splits (`database_id:a:b` keeps `a:b`); names become valid label
    names; a tag repeated with another value keeps the first, as a label has one value.
    """
    labels: dict[str, str] = {}
    for raw in tags.split(","):
        tag = raw.strip()
        if not tag:
            continue
        key, sep, value = tag.partition(":")
        name = _LABEL_NAME.sub("_", key.strip()).strip("_") or "tag"
        if not sep:
            name, value = f"tag_{name}", "true"
        if name[0].isdigit():
            name = f"tag_{name}"
        labels.setdefault(name, value.strip())
    return labels


@dataclass(frozen=True, slots=True)
class Title:
    priority: str  # "P1".."P5", or "" when the title has none
    transition: str
    scope: str  # the `{...}` of "[Triggered on {...}]", or ""
    name: str


def parse_title(title: str) -> Title | None:
    """`[P1] [Triggered on {scope}] name` -> its parts, or None when it has no such tags.

    Hand-written with str methods, each used a bounded number of times, so it is linear in
    the title: the regex it replaces took seconds on a 20 KB title (a webhook body is up
    to 1 MiB, and parsing runs on the event loop). Whitespace is `str.isspace`, as `\\s`.
    """
    rest = title.lstrip()
    priority = ""
    if rest[:2] == "[P" and rest[2:3] in {"1", "2", "3", "4", "5"} and rest[3:4] == "]":
        priority, rest = rest[1:3], rest[4:].lstrip()
    if rest[:1] != "[":
        return None
    rest = rest[1:]
    transition = next((t for t in TRANSITIONS if rest.startswith(t)), None)
    if transition is None:
        return None
    rest = rest[len(transition) :]
    scope = ""
    if rest[:1] != "]":  # only " on {scope}]" may stand between the transition and "]"
        spaced = rest.lstrip()
        if len(spaced) == len(rest) or not spaced.startswith("on"):
            return None
        braced = spaced[2:].lstrip()
        if len(braced) == len(spaced) - 2 or braced[:1] != "{":
            return None
        end = braced.find("}")
        if end < 0 or braced[end + 1 : end + 2] != "]":
            return None
        scope, rest = braced[1:end], braced[end + 1 :]
    return Title(priority, transition, scope, rest[1:].strip())


def _monitor_name(title: str | None) -> str | None:
    """The monitor's name: a title without its leading `[P1] [Triggered on {...}]` tags."""
    if title is None:
        return None
    parsed = parse_title(title)
    return (parsed.name if parsed else title).strip() or None


def _timestamp(date: str | None, now: datetime) -> datetime:
    """`$DATE` (epoch milliseconds), or `now` for anything that is not a plausible one.

    `str.isdigit` alone admits "²" and other non-ASCII digits, and a long digit string
    overflows `datetime`: either would have been an exception (a 500) instead of a date.
    """
    if date is None or not (date.isascii() and date.isdigit()) or len(date) > _MAX_DATE_DIGITS:
        return now
    try:
        return datetime.fromtimestamp(int(date) / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):  # beyond datetime's year 9999
        return now


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_datadog(body: bytes, now: datetime) -> list[Alert]:
    """The one alert of a Datadog notification, or IngestError(400) naming what is missing."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise IngestError(400, "malformed Datadog webhook body: not JSON") from None
    if not isinstance(data, dict):
        raise IngestError(400, "malformed Datadog webhook body: expected a JSON object")
    title = _field(data, "title")
    parsed = parse_title(title) if title else None
    transition = _field(data, "transition") or (parsed.transition if parsed else None)
    missing = []
    if transition is None:
        missing.append('transition ("$ALERT_TRANSITION", or a title like "[Triggered] ...")')
    monitor_id, cycle_key = _field(data, "monitor_id"), _field(data, "cycle_key")
    name = _monitor_name(_field(data, "monitor_name")) or _monitor_name(title)
    if monitor_id is None and cycle_key is None and not name:
        missing.append('monitor ("$ALERT_ID", "$ALERT_CYCLE_KEY" or "$EVENT_TITLE")')
    if missing:
        raise IngestError(400, f"Datadog webhook body lacks {' and '.join(missing)}")
    assert transition is not None  # noqa: S101  # checked just above
    if transition not in FIRING and transition not in RESOLVED:
        known = ", ".join([*FIRING, *RESOLVED])
        raise IngestError(400, f"unknown Datadog transition {transition!r}; known: {known}")

    scope = _field(data, "scope") or (parsed.scope if parsed else "")
    priority = _field(data, "priority") or (parsed.priority if parsed else "")
    labels = tag_labels(_field(data, "tags") or "")
    labels["alertname"] = name or f"monitor {monitor_id}"
    if labels["alertname"].startswith("[TEST]"):
        # Datadog's "Test Notifications" button: policies can exclude it with
        # datadog_test!="true"; the shipped examples do, so a test never restarts anything.
        labels["datadog_test"] = "true"
    for label, value in (
        ("monitor_id", monitor_id),
        ("host", _field(data, "hostname")),
        ("priority", priority),
    ):
        if value:
            labels[label] = value
    annotations = {
        key: value
        for key in (
            "title",
            "text",
            "query",
            "metric",
            "status",
            "link",
            "event_id",
            "org_id",
            "alert_type",
        )
        if (value := _field(data, key)) is not None
    }
    annotations["transition"] = transition
    if scope:
        annotations["scope"] = scope

    org = _field(data, "org_id") or ""
    group = f"m:{monitor_id}:{scope}" if monitor_id else f"t:{org}:{labels['alertname']}:{scope}"
    fingerprint = _digest(group)
    cycle: Cycle | None = None
    if cycle_key is not None:
        episode = f"dd:c:{cycle_key}"  # Datadog's own incident id: stable trigger to resolve
    else:
        episode = f"dd:{group}"  # a group; the store numbers its cycles (see Alert.cycle)
        cycle = "end" if transition in RESOLVED else FIRING[transition]  # type: ignore[assignment]
    return [
        Alert(
            source="datadog",
            status="resolved" if transition in RESOLVED else "firing",
            labels=labels,
            annotations=annotations,
            starts_at=_timestamp(_field(data, "date"), now),
            fingerprint=fingerprint,
            episode=episode,
            generator_url=_field(data, "link") or "",
            cycle=cycle,
        )
    ]
