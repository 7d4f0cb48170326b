"""The daemon's own Prometheus metrics, one per question an operator asks.

Labels come only from bounded sets (policy names, outcomes, action types, sources),
never from alert label values. Metrics is the registry: the client library's families and,
from metrics_collectors.py, the ones that write their own lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from remediator.metrics_collectors import (
    COUNTED,
    RESULTS,
    ActionCounts,
    DecisionCounts,
    TrippedGauge,
    _Counts,
)

if TYPE_CHECKING:
    from remediator.core.policy import Policy

# Importers take the collectors and what they count from here, as before the split.
__all__ = [
    "COUNTED",
    "RESULTS",
    "SOURCES",
    "ActionCounts",
    "DecisionCounts",
    "Metrics",
    "TrippedGauge",
]

# `_created` series double the exposition and no dashboard or rule reads them. The switch is
# the client library's, process-wide and read at scrape time: importing this module is
# enough, in the daemon and in tests alike.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

SOURCES = ("alertmanager", "datadog")


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
