"""Byte-identical webhook bodies parsed once.

Alertmanager zeroes `endsAt` on firing alerts, so a group whose alerts have not changed is
sent as the same bytes every `repeat_interval`, on each retry of a failed delivery and by
each peer of an HA cluster that notifies. Parsing such a body is a pure function of its
bytes (Alertmanager's parser reads no clock, unlike Datadog's, which dates an event that
has no date with the time it arrived), and its alerts are immutable, so the alerts of a body
seen recently are handed out again instead of being validated and built anew.

A cache only: what it returns is exactly what the parser would, every body it holds is
small, and it holds few. A body the parser refuses is never held (the error is raised
again each time), and a storm of distinct bodies costs one miss each and no growth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from remediator.core.alert import Alert

# A repeat body worth keeping is a group's worth of alerts; bigger ones are parsed each time.
MAX_BODY_BYTES = 16 * 1024
ENTRIES = 256


class ParsedBodies:
    def __init__(
        self,
        parse: Callable[[bytes], Sequence[Alert]],
        *,
        entries: int = ENTRIES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._parse = parse
        self._entries = entries
        self._max_body_bytes = max_body_bytes
        self._known: dict[bytes, tuple[Alert, ...]] = {}

    def __call__(self, body: bytes) -> tuple[Alert, ...]:
        """The body's alerts, as `parse` gives them (its IngestError included)."""
        if len(body) > self._max_body_bytes:  # not even looked up: hashing a large body costs
            return tuple(self._parse(body))
        known = self._known.get(body)
        if known is not None:
            return known
        alerts = tuple(self._parse(body))
        if len(self._known) >= self._entries:
            del self._known[next(iter(self._known))]  # the oldest: insertion order
        self._known[body] = alerts
        return alerts
