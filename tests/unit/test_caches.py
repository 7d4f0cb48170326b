"""Intake's in-memory caches (memory.py) are bounded: a storm of new alerts cannot grow them
past their limit, and the episode cache keeps a 16-byte digest, not the label set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from remediator.core.alert import Alert
from remediator.core.guards import Gates
from remediator.memory import BoundedCache, Memory, labels_digest


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
    resolved = replace(firing, status="resolved")
    memory = Memory(size=10)
    memory.saw([firing], [], generation=1, unmatched=[0])
    assert memory.known_repeats([firing], Gates(), 1) is not None  # nothing matched: answered
    assert memory.known_repeats([resolved], Gates(), 1) is None  # never seen resolved
    memory.saw([resolved], [], generation=1, unmatched=[0])
    assert memory.known_repeats([resolved], Gates(), 1) is not None
