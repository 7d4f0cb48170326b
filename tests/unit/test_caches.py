"""Intake's in-memory caches (memory.py) are bounded: a storm of new alerts cannot grow them
past their limit, and the episode cache keeps a 16-byte digest, not the label set."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator import memory as memory_module
from remediator.core.alert import Alert
from remediator.core.guards import Gates
from remediator.core.job import render_job
from remediator.core.judge import Sighting
from remediator.core.policy import Policy, parse_policies
from remediator.memory import DIGESTS, SHARED_SETS, BoundedCache, Memory, labels_digest


def test_a_cache_never_holds_more_than_its_limit() -> None:
    cache: BoundedCache[int, int] = BoundedCache(100)
    for key in range(10_000):
        cache.put(key, key)
        assert len(cache._items) <= 100  # the bound under test
    assert cache.get(9_999) == 9_999  # the newest survive
    assert cache.get(0) is None  # the oldest went


labels = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6)


@given(labels, labels)
def test_the_digest_tells_label_sets_apart(a: dict[str, str], b: dict[str, str]) -> None:
    assert (labels_digest(a) == labels_digest(b)) == (a == b)
    assert len(labels_digest(a)) == 16


def test_the_digest_takes_lone_surrogates() -> None:
    # json.loads (Datadog bodies) keeps them; orjson refuses them, so these take the
    # standard library's text: still one digest per label set.
    assert labels_digest({"a": "\ud800"}) == labels_digest({"a": "\ud800"})
    assert labels_digest({"a": "\ud800"}) != labels_digest({"a": "\ufffd"})
    assert labels_digest({"a": "\ud800"}) != labels_digest({"a": "\\ud800"})
    assert labels_digest({"\udfff": "b"}) != labels_digest({"a": "b"})


def test_the_digest_does_not_confuse_names_and_values() -> None:
    assert labels_digest({"a": "b\x00c"}) != labels_digest({"a": "b", "c": ""})
    assert labels_digest({"ab": "c"}) != labels_digest({"a": "bc"})
    assert labels_digest({"a": "b\x01c\x00d"}) != labels_digest({"a": "b", "c": "d"})


def test_a_firing_and_a_resolved_sighting_of_one_episode_are_remembered_apart() -> None:
    # Firing entries are keyed by the episode text alone (no tuple per entry): a resolved
    # sighting must still be an entry of its own, never an answer for the firing one.
    now = datetime(2026, 12, 1, tzinfo=UTC)
    firing = Alert("alertmanager", "firing", {"alertname": "X"}, {}, now, "fp", "am:fp:1")
    resolved = firing._replace(status="resolved")
    memory = Memory(size=10)
    memory.saw([firing], [], generation=1, unmatched=[0])
    assert memory.known_repeats([firing], Gates(), 1) is not None  # nothing matched: answered
    assert memory.known_repeats([resolved], Gates(), 1) is None  # never seen resolved
    memory.saw([resolved], [], generation=1, unmatched=[0])
    assert memory.known_repeats([resolved], Gates(), 1) is not None


def _policies(*names: str) -> list[Policy]:
    doc = "\n---\n".join(
        f"name: {name}\nmatch: {{matchers: ['alertname=\"X\"']}}\n"
        "action: {type: docker.restart, params: {container: web-1}, allow_targets: [web-*]}"
        for name in names
    )
    policies, problems = parse_policies(doc, "t.yaml")
    assert problems == []
    return policies


def _seen(memory: Memory, alert: Alert) -> tuple[Policy, ...]:
    entry = memory._episodes.get(alert.episode)  # the entry under test
    assert entry is not None
    return entry[1]


def test_entries_that_matched_the_same_policies_share_one_tuple() -> None:
    # A tuple per entry was about a sixth of an entry's memory in a storm.
    now = datetime(2026, 12, 1, tzinfo=UTC)
    one, two = _policies("one", "two")
    alerts = [
        Alert("alertmanager", "firing", {"alertname": "X", "i": str(i)}, {}, now, f"f{i}", f"e{i}")
        for i in range(3)
    ]
    sightings = [
        Sighting(alerts[0], 0, (render_job(one, alerts[0], now), render_job(two, alerts[0], now))),
        Sighting(alerts[1], 1, (render_job(one, alerts[1], now), render_job(two, alerts[1], now))),
        Sighting(alerts[2], 2, (render_job(one, alerts[2], now),)),
    ]
    memory = Memory(size=10)
    memory.saw(alerts, sightings, generation=1)
    assert _seen(memory, alerts[0]) == (one, two)
    assert _seen(memory, alerts[0]) is _seen(memory, alerts[1])
    assert _seen(memory, alerts[2]) == (one,)
    # Another rule set's policies of the same names are not the old set's tuple.
    again_one, again_two = _policies("one", "two")
    memory.saw(
        alerts[:1],
        [
            Sighting(
                alerts[0], 0, tuple(render_job(p, alerts[0], now) for p in (again_one, again_two))
            )
        ],
        generation=2,
    )
    assert _seen(memory, alerts[0])[0] is again_one


def test_the_shared_sets_stay_bounded() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    names = [f"p{i}" for i in range(13)]
    policies = _policies(*names)
    memory = Memory(size=100_000)
    alert = Alert("alertmanager", "firing", {"alertname": "X"}, {}, now, "f", "e")
    jobs = [render_job(p, alert, now) for p in policies]
    # Every subset of 13 policies: more matching sets than SHARED_SETS (8,191 > 4,096).
    for mask in range(1, 2**13):
        chosen = tuple(job for bit, job in enumerate(jobs) if mask >> bit & 1)
        memory.saw([alert], [Sighting(alert, 0, chosen)], generation=1)
        assert len(memory._sets) <= SHARED_SETS + 1  # the bound under test


def test_a_repeats_labels_are_digested_once_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # ingest/bodies.py hands out the same alerts for an unchanged body: their digest is
    # remembered, and equal labels in another mapping still give the same answer.
    now = datetime(2026, 12, 1, tzinfo=UTC)
    alert = Alert("alertmanager", "firing", {"alertname": "X"}, {}, now, "fp", "am:fp:1")
    memory = Memory(size=10)
    memory.saw([alert], [], generation=1, unmatched=[0])
    digested: list[Mapping[str, str]] = []

    def counting(labels: Mapping[str, str]) -> bytes:
        digested.append(labels)
        return labels_digest(labels)

    monkeypatch.setattr(memory_module, "labels_digest", counting)
    for _ in range(3):
        assert memory.known_repeats([alert], Gates(), 1) is not None
    assert len(digested) == 1
    equal = alert._replace(labels=dict(alert.labels))
    assert memory.known_repeats([equal], Gates(), 1) is not None
    assert len(digested) == 2  # another mapping: digested, and the same digest
    other = alert._replace(labels={"alertname": "X", "instance": "b"})
    assert memory.known_repeats([other], Gates(), 1) is None  # same episode, other labels


def test_the_remembered_digests_stay_bounded() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    alert = Alert("alertmanager", "firing", {"alertname": "X"}, {}, now, "fp", "am:fp:1")
    memory = Memory(size=10)
    memory.saw([alert], [], generation=1, unmatched=[0])
    for _ in range(DIGESTS * 3):
        memory.known_repeats([alert._replace(labels={"alertname": "X"})], Gates(), 1)
        assert len(memory._digests) <= DIGESTS  # the bound under test
