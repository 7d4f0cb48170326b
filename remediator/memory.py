"""What intake remembers between webhooks: bounded caches of the episodes the store has seen
and of their claims, so a repeat of a settled episode is answered without a store round trip.

Caches only, never truth: a forgotten entry costs one store round trip, and an entry that
might be stale (an episode reopened by a held action) is dropped, never trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Generic, TypeVar

from remediator import jsontext
from remediator.actions.base import ActionRequest
from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.guards import Gates, settled_repeat
from remediator.core.judge import Decided, Sighting, Verdict
from remediator.core.policy import Policy

K = TypeVar("K")
V = TypeVar("V")
# 50k entries of digests stay within a few MiB, so a storm of new alerts cannot grow memory.
CACHE_SIZE = 50_000
SHARED_SETS = 4_096
# Label sets whose digest is remembered by identity (Memory._digest): as many as the bodies
# ingest/bodies.py keeps, whose alerts are the ones handed out again.
DIGESTS = 256


class BoundedCache(Generic[K, V]):
    """Insertion-ordered map that forgets its oldest half when full: caches only, never truth."""

    get: Callable[[K], V | None]

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[K, V] = {}
        # The dict's own lookup: a hit is a C call, not a Python frame (the repeat path makes
        # one per alert and one per matching policy).
        self.get = self._items.get

    def discard(self, doomed: Callable[[K, V], bool]) -> None:
        """Forget every entry `doomed` names (a scan: for rare events only)."""
        for key in [k for k, v in self._items.items() if doomed(k, v)]:
            del self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self._limit:
            for old in list(self._items)[: self._limit // 2]:
                del self._items[old]


# (labels digest, the policies matched, the generation of the rule set that matched them,
# whether no policy takes the alert)
_Seen = tuple[bytes, tuple[Policy, ...], int, bool]


_EpisodeKey = str | tuple[str, str]


def _episode_key(alert: Alert) -> _EpisodeKey:
    """A firing alert's entry is keyed by its episode text, which the alert already holds; a
    resolved one's by (episode, status). A tuple per entry was 56 of its ~320 bytes, and a
    storm fills the cache with firing ones. A text never equals a tuple: no key is shared."""
    return alert.episode if alert.status == "firing" else (alert.episode, alert.status)


class Memory:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._claims: BoundedCache[tuple[str, str], Claim] = BoundedCache(size)
        # (episode, status) -> (labels, matching policies, unmatched) once the store saw it;
        # see _episode_key
        self._episodes: BoundedCache[_EpisodeKey, _Seen] = BoundedCache(size)
        # One tuple per matching set of the current rule set, shared by every entry that
        # matched it: a tuple per entry was about 64 of its ~390 bytes. By policy names (a
        # Policy does not hash); emptied for a new rule set, so none keeps old policies
        # alive, and when it grows past SHARED_SETS (alerts made to match ever new sets).
        self._sets: dict[tuple[str, ...], tuple[Policy, ...]] = {}
        self._sets_generation = -1
        self._digests: dict[int, tuple[Mapping[str, str], bytes]] = {}

    def settled(self, policy: str, episode: str) -> bool:
        """The policy's claim on the episode is settled (not provisional), as far as known."""
        claim = self._claims.get((policy, episode))
        return claim is not None and not claim.provisional

    def known_repeats(
        self, alerts: Sequence[Alert], gates: Gates, generation: int
    ) -> Decided | None:
        """Every alert a repeat of a settled episode: answer without touching the store.
        `generation`: the rule set in force; what another one matched is not an answer."""
        decided = Decided()
        for position, alert in enumerate(alerts):
            seen = None if alert.cycle else self._episodes.get(_episode_key(alert))
            # Same labels and rule set: the matching set cannot differ (a sender reusing a
            # fingerprint for other labels falls through to the full pipeline).
            if seen is None or seen[2] != generation or seen[0] != self._digest(alert.labels):
                return None
            if seen[3]:
                decided.unmatched.append(position)
            for policy in seen[1]:
                claim = self._claims.get((policy.name, alert.episode))
                stop = None if claim is None else settled_repeat(claim, gates, policy.name)
                if claim is None or stop is None or stop.repeat_of is None:
                    return None
                decided.count_repeat(stop.repeat_of)
                decided.verdicts.append(
                    Verdict(
                        stop.repeat_of,
                        policy.name,
                        alert,
                        claim.action,
                        claim.target,
                        stop.outcome,
                        stop.reason,
                        new=False,
                        position=position,
                    )
                )
        return decided

    def _digest(self, labels: Mapping[str, str]) -> bytes:
        """labels_digest, remembered by identity for the last DIGESTS label sets asked about:
        ingest/bodies.py hands out the same alerts for an unchanged body, so a repeat's labels
        are the same object every time. The mapping is held with its digest, so no other
        object can take its id while it is remembered; alerts are immutable records."""
        known = self._digests.get(id(labels))
        if known is not None and known[0] is labels:
            return known[1]
        digest = labels_digest(labels)
        if len(self._digests) >= DIGESTS:
            del self._digests[next(iter(self._digests))]  # the oldest: insertion order
        self._digests[id(labels)] = (labels, digest)
        return digest

    def saw(
        self,
        alerts: Sequence[Alert],
        matched: Sequence[Sighting],
        generation: int,
        unmatched: Collection[int] = (),
    ) -> None:
        """These alerts' episodes are now in the store (their transaction committed); what
        each matched (under rule set `generation`) comes from the judgement itself (no second
        match). An alert no policy concerns is remembered as matching nothing, and those no
        policy takes as such."""
        if generation != self._sets_generation or len(self._sets) > SHARED_SETS:
            self._sets.clear()
            self._sets_generation = generation
        sets = self._sets
        policies = {}
        for sighting in matched:
            found = tuple(job.policy for job in sighting.jobs)
            policies[sighting.index] = sets.setdefault(tuple(p.name for p in found), found)
        untaken = frozenset(unmatched)
        for position, alert in enumerate(alerts):
            if alert.cycle is None:  # a cycle group is not an episode: never a cache key
                seen = (
                    labels_digest(alert.labels),
                    policies.get(position, ()),
                    generation,
                    position in untaken,
                )
                self._episodes.put(_episode_key(alert), seen)

    def claimed(self, claims: Mapping[tuple[str, str], Claim]) -> None:
        """Committed claims, by (policy, episode)."""
        for key, claim in claims.items():
            self._claims.put(key, claim)

    def reopened(self, request: ActionRequest) -> None:
        """An action held at its turn (paused, tripped) reopened its episode in the store: no
        cached claim may still answer its repeats as settled. Dropping extra entries is safe."""
        self._claims.discard(
            lambda key, claim: key[0] == request.policy and claim.target == request.target
        )


def labels_digest(labels: Mapping[str, str]) -> bytes:
    """16 bytes that stand for a label set in the episode cache (a dict would cost ~1 KiB).
    Their canonical JSON is hashed: JSON's quoting leaves no separator a value could forge."""
    plain = labels if type(labels) is dict else dict(labels)  # orjson encodes dicts only
    canonical = jsontext.dumps_bytes(plain, sort_keys=True)
    return hashlib.blake2b(canonical, digest_size=16).digest()
