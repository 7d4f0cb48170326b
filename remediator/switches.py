"""The switches: the kill switch (pause), each policy's circuit breaker and global dry run, as
the store holds them (any replica may set them), with their metrics, each policy's limits
reset, and the admission check an action passes when its turn comes. Nothing here decides an
alert or runs an action.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.core.audit import OperatorEvent
from remediator.core.guards import Gates
from remediator.core.limits import cooldown_reason
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.errors import StoreError
from remediator.gate import Hold
from remediator.metrics import Metrics
from remediator.store.roles.approvals import SYSTEM
from remediator.store.roles.store import Store

_log = log.get("remediator.switches")
PAUSED_FLAG = "paused"
TRIPPED_PREFIX = "tripped:"
# When a policy's cooldowns and rate window were last cleared, and by whom:
# {"at": RFC 3339, "by": identity}. Kept: it only says where counting begins.
LIMITS_PREFIX = "limits:"


def gates_of(flags: Sequence[tuple[str, str]], *, dry_run: bool) -> Gates:
    """The gates the store's switches make (every replica reads them alike)."""
    resets = {}
    for name, value in flags:
        if name.startswith(LIMITS_PREFIX):
            try:
                resets[name.removeprefix(LIMITS_PREFIX)] = datetime.fromisoformat(
                    json.loads(value)["at"]
                )
            except (ValueError, TypeError, KeyError):  # written by this code: never expected
                _log.error("switches.bad_flag", flag=name)
    return Gates(
        paused=any(name == PAUSED_FLAG for name, _ in flags),
        tripped=frozenset(
            name.removeprefix(TRIPPED_PREFIX)
            for name, _ in flags
            if name.startswith(TRIPPED_PREFIX)
        ),
        dry_run=dry_run,
        limits_reset=resets,
    )


class Switches:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        policies: Sequence[Policy],
        *,
        dry_run: bool,
        on_tripped: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_tripped(policy, reason)`: told of each trip made here (the Slack notice)."""
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._by_name = {p.name: p for p in policies}
        self._on_tripped = on_tripped
        self.gates = Gates(dry_run=dry_run)
        metrics.policy_tripped.watch(self._by_name, lambda: self.gates.tripped)
        # Breakers tripped here whose flag could not be written yet: kept tripped regardless
        # of what the store says, and written by the next sync.
        self._unrecorded_trips: dict[str, str] = {}

    def adopt_policies(self, policies: Sequence[Policy], *, dry_run: bool) -> None:
        """A reload's policies and global dry run. Breakers are the store's and survive: a
        policy that comes back is still tripped; a removed one's gauge goes."""
        self._by_name = {p.name: p for p in policies}
        self._metrics.policy_tripped.watch(self._by_name, lambda: self.gates.tripped)
        self.gates = Gates(self.gates.paused, self.gates.tripped, dry_run)
        self._publish(self.gates)

    def adopt(self, flags: Sequence[tuple[str, str]]) -> Gates:
        """The switches as the store holds them (any replica may have set them), plus any trip
        not yet recorded; the metrics follow."""
        stored = gates_of(flags, dry_run=self.gates.dry_run)
        gates = replace(stored, tripped=stored.tripped | frozenset(self._unrecorded_trips))
        if gates != self.gates:
            _log.info("switches.changed", paused=gates.paused, tripped=sorted(gates.tripped))
            self._publish(gates)
        self.gates = gates
        return gates

    def publish(self) -> None:
        """Every switch's gauge as it stands (at start: each policy's breaker gauge exists)."""
        self._publish(self.gates)

    def _publish(self, gates: Gates) -> None:
        self._metrics.paused.set(int(gates.paused))  # each breaker's gauge reads self.gates

    async def stored(self) -> Sequence[tuple[str, str]]:
        """For the sync: trips made here but not recorded yet are written, then every switch
        is read as the store holds it. Raises StoreError (the unwritten stay for next time)."""
        for policy, reason in list(self._unrecorded_trips.items()):
            await self._store.set_flag(TRIPPED_PREFIX + policy, reason)
            self._unrecorded_trips.pop(policy, None)  # trip() may have written it meanwhile
        return await self._store.flags("")

    async def admit(self, request: ActionRequest, last_done: datetime | None) -> Hold | None:
        """An action's turn came, or a retry is due: the switches as the store holds them now
        (another replica may have paused), then the policy's cooldown counted from when the
        last action on this (policy, target) here ended. None: it may run."""
        gates = self.adopt(await self._store.flags(""))
        held = gates.holding(request.policy)
        if held is not None:
            why = "remediation is paused" if held is Outcome.PAUSED else "circuit breaker is open"
            return held, why
        policy = self._by_name.get(request.policy)
        if policy is None or (request.step or 1) > 1:
            # A ladder's later rung follows a rung that did not help: the cooldown is the
            # ladder's, judged when it started.
            return None
        reset = gates.limits_reset.get(request.policy)
        if last_done is not None and reset is not None and last_done <= reset:
            last_done = None  # its limits were reset since (on any replica)
        reason = cooldown_reason(last_done, policy.guards.cooldown, self._clock())
        return None if reason is None else (Outcome.COOLDOWN, reason)

    async def trip(self, policy: str, reason: str) -> None:
        # Held here, as an unrecorded trip every adopt() of the store's view keeps, before
        # the store write is awaited: no action of this replica starts in between.
        self._unrecorded_trips[policy] = reason
        self.gates = replace(self.gates, tripped=self.gates.tripped | {policy})
        try:
            await self._store.set_flag(TRIPPED_PREFIX + policy, reason)
        except StoreError as exc:  # still held here, written by the next sync
            _log.error("policy.trip_record_failed", policy=policy, error=str(exc))
        else:
            self._unrecorded_trips.pop(policy, None)
        _log.warning("policy.tripped", policy=policy, reason=reason)
        if self._on_tripped is not None:
            self._on_tripped(policy, reason)

    async def reset(
        self, policy: str, *, limits: bool = False, by: str = SYSTEM, detail: str = ""
    ) -> list[str] | None:
        """Close the policy's breaker and, with `limits`, clear its cooldowns and rate window
        (its actions until now count toward neither; limits.global_rate is all policies' and
        keeps them). What was cleared (`breaker` only if it was open, `cooldown` and
        `rate_limit`), or None for an unknown policy. `by` (an operator's identity) is
        recorded with it in the operator-events journal."""
        if policy not in self._by_name:
            return None
        was_open = policy in self._unrecorded_trips or (
            await self._store.get_flag(TRIPPED_PREFIX + policy) is not None
        )
        if limits:
            detail = f"{detail}; limits too".lstrip("; ")
        act = OperatorEvent(self._clock(), by, "reset", policy=policy, detail=detail)
        await self._store.set_flag(TRIPPED_PREFIX + policy, None, act)
        self._unrecorded_trips.pop(policy, None)
        cleared = ["breaker"] if was_open else []
        gates = replace(self.gates, tripped=self.gates.tripped - {policy})
        if limits:
            at = self._clock()
            record = json.dumps({"at": at.isoformat(), "by": by})
            await self._store.set_flag(LIMITS_PREFIX + policy, record)
            gates = replace(gates, limits_reset={**gates.limits_reset, policy: at})
            cleared += ["cooldown", "rate_limit"]
        self.gates = gates
        _log.warning("policy.reset", policy=policy, by=by, cleared=cleared)
        return cleared

    async def set_paused(self, paused: bool, *, by: str = SYSTEM) -> None:
        """The kill switch; `by` (an operator's identity) is recorded with it."""
        act = OperatorEvent(self._clock(), by, "pause" if paused else "resume")
        await self._store.set_flag(PAUSED_FLAG, "1" if paused else None, act)
        self.gates = replace(self.gates, paused=paused)
        self._metrics.paused.set(int(paused))
        _log.warning("remediation.paused" if paused else "remediation.resumed", by=by)
