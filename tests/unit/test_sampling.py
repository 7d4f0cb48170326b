"""The log sampler behind `alert.unmatched`: one line per key per window, the rest counted
and carried on the key's next line, memory bounded by the number of keys."""

from __future__ import annotations

import pytest

from remediator.core.sampling import Admitted, Sampler

# (key, time) events, and what each admit answers: an Admitted to log, or None (held back).
CASES = [
    pytest.param(
        [("A", 0), ("A", 1), ("A", 59.9), ("A", 60), ("A", 61), ("A", 200)],
        [Admitted(0, 0), None, None, Admitted(2, 0), None, Admitted(1, 0)],
        id="first-per-window-then-the-count-on-the-next-line",
    ),
    pytest.param(
        [("A", 0), ("B", 1), ("A", 2), ("B", 3), ("C", 4)],
        [Admitted(0, 0), Admitted(0, 0), None, None, Admitted(0, 0)],
        id="each-key-its-own-window",
    ),
    pytest.param(
        [("A", 0), ("A", 30), ("B", 59)],
        [Admitted(0, 0), None, Admitted(0, 0)],
        id="another-key-does-not-carry-a-count",
    ),
]


@pytest.mark.parametrize(("events", "expected"), CASES)
def test_sampling(events: list[tuple[str, float]], expected: list[Admitted | None]) -> None:
    sampler = Sampler(window=60, keys=10)
    assert [sampler.admit(key, now) for key, now in events] == expected


def test_keys_beyond_the_bound_are_held_back_and_reported_on_the_next_line() -> None:
    sampler = Sampler(window=60, keys=2)
    assert sampler.admit("A", 0) == Admitted(0, 0)
    assert sampler.admit("B", 1) == Admitted(0, 0)
    assert sampler.admit("C", 2) is None  # no room this window: held back, counted
    assert sampler.admit("D", 3) is None
    assert sampler.admit("A", 4) is None
    # A's window ended: room again; A's held-back count was forgotten with it, into others.
    assert sampler.admit("E", 61) == Admitted(0, 3)
    assert sampler.admit("B", 62) == Admitted(0, 0)


def test_a_storm_of_distinct_keys_keeps_memory_bounded() -> None:
    sampler = Sampler(window=60, keys=100)
    logged = sum(sampler.admit(f"name-{i}", i / 1000) is not None for i in range(50_000))
    assert logged == 100
    assert len(sampler._seen) == 100
