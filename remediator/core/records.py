"""The rows a judgement writes, as plain data: what the store receives in one batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from remediator.core.alert import Alert
from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.core.verify import Checks


class NewDecision(NamedTuple):
    """A decision row to write (built per decision, so a NamedTuple: see Verdict)."""

    time: datetime
    policy: str
    alert: Alert
    action: str
    target: str
    outcome: str
    reason: str
    approval_id: str | None = None
    repeats: int = 0
    id: int | None = None  # set by a batch (ids reserved up front); None: the store numbers it
    step: int | None = None  # a ladder's rung (1, 2, ...); None for a policy of one action


class NewAction(NamedTuple):
    """An action row to write, beside its decision's."""

    id: int
    decision_id: int
    policy: str
    type: str
    target: str
    params: Mapping[str, str]
    dry_run: bool
    time: datetime
    verify: Checks | None = None  # stored beside the params
    ladder: tuple[Rung, ...] = ()  # a ladder's later rungs, stored beside the params


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """A new approval request with what its Slack message shows (`context`), and the
    rendered verify check its action runs with once approved."""

    approval: Approval
    episode: str
    params: Mapping[str, str]
    context: Mapping[str, object] = field(default_factory=dict)
    verify: Checks | None = None
    ladder: tuple[Rung, ...] = ()
