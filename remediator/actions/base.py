"""The Executor protocol and the data an executor receives and returns.

Executors do I/O only: every guard has already passed when `execute` is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One rendered action: its type, rendered params and the target string the scope check saw."""

    action_id: int
    policy: str
    type: str
    target: str
    params: Mapping[str, str]
    verify_within: timedelta


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What happened. `detail` is operator-facing text recorded as the decision's reason."""

    ok: bool
    detail: str
    verified: bool = True
    started_at: datetime | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Performs one action type and verifies it took effect within `verify_within`.

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
