"""The collectors that write their own /metrics lines: the per-policy count families
(remediator_decisions_total, remediator_actions_total) and remediator_policy_tripped.

Apart from metrics.py's registry because they are what a start, a reload and a scrape of
5,000 policies cost: each keeps plain counts or reads its state at scrape time instead of
the client library's labelled children.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from remediator.core.outcomes import FINAL, Outcome

if TYPE_CHECKING:
    from remediator.core.policy import Policy

# What remediator_decisions_total counts: every final outcome (awaiting_approval is a state).
COUNTED = tuple(sorted(FINAL - {Outcome.AWAITING_APPROVAL}))
# What remediator_actions_total counts: an action's result, or why it never ran when its
# turn came (runner: executed/failed after verify, held paused/tripped/cooldown, interrupted).
RESULTS = tuple(
    sorted(
        {
            Outcome.EXECUTED,
            Outcome.FAILED,
            Outcome.INTERRUPTED,
            Outcome.PAUSED,
            Outcome.TRIPPED,
            Outcome.COOLDOWN,
        }
    )
)


# The library's number format (Go's: 1e+06, not 1000000.0), which it leaves unannotated.
_number: Callable[[float], str] = floatToGoString


class _Counts(Collector):
    """A counter family kept as plain counts, with every expected series at 0 from the start:
    made at scrape time from `expected`, not as the client library's labelled children, which
    for 5,000 policies meant tens of thousands of objects and most of a second at every start
    and reload. Only the event loop's thread increments and scrapes, so no lock is needed."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        # text() takes a key's values apart with itemgetter, which returns a 1-tuple as a bare
        # value: every count family has two labels or more.
        assert len(labels) >= 2  # noqa: S101
        self._name, self._documentation, self._labels = name, documentation, labels
        self.counts: dict[tuple[str, ...], float] = {}

    def expected(self) -> Iterable[tuple[str, ...]]:
        raise NotImplementedError

    def add(self, key: tuple[str, ...]) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0.0) + 1.0

    def text(self) -> str:
        """The family in the text format exactly as generate_latest writes it (a test holds the
        two equal byte for byte) at a fraction of its cost: the library makes a sample object
        and checks every label name of each series, 105,000 of them for 5,000 policies, while
        the scrape holds the event loop. Label values are policy names (`[a-z0-9-]+`), action
        types and outcomes: nothing the format escapes."""
        name = self._name + "_total"
        doc = self._documentation.replace("\\", r"\\").replace("\n", r"\n")
        order = sorted(range(len(self._labels)), key=self._labels.__getitem__)
        pairs = ",".join(f'{self._labels[i]}="%s"' for i in order)
        sample = f"{name}{{{pairs}}} %s\n"
        in_order = itemgetter(*order)
        counts = dict(self.counts)
        out = [f"# HELP {name} {doc}\n", f"# TYPE {name} counter\n"]
        for key, value in sorted(counts.items()):
            out.append(sample % (*in_order(key), _number(value)))
        zero = f"{name}{{{pairs}}} 0.0\n"
        out += [zero % in_order(key) for key in self.expected() if key not in counts]
        return "".join(out)

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        counts = dict(self.counts)
        for key, value in sorted(counts.items()):
            family.add_metric(key, value)
        for key in self.expected():
            if key not in counts:
                family.add_metric(key, 0.0)
        yield family


class DecisionCounts(_Counts):
    """remediator_decisions_total{policy,outcome}: every loaded policy's series exists from
    the start (SPEC), at 0 until its first decision."""

    def __init__(self) -> None:
        super().__init__(
            "remediator_decisions",
            "Final decisions per policy and outcome (repeats count as deduplicated).",
            ["policy", "outcome"],
        )
        self.known: tuple[str, ...] = ()

    def expected(self) -> Iterable[tuple[str, ...]]:
        outcomes = [outcome.value for outcome in COUNTED]
        for policy in self.known:
            for outcome in outcomes:
                yield policy, outcome


class ActionCounts(_Counts):
    """remediator_actions_total{policy,action,result}: for every loaded policy, each action
    type it can take (a ladder's steps) with each result, at 0 until it happens, so a rate
    over a replica that never acted is 0, not "no data". The types are read from the policies
    at scrape time: a start or reload of 5,000 policies only keeps the mapping."""

    def __init__(self) -> None:
        super().__init__(
            "remediator_actions",
            "Actions by result: executed, failed, interrupted, or held when their turn came "
            "(paused, tripped, cooldown).",
            ["policy", "action", "result"],
        )
        self.known: Mapping[str, Policy] = {}

    def expected(self) -> Iterable[tuple[str, ...]]:
        results = [result.value for result in RESULTS]
        for name, policy in self.known.items():
            if policy.steps:
                actions: Iterable[str] = dict.fromkeys(step.action.type for step in policy.steps)
            else:
                actions = (policy.action.type,)
            for action in actions:
                for result in results:
                    yield name, action, result


class TrippedGauge(Collector):
    """remediator_policy_tripped{policy}: each loaded policy's breaker, read from the switches
    at scrape time. A labelled Gauge set for each of 5,000 policies at every start and reload
    cost 0.1-0.2 s, and a scrape now cannot see a breaker the switches no longer hold."""

    def __init__(self) -> None:
        self.known: tuple[str, ...] = ()
        self.tripped: Callable[[], AbstractSet[str]] = frozenset

    def watch(self, policies: Iterable[str], tripped: Callable[[], AbstractSet[str]]) -> None:
        self.known, self.tripped = tuple(policies), tripped

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "remediator_policy_tripped",
            "1 while a policy's circuit breaker is open (reset with the API).",
            labels=["policy"],
        )
        tripped = self.tripped()
        for name in self.known:
            family.add_metric((name,), float(name in tripped))
        yield family
