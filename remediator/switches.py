"""The switches: the kill switch (pause), each policy's circuit breaker and global dry run, as
the store holds them (any replica may set them), with their metrics, and the admission check
an action passes when its turn comes. Nothing here decides an alert or runs an action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.core.audit import OperatorEvent
from remediator.core.guards import Gates
from remediator.core.limits import cooldown_reason
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.errors import StoreError
from remediator.metrics import Metrics
from remediator.runner import Hold
from remediator.store.base import SYSTEM, Store

_log = log.get("remediator.switches")
PAUSED_FLAG = "paused"
TRIPPED_PREFIX = "tripped:"


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
        self._policies = list(policies)
        self._by_name = {p.name: p for p in policies}
        self._on_tripped = on_tripped
        self.gates = Gates(dry_run=dry_run)
        # Breakers tripped here whose flag could not be written yet: kept tripped regardless
        # of what the store says, and written by the next sync.
        self._unrecorded_trips: dict[str, str] = {}

    def adopt_policies(self, policies: Sequence[Policy], *, dry_run: bool) -> None:
        """A reload's policies and global dry run. Breakers are the store's and survive: a
        policy that comes back is still tripped; a removed one's gauge goes."""
        names = {p.name for p in policies}
        for gone in self._by_name.keys() - names:
            self._metrics.policy_tripped.remove(gone)
        self._policies = list(policies)
        self._by_name = {p.name: p for p in policies}
        self.gates = Gates(self.gates.paused, self.gates.tripped, dry_run)
        self._publish(self.gates)

    def adopt(self, flags: Sequence[tuple[str, str]]) -> Gates:
        """The switches as the store holds them (any replica may have set them), plus any trip
        not yet recorded; the metrics follow."""
        paused = any(name == PAUSED_FLAG for name, _ in flags)
        tripped = frozenset(
            name.removeprefix(TRIPPED_PREFIX)
            for name, _ in flags
            if name.startswith(TRIPPED_PREFIX)
        ) | frozenset(self._unrecorded_trips)
        gates = Gates(paused=paused, tripped=tripped, dry_run=self.gates.dry_run)
        if gates != self.gates:
            _log.info("switches.changed", paused=paused, tripped=sorted(tripped))
            self._publish(gates)
        self.gates = gates
        return gates

    def publish(self) -> None:
        """Every switch's gauge as it stands (at start: each policy's breaker gauge exists)."""
        self._publish(self.gates)

    def _publish(self, gates: Gates) -> None:
        self._metrics.paused.set(int(gates.paused))
        for policy in self._policies:
            self._metrics.policy_tripped.labels(policy.name).set(int(policy.name in gates.tripped))

    async def stored(self) -> Sequence[tuple[str, str]]:
        """For the sync: trips made here but not recorded yet are written, then every switch
        is read as the store holds it. Raises StoreError (the unwritten stay for next time)."""
        for policy, reason in list(self._unrecorded_trips.items()):
            await self._store.set_flag(TRIPPED_PREFIX + policy, reason)
            del self._unrecorded_trips[policy]
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
        reason = cooldown_reason(last_done, policy.guards.cooldown, self._clock())
        return None if reason is None else (Outcome.COOLDOWN, reason)

    async def trip(self, policy: str, reason: str) -> None:
        try:
            await self._store.set_flag(TRIPPED_PREFIX + policy, reason)
        except StoreError as exc:
            self._unrecorded_trips[policy] = reason  # held here, written by the next sync
            _log.error("policy.trip_record_failed", policy=policy, error=str(exc))
        self.gates = Gates(self.gates.paused, self.gates.tripped | {policy}, self.gates.dry_run)
        self._metrics.policy_tripped.labels(policy).set(1)
        _log.warning("policy.tripped", policy=policy, reason=reason)
        if self._on_tripped is not None:
            self._on_tripped(policy, reason)

    async def reset(self, policy: str, *, by: str = SYSTEM, detail: str = "") -> bool:
        """Close the policy's breaker; `by` (an operator's identity) is recorded with it."""
        if policy not in self._by_name:
            return False
        act = OperatorEvent(self._clock(), by, "reset", policy=policy, detail=detail)
        await self._store.set_flag(TRIPPED_PREFIX + policy, None, act)
        self._unrecorded_trips.pop(policy, None)
        self.gates = Gates(self.gates.paused, self.gates.tripped - {policy}, self.gates.dry_run)
        self._metrics.policy_tripped.labels(policy).set(0)
        _log.warning("policy.reset", policy=policy, by=by)
        return True

    async def set_paused(self, paused: bool, *, by: str = SYSTEM) -> None:
        """The kill switch; `by` (an operator's identity) is recorded with it."""
        act = OperatorEvent(self._clock(), by, "pause" if paused else "resume")
        await self._store.set_flag(PAUSED_FLAG, "1" if paused else None, act)
        self.gates = Gates(paused=paused, tripped=self.gates.tripped, dry_run=self.gates.dry_run)
        self._metrics.paused.set(int(paused))
        _log.warning("remediation.paused" if paused else "remediation.resumed", by=by)
