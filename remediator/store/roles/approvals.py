"""The approvals' role: a request's part of a deciding transaction (ApprovalTransaction), the
approvals outside one (ApprovalStore), and the conflict a stale decision raises. Protocols only:
no SQL and no I/O (the statements are store/approvals.py's)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from remediator.core.approval import Approval, ApprovalRefused
from remediator.core.ladder import Rung
from remediator.core.verify import Checks
from remediator.errors import StoreError

# Who an approval's history names when no person acted: an expiry, a resolved alert.
SYSTEM = "remediator"


class ApprovalConflictError(StoreError, ApprovalRefused):
    """save_approval found the approval no longer pending (another replica, click or the
    expiry decided it first): the transaction rolls back whole, nothing of it commits. It is
    also an ApprovalRefused with `conflict`, so the API answers 409 and Slack tells the
    clicker "nothing changed", exactly as for a refusal the engine saw itself."""

    def __init__(self, reason: str) -> None:
        ApprovalRefused.__init__(self, reason, conflict=True)


class ApprovalTransaction(Protocol):
    """The approvals' part of a transaction: requests and their state."""

    async def pending_for(self, episodes: Collection[str]) -> dict[str, list[Approval]]:
        """The pending approvals of these episodes."""
        ...

    async def pending_approvals(self, episode: str) -> list[Approval]: ...
    async def add_approval(
        self,
        approval: Approval,
        episode: str,
        params: Mapping[str, str],
        context: Mapping[str, object] | None = None,
        verify: Checks | None = None,
        ladder: Sequence[Rung] = (),
    ) -> None:
        """`context` (what the Slack message shows) is stored with every string redacted;
        `verify`, the rendered check the approved action runs with, and a ladder's later
        rungs beside the params."""
        ...

    async def approval_ladder(self, approval_id: str) -> tuple[Rung | None, tuple[Rung, ...]]:
        """The later step a ladder's request asks for (None: its first step, or a policy of
        one action) and the rungs after the one asked for (none for any other policy)."""
        ...

    async def approval_params(self, approval_id: str) -> tuple[dict[str, str], Checks | None]:
        """The params and the verify check stored with the request (also as the version
        before stored them, the check among the params)."""
        ...

    async def expired_approvals(self, now: datetime) -> list[Approval]: ...
    async def save_approval(self, approval: Approval) -> None:
        """Write `approval`'s state, approvers and decider, only over a `pending` row (a
        partial approval stays pending). Raises ApprovalConflictError (a StoreError and an
        ApprovalRefused with conflict: HTTP 409) when the stored row is no longer pending or
        gone: the first decision wins, a stale one rolls back its whole transaction."""
        ...

    async def approval(self, approval_id: str) -> Approval | None: ...
    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        """An entry of the approval's history, committed with the change it records: who
        (a person, or `remediator` for an expiry or a cancellation), when, what; `detail`
        (a note, a reason) stored redacted. Never updated or deleted but by retention."""
        ...


class ApprovalStore(Protocol):
    """Approvals outside a deciding transaction: reads, their Slack message, their events."""

    async def approvals(self, *, pending_only: bool) -> list[Approval]: ...
    async def approval(self, approval_id: str) -> Approval | None: ...
    async def approval_context(self, approval_id: str) -> dict[str, Any]: ...
    async def approval_message(self, approval_id: str) -> tuple[str, str] | None: ...
    async def set_approval_message(self, approval_id: str, channel: str, ts: str) -> None: ...
    async def unannounced_approvals(self) -> list[Approval]: ...
    async def approval_for_action(self, action_id: int) -> Approval | None: ...
    async def add_approval_event(
        self, approval_id: str, who: str, event: str, detail: str, now: datetime
    ) -> None:
        """`detail` is stored redacted."""
        ...

    async def approval_events(self, approval_id: str) -> list[dict[str, str]]: ...
