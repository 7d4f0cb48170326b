"""The daemon's own Prometheus metrics, one per question an operator asks.

Labels come only from bounded sets (policy names, outcomes, action types, sources),
never from alert label values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from remediator.core.outcomes import FINAL, Outcome

if TYPE_CHECKING:
    from remediator.core.policy import Policy

# `_created` series double the exposition and no dashboard or rule reads them. The switch is
# the client library's, process-wide and read at scrape time: importing this module is
# enough, in the daemon and in tests alike.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

SOURCES = ("alertmanager", "datadog")
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


class _Registry(CollectorRegistry):
    """Keeps its collectors in registration order, the order generate_latest writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self.order.append(collector)


class Metrics:
    def __init__(self) -> None:
        self.registry = _Registry()
        r = self.registry
        self.alerts_received = Counter(
            "remediator_alerts_received_total",
            "Alerts received in webhooks, by sender and alert status.",
            ["source", "status"],
            registry=r,
        )
        self.alerts_unmatched = Counter(
            "remediator_alerts_unmatched_total",
            "Alerts received that no policy takes (log event alert.unmatched), by sender.",
            ["source"],
            registry=r,
        )
        for source in SOURCES:  # both series exist from start, at 0
            self.alerts_unmatched.labels(source)
        self.decisions = DecisionCounts()
        r.register(self.decisions)
        self.actions = ActionCounts()
        r.register(self.actions)
        self.action_duration = Histogram(
            "remediator_action_duration_seconds",
            "Time from starting an action to its verified result.",
            ["action"],
            buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.approvals_pending = Gauge(
            "remediator_approvals_pending", "Approval requests waiting for a decision.", registry=r
        )
        self.webhook_duration = Histogram(
            "remediator_webhook_request_duration_seconds",
            "Time to answer a webhook, including the commit of its decisions.",
            ["endpoint"],
            registry=r,
        )
        self.webhook_rejected = Counter(
            "remediator_webhook_rejected_total",
            "Webhook requests refused before any decision, by endpoint and HTTP status.",
            ["endpoint", "code"],
            registry=r,
        )
        self.policies_loaded = Gauge(
            "remediator_policies_loaded", "Policies loaded and active.", registry=r
        )
        self.reload_successful = Gauge(
            "remediator_config_last_reload_successful",
            "1 when the last config reload (or the start) applied, 0 when it was refused.",
            registry=r,
        )
        self.reload_success_time = Gauge(
            "remediator_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded (start or the last applied reload).",
            registry=r,
        )
        self.paused = Gauge(
            "remediator_paused", "1 while the global kill switch is on.", registry=r
        )
        self.policy_tripped = TrippedGauge()
        r.register(self.policy_tripped)
        self.approval_decisions = Counter(
            "remediator_approval_decisions_total",
            "Approval requests settled, by decision (approved, denied, expired, cancelled).",
            ["policy", "decision"],
            registry=r,
        )
        self.approval_latency = Histogram(
            "remediator_approval_latency_seconds",
            "Time from an approval request to a human's decision.",
            buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=r,
        )
        self.backend_up = Gauge(
            "remediator_backend_up",
            "1 when the last probe of a backend (docker, kubernetes, store, ...) succeeded.",
            ["backend"],
            registry=r,
        )

        # labels() costs a lock and a tuple hash per call; the hot path keeps its children.
        self._children: dict[tuple[str, ...], Any] = {}

    def exposition(self) -> bytes:
        """The /metrics page: what generate_latest(registry) writes, with the per-policy count
        families written by their own text()."""
        return b"".join(
            part.text().encode() if isinstance(part, _Counts) else generate_latest(part)
            for part in self.registry.order
        )

    def policies(self, by_name: Mapping[str, Policy]) -> None:
        """The loaded policies: their count, and each one's decision and action series from
        the start (a rate over a series that appears with its first event misses that event)."""
        self.policies_loaded.set(len(by_name))
        self.decisions.known = tuple(by_name)
        self.actions.known = by_name

    def received(self, source: str, status: str) -> Counter:
        return self._child(self.alerts_received, "received", source, status)  # type: ignore[no-any-return]

    def unmatched(self, source: str) -> Counter:
        return self._child(self.alerts_unmatched, "unmatched", source)  # type: ignore[no-any-return]

    def decided(self, policy: str, outcome: str) -> None:
        """One more decision of `policy` with `outcome`."""
        counts = self.decisions.counts  # inline: this runs once per alert
        key = (policy, outcome)
        counts[key] = counts.get(key, 0.0) + 1.0

    def acted(self, policy: str, action: str, result: str) -> None:
        """One more action of `policy` (of type `action`) that ended with `result`."""
        self.actions.add((policy, action, str(result)))

    def webhook_timer(self, endpoint: str) -> Histogram:
        return self._child(self.webhook_duration, "webhook", endpoint)  # type: ignore[no-any-return]

    def _child(self, metric: Any, kind: str, *labels: str) -> Any:
        key = (kind, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
