"""The leases' role (LeaseStore): who may move an action through its states, and the target lease
one action holds while it runs. A Protocol only: no SQL and no I/O (store/leases.py holds the
statements, each backend its target lease)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol

from remediator.core.approval import Approval
from remediator.core.ladder import Rung
from remediator.store.records import Interrupted


# Every state change names the state it expects (and, for an action, the replica that holds
# it) in its own UPDATE, so a stale caller changes nothing instead of overwriting what another
# replica settled; every reason and detail is redacted (log.redact) before it is stored.
class LeaseStore(Protocol):
    """Actions carry an owner (the replica whose store added them): only the owner moves them
    pending -> running -> result, renews their lease or records its own drain; any replica
    records an expired lease `interrupted`. Targets are leased for one action at a time."""

    # True when no other process can hold this store's actions (SQLite): at start, whatever
    # is unfinished was left by a dead run. False (PostgreSQL): other replicas may be alive.
    exclusive: bool

    def target_lease(self, key: str) -> AbstractAsyncContextManager[None]:
        """Held while an action on target `key` runs and is verified: another replica's
        action on the same target waits for it (a no-op where one process owns the store).
        Raises StoreError when the store cannot be reached."""
        ...

    async def start_action(self, action_id: int, now: datetime) -> bool:
        """pending -> running, only for an action this store owns; False when it is no longer
        pending (marked interrupted) or is another replica's."""
        ...

    async def finish_action(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None = None,
        *,
        reached: bool = True,
    ) -> bool:
        """running -> `outcome`, only for an action this store owns, and its decision (while
        it is still executing) with it; `result`: what the executor reports beside the reason
        (docker.exec: exit codes and output tails), kept with the action, secrets redacted.
        `reached=False`: it provably never reached its target (refused before sending, or held
        when its turn came): from then on it counts toward no cooldown or rate limit.
        One exception: a result of ours that comes back after another replica recorded the
        action `interrupted` (our lease lapsed while it ran) replaces `interrupted`, so the
        audit ends with what really happened. False, with nothing written, for anything
        else: another replica's action, one never started, one already finished."""
        ...

    async def finish_and_escalate(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None,
        rung: Rung,
        later: Sequence[Rung],
        *,
        reached: bool = True,
    ) -> int | None:
        """finish_action of a ladder's rung that failed, and in the same transaction the
        next rung's decision (`step`) and pending action, owned here, with the episode's
        claim moved to it: a crash in between leaves one of them unfinished, recorded
        `interrupted` at the next start, never a rung run twice. The new action's id, or
        None (nothing written) where finish_action would say False."""
        ...

    async def finish_and_request(
        self,
        action_id: int,
        outcome: str,
        reason: str,
        now: datetime,
        result: Mapping[str, str] | None,
        rung: Rung,
        later: Sequence[Rung],
        request: Approval,
        context: Mapping[str, object],
        *,
        reached: bool = True,
    ) -> Approval | None:
        """As finish_and_escalate, for a next rung that carries its own approval: in the
        same transaction the rung's decision (`awaiting_approval`), the approval `request`
        (its decision_id filled in; the rung and the rungs after it kept with it, `context`
        as add_approval's) and the episode's claim moved to it. The request as stored, or
        None (nothing written) where finish_action would say False."""
        ...

    async def heartbeat(self, action_ids: Sequence[int], now: datetime) -> None:
        """Renew the lease of the unfinished actions this store owns (others' are skipped)."""
        ...

    async def interrupt_stale(self, now: datetime, lease: timedelta | None) -> list[Interrupted]:
        """Mark unfinished actions whose lease is older than `lease` (None: all of them)
        `interrupted`, whoever owns them: a dead process's actions are recorded, never re-run
        (one that never started counts toward no cooldown or rate limit).
        Lease age is measured by the store's clock, so replicas' clocks need not agree."""
        ...

    async def interrupt_actions(
        self, action_ids: Sequence[int], now: datetime, reason: str
    ) -> list[Interrupted]:
        """Mark these actions `interrupted` if still unfinished and this store's own (a drain
        that timed out)."""
        ...
