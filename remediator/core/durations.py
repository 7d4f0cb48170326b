"""Prometheus-style durations (`10s`, `1h30m`) and rates (`3/1h`). Pure parsing only.

Absurd values are refused here, so a templated duration can never overflow `timedelta` later.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
# Units must appear largest first and at most once, as in Prometheus (`1h30m`, not `30m1h`).
_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?"
    r"(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
# Longer than anything a policy or config means; also keeps every sum inside timedelta's range.
MAX_DURATION = timedelta(days=3650)
# An action's own `timeout` (http.request, docker.restart): bounded so that a hung hook or
# daemon cannot hold an action slot (and the target's lock) for ever.
MAX_ACTION_TIMEOUT = timedelta(minutes=10)
_RATE = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<window>\S+)\s*$")


@functools.lru_cache(maxsize=256)  # policies render the same few values for every alert
def parse_duration(text: str) -> timedelta:
    """`10s`, `5m`, `1h30m`, `250ms` → timedelta. Raises ValueError with a readable reason."""
    value = text.strip()
    # Bounded before int(): a 5000-digit number is refused by length, not by int()'s own limit.
    match = _DURATION.match(value) if len(value) <= 64 else None
    if not value or match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m")
    ms = 0
    for unit, amount in match.groupdict().items():
        if amount:
            ms += int(amount) * (_UNITS[unit] // timedelta(milliseconds=1))
    if ms > MAX_DURATION // timedelta(milliseconds=1):
        raise ValueError(f"invalid duration {text!r}: longer than 10 years")
    return timedelta(milliseconds=ms)


def parse_timeout(text: str) -> timedelta:
    """An action's `timeout` param: longer than zero and at most MAX_ACTION_TIMEOUT."""
    value = parse_duration(text)
    if not timedelta(0) < value <= MAX_ACTION_TIMEOUT:
        raise ValueError(
            f"timeout {text.strip()!r} must be longer than 0s and at most "
            f"{format_duration(MAX_ACTION_TIMEOUT)} (MAX_ACTION_TIMEOUT)"
        )
    return value


def format_duration(delta: timedelta) -> str:
    """The shortest Prometheus-style spelling of `delta` (for messages and the API)."""
    ms = delta // timedelta(milliseconds=1)
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = _UNITS[unit] // timedelta(milliseconds=1)
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events in any sliding `window`."""

    count: int
    window: timedelta

    def __str__(self) -> str:
        return f"{self.count}/{format_duration(self.window)}"


def parse_rate(text: str) -> Rate:
    """`3/1h` → Rate(3, 1h). A zero count is allowed and means "never"."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"invalid rate {text!r}: expected COUNT/DURATION, e.g. 3/1h")
    window = parse_duration(match["window"])
    if window <= timedelta(0):
        raise ValueError(f"invalid rate {text!r}: the window must be longer than zero")
    return Rate(int(match["count"]), window)
