"""The approvals part's book of pending approvals: the count and its metric, the rule set in
force, the announcement of a new request, and every way one leaves `pending` without a
person deciding (the alert resolved, it expired, a reload removed its policy), with their
store writes, metrics and logs.

Kept apart from approvals.py, where people decide, because this half runs by itself: the
sync loop and reloads drive it, once a second, whether or not anyone clicks. Approvals
(approvals.py) inherits it, so both halves share one count and one `_closed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from remediator import log
from remediator.core import approval as approvals
from remediator.core.outcomes import Outcome
from remediator.core.ruleset import Ruleset
from remediator.metrics import Metrics
from remediator.runner import Runner
from remediator.sink import OutcomeSink
from remediator.store.roles.approvals import SYSTEM, ApprovalConflictError
from remediator.store.roles.store import Store
from remediator.switches import Switches

# The logger keeps the name it had before the split, so log lines read as they did.
_log = log.get("remediator.approvals")


class Notices(Protocol):
    """Where approvals are shown to people (conversation.Conversation: Slack)."""

    def announce(self, approval: approvals.Approval) -> None: ...

    def refresh(self, approval_id: str, outcome: str | None = None) -> None: ...


class PendingApprovals:
    """The pending approvals and their bookkeeping; approvals.Approvals adds the decisions."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        rules: Ruleset,
        switches: Switches,
        runner: Runner,
        sink: OutcomeSink,
        notices: Notices,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._rules = rules
        self._switches = switches
        self._runner = runner
        self._sink = sink
        self._notices = notices
        self._pending = 0
        # Policies a reload removed here: their pending approvals are cancelled, also those a
        # webhook or ladder under the old rule set asks for after the reload.
        self._removed: set[str] = set()
        # What was cancelled for a removal since the last reload, whichever task did it: the
        # sync loop may get there before the reload's own pass, and the reload's answer must
        # still list it. The lock makes one pass finish (and record) before the next looks.
        self._cancelled_since_reload: list[str] = []
        self._cancelling = asyncio.Lock()

    def adopt(self, rules: Ruleset, removed: Iterable[str]) -> None:
        """The rule set approvals are judged by from now on; `removed`: policies it dropped."""
        self._rules = rules
        self._removed = (self._removed | set(removed)) - set(rules.by_name)
        self._cancelled_since_reload = []

    def requested(self, request: approvals.Approval) -> None:
        """A decision that awaits approval was committed: count it and announce it."""
        self._pending += 1
        self._metrics.approvals_pending.set(self._pending)
        self._notices.announce(request)
        _log.info(
            "approval.requested",
            approval_id=request.id,
            policy=request.policy,
            target=request.target,
            expires_at=request.expires_at.isoformat(),
        )

    def cancelled(self, item: approvals.Approval) -> None:
        """The alert resolved before anyone decided (committed with that resolution)."""
        self._closed(item, Outcome.CANCELLED)

    async def sync(self) -> None:
        """The pending count as the store has it (any replica may have decided), then expiry
        and the cancellation of approvals of removed policies."""
        pending = await self._store.approvals(pending_only=True)
        self._pending = len(pending)
        self._metrics.approvals_pending.set(self._pending)
        if self._pending:
            await self.expire_approvals()
            await self._cancel([a for a in pending if a.policy in self._removed])

    async def cancel_removed(self) -> list[str]:
        """Cancel the pending approvals of policies the last reload removed; the ids of all
        cancelled since that reload (also those the sync loop got to first)."""
        if not self._removed:
            return []
        pending = await self._store.approvals(pending_only=True)
        await self._cancel([a for a in pending if a.policy in self._removed])
        return list(self._cancelled_since_reload)

    async def _cancel(self, doomed: list[approvals.Approval]) -> None:
        async with self._cancelling:
            await self._cancel_each(doomed)

    async def _cancel_each(self, doomed: list[approvals.Approval]) -> None:
        """One transaction each: one decided meanwhile (a click, another replica, expiry)
        stays as decided, without holding back the others."""
        now = self._clock()
        for item in doomed:
            cancelled = approvals.cancel(item)
            if cancelled is None:
                continue
            reason = f"policy {item.policy} was removed by a config reload"
            try:
                async with self._store.transaction() as tx:
                    await tx.save_approval(cancelled)
                    await tx.set_outcome(cancelled.decision_id, Outcome.CANCELLED, reason)
                    await tx.add_approval_event(cancelled.id, SYSTEM, "cancelled", reason, now)
            except ApprovalConflictError:
                continue
            shown = "its policy was removed by a config reload"
            self._closed(cancelled, Outcome.CANCELLED, shown, reason=reason)
            self._cancelled_since_reload.append(cancelled.id)

    async def expire_approvals(self) -> None:
        now = self._clock()
        expired = []
        async with self._store.transaction() as tx:
            for pending in await tx.expired_approvals(now):
                done = approvals.expire(pending, now)
                if done is None:
                    continue
                await tx.save_approval(done)
                reason = f"no decision before {pending.expires_at.isoformat()} (approval_ttl)"
                await tx.set_outcome(done.decision_id, Outcome.EXPIRED, reason)
                await tx.add_approval_event(done.id, SYSTEM, "expired", reason, now)
                expired.append(done)
        for item in expired:
            self._closed(item, Outcome.EXPIRED)

    def _closed(
        self, item: approvals.Approval, result: str | None, shown: str | None = None, **log: Any
    ) -> None:
        """Bookkeeping for an approval that left `pending`, however it ended."""
        self._pending -= 1
        self._metrics.approvals_pending.set(self._pending)
        self._metrics.approval_decisions.labels(item.policy, item.state.value).inc()
        if result is not None:
            self._sink.settled(item.policy, result)
        _log.info(f"approval.{item.state.value}", approval_id=item.id, policy=item.policy, **log)
        self._notices.refresh(item.id, shown)
