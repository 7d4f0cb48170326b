"""Log sampling for events an attacker or a storm can repeat at will (`alert.unmatched`):
the first event per key per window passes, the others are counted and their number rides
on the key's next line. Pure: the clock is passed in; memory is bounded by `keys`.
"""

from __future__ import annotations

from typing import NamedTuple


class Admitted(NamedTuple):
    """An event to log: how many of its key were held back since the key's last line, and
    how many of other keys were held back without a line of their own to report them (a
    key forgotten to make room, or one over `keys` in a window)."""

    suppressed: int
    others: int


class Sampler:
    """At most one event per key per `window` seconds, and at most `keys` keys a window."""

    __slots__ = ("_keys", "_others", "_seen", "_window")

    def __init__(self, window: float = 60.0, keys: int = 1000) -> None:
        self._window = window
        self._keys = keys
        # key -> [window start, held back]; ordered by window start (re-inserted on reset),
        # so the oldest windows are always at the front.
        self._seen: dict[str, list[float]] = {}
        self._others = 0

    def admit(self, key: str, now: float) -> Admitted | None:
        """None: hold this event back (counted). Else log it, with the counts it carries."""
        entry = self._seen.get(key)
        if entry is not None:
            if now - entry[0] < self._window:
                entry[1] += 1
                return None
            del self._seen[key]
            held = int(entry[1])
        else:
            held = 0
            if len(self._seen) >= self._keys and not self._forget_expired(now):
                self._others += 1
                return None
        self._seen[key] = [now, 0]
        others, self._others = self._others, 0
        return Admitted(held, others)

    def _forget_expired(self, now: float) -> bool:
        """Drop the keys whose window has ended (their held-back counts go to `others`);
        whether room was made."""
        while self._seen:
            key, (start, held) = next(iter(self._seen.items()))
            if now - start < self._window:
                break
            del self._seen[key]
            self._others += int(held)
        return len(self._seen) < self._keys
