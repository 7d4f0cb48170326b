"""Dedup by firing episode: one decision per (policy, episode), repeats counted, not re-decided."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Claim(NamedTuple):
    """The decision that settled (or, if provisional, paused) one (policy, episode)."""

    decision_id: int
    outcome: str
    provisional: bool
    action: str
    target: str
    dedup_decision_id: int | None = None


class Seen(Enum):
    NEW = "new"  # never decided: run every guard
    REPEAT = "repeat"  # settled: count it on the episode's `deduplicated` record
    HELD = "held"  # provisional and the same gate still holds: count it on that record
    REDECIDE = "redecide"  # provisional but the gate has lifted: decide afresh


def classify(claim: Claim | None, gate_still_holds: bool) -> Seen:
    """`gate_still_holds`: the pause or breaker that made the claim provisional is still on."""
    if claim is None:
        return Seen.NEW
    if not claim.provisional:
        return Seen.REPEAT
    return Seen.HELD if gate_still_holds else Seen.REDECIDE
