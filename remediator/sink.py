"""The outcome sink: where a decision's outcome becomes its log line and its count in
`remediator_decisions_total`, whoever settled it (the judgement, the runner, an approval).

The audit row and its claim are written together by the store in the same statement group
(a claim follows its decision's outcome); this is the other half, called once per outcome
after the commit that holds it. Transient states (`executing`, `awaiting_approval`) are
logged but never counted: each decision is counted once, with the outcome it ends with.
"""

from __future__ import annotations

from remediator import log
from remediator.core.judge import Verdict
from remediator.core.outcomes import Outcome
from remediator.metrics import Metrics

_log = log.get("remediator.decisions")
TRANSIENT = frozenset({Outcome.EXECUTING, Outcome.AWAITING_APPROVAL})


class OutcomeSink:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def recorded(self, verdict: Verdict) -> None:
        """A judgement's verdict, once committed: a new record is logged; a repeat counted
        on an existing record is only counted (SPEC: repeats are counted, not logged)."""
        if verdict.new and log.enabled("info"):  # else the line's fields are not gathered
            _log.info(
                "decision.recorded",
                decision_id=verdict.decision_id,
                policy=verdict.policy,
                outcome=verdict.outcome.value,
                reason=verdict.reason,
                alertname=verdict.alert.name,
                fingerprint=verdict.alert.fingerprint,
                target=verdict.target,
            )
        self.settled(verdict.policy, verdict.outcome)

    def settled(self, policy: str, outcome: Outcome | str) -> None:
        """A decision reached `outcome` (an action's result, an approval's end, ...)."""
        if outcome not in TRANSIENT:
            self._metrics.decided(policy, str(outcome))
