"""What the daemon says about matching, so "why didn't it act?" has an answer: each alert
no policy takes is counted (`remediator_alerts_unmatched_total{source}`) and logged as
`alert.unmatched` (sampled: the first per alertname per minute, with the count held back
since); at debug, every alert's tried policies and why each did not match (`alert.tried`).

On the decision path: an unmatched alert costs a counter increment and one dict lookup;
the debug trace costs nothing unless debug logging is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from remediator import log
from remediator.core.alert import Alert
from remediator.core.explain import why_not
from remediator.core.policy_index import PolicyIndex
from remediator.core.sampling import Sampler
from remediator.metrics import Metrics

_log = log.get("remediator.matching")
# What a line keeps of an alertname (and what the sampler keys on): values are unbounded.
NAME_CHARS = 200
WINDOW_SECONDS = 60.0
# Alertnames tracked a window; beyond, their lines are held back and counted on the next.
MAX_NAMES = 1000


class MatchLog:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._sampler = Sampler(WINDOW_SECONDS, MAX_NAMES)

    def unmatched(self, alerts: Sequence[Alert], positions: Sequence[int]) -> None:
        """The alerts at `positions` matched no policy (the judgement or memory says so)."""
        for position in positions:
            alert = alerts[position]
            self._metrics.unmatched(alert.source).inc()
            name = alert.name[:NAME_CHARS]
            admitted = self._sampler.admit(name, self._clock())
            if admitted is None:
                continue
            _log.info(
                "alert.unmatched",
                alertname=name,
                source=alert.source,
                status=alert.status,
                fingerprint=alert.fingerprint[:NAME_CHARS],
                suppressed=admitted.suppressed,
                suppressed_other_alertnames=admitted.others,
            )

    @staticmethod
    def trace(index: PolicyIndex, alerts: Sequence[Alert]) -> None:
        """At debug only: for each alert, the policies the index tried and why each that
        did not match did not (the others were not tried: filed under other label values)."""
        if not log.enabled("debug"):
            return
        for alert in alerts:
            tried = [index.policies[position] for position in index.candidates(alert.labels)]
            matched, missed = [], []
            for policy in tried:
                miss = why_not(policy, alert)
                if miss is None:
                    matched.append(policy.name)
                else:
                    missed.append(f"{policy.name}: {miss}")
            _log.debug(
                "alert.tried",
                alertname=alert.name[:NAME_CHARS],
                source=alert.source,
                status=alert.status,
                fingerprint=alert.fingerprint[:NAME_CHARS],
                tried=len(tried),
                not_tried=len(index.policies) - len(tried),
                matched=matched,
                not_matched=missed,
            )
