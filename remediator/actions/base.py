"""The Executor protocol and the data an executor receives and returns.

Executors do I/O only: every guard has already passed when `execute` is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from remediator.core.ladder import Rung
from remediator.core.verify import VerifyPlan


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One rendered action: its type, rendered params, the target string the scope check saw,
    and how it is verified (the executor's own check within `verify.within`, then the
    runner's Prometheus check, if any)."""

    action_id: int
    policy: str
    type: str
    target: str
    params: Mapping[str, str]
    verify: VerifyPlan
    # A ladder's rung (1, 2, ...) and the rungs after it, taken in turn if this one fails.
    step: int | None = None
    ladder: tuple[Rung, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What happened. `detail` is operator-facing text recorded as the decision's reason."""

    ok: bool
    detail: str
    verified: bool = True
    started_at: datetime | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Performs the action types of one backend (core/kinds) and verifies, by each kind's
    rule, that it took effect within `request.verify.within`.

    Raises ActionError for failures it can name; `retryable=True` only when the request
    certainly did not reach the target (so a retry cannot act twice).
    """

    async def execute(self, request: ActionRequest) -> ActionResult: ...

    async def probe(self) -> str | None:
        """None when the backend is reachable, else a short reason for /healthz."""
        ...

    async def close(self) -> None:
        """Release connections; called once at shutdown after the drain."""
        ...
