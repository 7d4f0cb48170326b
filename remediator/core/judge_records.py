"""What a batch's judgement hands on: Verdict (one decision as the webhook answers it and the
runner consumes it), Sighting (an alert and its jobs, the judgement's input), Ids (row ids
the store reserved) and Decided (the rows to write and what to apply once committed).

Apart from judge.py because the store, the daemon and the in-memory state read these
records and never judge. Pure, as all of core/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from remediator.core import approval as approvals
from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.job import Job
from remediator.core.ladder import Rung
from remediator.core.outcomes import Outcome
from remediator.core.records import ApprovalRow, NewAction, NewDecision
from remediator.core.verify import VerifyPlan

_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class Verdict(NamedTuple):
    """One (alert, policy) decision as the webhook answers it and the runner consumes it.
    A NamedTuple for the reason Stopped is one: a repeat answered from memory builds one per
    matching policy, and a frozen dataclass of these fields costs ~6 us to build, this ~1.5."""

    decision_id: int
    policy: str
    alert: Alert
    action: str
    target: str
    outcome: Outcome
    reason: str
    new: bool = True  # False: a repeat counted on an existing record
    approval_id: str | None = None
    action_id: int | None = None
    params: Mapping[str, str] = _NO_PARAMS
    position: int = -1  # the alert's position in its batch (not `index`: tuple has one)
    verify: VerifyPlan | None = None  # set with action_id: how the runner verifies it
    ladder: tuple[Rung, ...] = ()  # set with action_id: a ladder's rungs after this one
    step: int | None = None  # a ladder's rung; None for a policy of one action

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.decision_id,
            "policy": self.policy,
            "alertname": self.alert.name,
            "fingerprint": self.alert.fingerprint,
            "status": self.alert.status,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "approval_id": self.approval_id,
        }


@dataclass(slots=True)
class Decided:
    """Everything one batch decided: the rows to write, then what the daemon applies (caches,
    metrics, log lines, the runner) once they are committed."""

    verdicts: list[Verdict] = field(default_factory=list)
    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)
    repeats: dict[int, int] = field(default_factory=dict)
    requested: list[approvals.Approval] = field(default_factory=list)
    cancelled: list[approvals.Approval] = field(default_factory=list)
    sightings: list[Alert] = field(default_factory=list)
    matched: list[Sighting] = field(default_factory=list)  # what each alert matched
    # Positions of the batch's alerts that no policy takes (counted and logged, no state).
    unmatched: list[int] = field(default_factory=list)
    decisions: list[NewDecision] = field(default_factory=list)
    actions: list[NewAction] = field(default_factory=list)
    approval_rows: list[ApprovalRow] = field(default_factory=list)

    def count_repeat(self, decision_id: int) -> None:
        self.repeats[decision_id] = self.repeats.get(decision_id, 0) + 1


@dataclass(frozen=True, slots=True)
class Sighting:
    """One alert of the batch (its episode final) and a rendered job per matching policy."""

    alert: Alert
    index: int
    jobs: tuple[Job, ...]


@dataclass(slots=True)
class Ids:
    """Row ids reserved by the store before the judgement, handed out in order."""

    decisions: Iterator[int]
    actions: Iterator[int]
