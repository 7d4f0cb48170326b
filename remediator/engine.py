"""The engine: runs the pipeline per webhook inside one store transaction, answers known
repeats from memory, applies committed decisions (caches, metrics, logs, runner), and owns
the switches (pause, breakers) and the approval API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from remediator import log
from remediator.actions.base import ActionRequest, Executor
from remediator.checks.conditions import evaluate_conditions
from remediator.checks.prometheus import PrometheusChecker
from remediator.core import approval as approvals
from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.guards import AT_APPROVAL, first_stop, settled_repeat
from remediator.core.job import Job, Met, Stopped
from remediator.core.judge import Verdict
from remediator.core.limits import cooldown_reason
from remediator.core.mrkdwn import escape_mrkdwn
from remediator.core.outcomes import EXECUTING, Outcome
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex
from remediator.errors import StoreError
from remediator.groupcommit import GroupCommit
from remediator.metrics import Metrics
from remediator.pipeline import Decided, Gates, Settings, decide, read_facts
from remediator.runner import Hold, Runner, request_for
from remediator.sink import OutcomeSink
from remediator.slack import (
    SlackApprover,
    SlackError,
    code_span,
    mention,
    request_message,
    status_line,
)
from remediator.store.base import Store, Transaction

_log = log.get("remediator.engine")
K = TypeVar("K")
V = TypeVar("V")
PAUSED_FLAG = "paused"
PRUNE_EVERY = 3600.0  # seconds; the first prune runs at start
TRIPPED_PREFIX = "tripped:"


class BoundedCache(Generic[K, V]):
    """Insertion-ordered map that forgets its oldest half when full: caches only, never truth."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def discard(self, doomed: Callable[[K, V], bool]) -> None:
        """Forget every entry `doomed` names (a scan: for rare events only)."""
        for key in [k for k, v in self._items.items() if doomed(k, v)]:
            del self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        if len(self._items) > self._limit:
            for old in list(self._items)[: self._limit // 2]:
                del self._items[old]


class Engine:
    def __init__(
        self,
        *,
        policies: Sequence[Policy],
        store: Store,
        executors: dict[str, Executor],
        metrics: Metrics,
        clock: Callable[[], datetime],
        settings: Settings,
        dry_run: bool,
        max_concurrent: int,
        # Caches only, never truth: a forgotten entry costs one store round trip. 50k entries
        # of digests stay within a few MiB, so a storm of new alerts cannot grow memory.
        cache_size: int = 50_000,
        slack: SlackApprover | None = None,
        post_results: bool = False,
        checker: PrometheusChecker | None = None,
        action_lease: timedelta = timedelta(seconds=30),
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.policies = list(policies)
        self.index = PolicyIndex(self.policies)
        self._by_name = {p.name: p for p in policies}
        self.sink = OutcomeSink(metrics)
        self._commits: GroupCommit[_Work, Decided] = GroupCommit(self._decide_group)
        self.store = store
        self.executors = executors
        self.metrics = metrics
        self.clock = clock
        self.settings = settings
        self.gates = Gates(dry_run=dry_run)
        self.runner = Runner(
            store,
            executors,
            metrics,
            clock,
            max_concurrent=max_concurrent,
            on_unverified=self.trip,
            on_finished=self._finished,
            admit=self.admit,
            on_held=self._reopened,
            checker=checker,
            sink=self.sink,
        )
        self.slack = slack
        self.checker = checker
        self._post_results = post_results
        self._spawned: set[asyncio.Task[None]] = set()
        self._claims: BoundedCache[tuple[str, str], Claim] = BoundedCache(cache_size)
        # (episode, status) -> (labels, matching policies) once the store has seen it
        self._episodes: BoundedCache[tuple[str, str], _Seen] = BoundedCache(cache_size)
        self._repeats: dict[int, int] = {}
        self._pending_approvals = 0
        self.action_lease = action_lease
        self.retention = retention
        # Breakers tripped here whose flag could not be written yet: kept tripped regardless
        # of what the store says, and written by the next sync.
        self._unrecorded_trips: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.backends: dict[str, str | None] = {}
        metrics.policies_loaded.set(len(self.policies))

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Record what a crash left running, restore the switches, start background loops."""
        # Alone on the store (SQLite), whatever is unfinished was left by a dead run; shared
        # (PostgreSQL), another replica may still be running it: only a stale lease says not.
        lease = None if self.store.exclusive else self.action_lease
        self.runner.record_interrupted(await self.store.interrupt_stale(self.clock(), lease))
        self._publish(self.gates)  # every policy's breaker gauge exists from the start
        await self.sync()
        for pending in await self.store.unannounced_approvals():  # a crash before the post
            self.spawn(self._announce(pending))
        renew = self.action_lease.total_seconds() / 3
        self._tasks = [
            asyncio.create_task(self._every(1.0, self.flush_repeats), name="flush-repeats"),
            asyncio.create_task(self._every(1.0, self.sync), name="sync"),
            asyncio.create_task(self._every(15.0, self.probe_backends), name="probe-backends"),
            asyncio.create_task(self._every(renew, self.renew_leases), name="renew-leases"),
            asyncio.create_task(self._every(PRUNE_EVERY, self.prune), name="prune"),
        ]

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Slack calls and other side work: tracked, never awaited by a request."""
        task = asyncio.create_task(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def stop(self, drain: timedelta) -> None:
        await self._commits.wait_idle()  # webhooks already in a transaction commit first
        await self.runner.drain(drain)
        if self._spawned:  # let result replies and message updates go out, briefly
            _, late = await asyncio.wait(set(self._spawned), timeout=5)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.flush_repeats()
        except StoreError as exc:
            _log.error("repeats.flush_failed", error=str(exc))
        for executor in self._backends().values():
            await executor.close()
        if self.checker is not None:
            await self.checker.close()

    async def _every(self, seconds: float, job: Callable[[], object]) -> None:
        while True:
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except StoreError as exc:
                _log.error(
                    "background.store_error", job=getattr(job, "__name__", "?"), error=str(exc)
                )
            except Exception:  # noqa: BLE001  # a bug in one round must not stop the loop for good
                _log.exception("background.failed", job=getattr(job, "__name__", "?"))
            await asyncio.sleep(seconds)

    # --- intake ----------------------------------------------------------------------------

    async def ingest(self, alerts: Sequence[Alert]) -> Decided:
        """Decide every alert; returns only after the decisions are committed. Webhooks that
        arrive while a transaction runs share the next one (groupcommit.py)."""
        for alert in alerts:
            self.metrics.received(alert.source, alert.status).inc()
        decided = self._known_repeats(alerts)
        if decided is not None:
            self._apply(decided)
            return decided
        conditions = None
        if self.checker is not None:
            conditions = await evaluate_conditions(
                self.checker, alerts, self.index, self.clock(), self._settled_episode
            )
        return await self._commits.submit((alerts, conditions or {}))

    async def _decide_group(self, group: Sequence[_Work]) -> list[Decided]:
        """Several webhooks' alerts judged as one batch in one transaction; each gets back
        its own verdicts, and the whole batch is applied once, after the commit."""
        alerts: list[Alert] = []
        conditions: dict[tuple[str, int], Stopped | Met] = {}
        bounds = []
        for batch, checked in group:
            offset = len(alerts)
            alerts.extend(batch)
            conditions.update({(p, i + offset): r for (p, i), r in checked.items()})
            bounds.append((offset, len(alerts)))
        now = self.clock()
        async with self.store.transaction() as tx:
            gates = self._adopt(await tx.flags())  # another replica may have paused
            decided = await decide(alerts, self.index, tx, now, gates, self.settings, conditions)
        # What each alert matched, from the judgement itself: the next repeat is answered
        # from memory. An alert no policy concerns is cached as matching nothing.
        matched = {s.index: tuple(job.policy for job in s.jobs) for s in decided.matched}
        for position, alert in enumerate(alerts):
            if alert.cycle is None:  # a cycle group is not an episode: never a cache key
                seen = (labels_digest(alert.labels), matched.get(position, ()))
                self._episodes.put((alert.episode, alert.status), seen)
        self._apply(decided)
        return [
            Decided(verdicts=[v for v in decided.verdicts if start <= v.index < end])
            for start, end in bounds
        ]

    def _settled_episode(self, policy: str, episode: str) -> bool:
        claim = self._claims.get((policy, episode))
        return claim is not None and not claim.provisional

    def _known_repeats(self, alerts: Sequence[Alert]) -> Decided | None:
        """Every alert a repeat of a settled episode: answer without touching the store."""
        decided = Decided()
        for position, alert in enumerate(alerts):
            seen = None if alert.cycle else self._episodes.get((alert.episode, alert.status))
            # Same labels: the matching set cannot differ (a sender reusing a fingerprint
            # for other labels falls through to the full pipeline).
            if seen is None or seen[0] != labels_digest(alert.labels):
                return None
            for policy in seen[1]:
                claim = self._claims.get((policy.name, alert.episode))
                stop = None if claim is None else settled_repeat(claim, self.gates, policy.name)
                if claim is None or stop is None or stop.repeat_of is None:
                    return None
                decided.count_repeat(stop.repeat_of)
                decided.verdicts.append(
                    Verdict(
                        stop.repeat_of,
                        policy.name,
                        alert,
                        claim.action,
                        claim.target,
                        stop.outcome,
                        stop.reason,
                        new=False,
                        index=position,
                    )
                )
        return decided

    def _apply(self, decided: Decided) -> None:
        for key, claim in decided.claims.items():
            self._claims.put(key, claim)
        for decision_id, count in decided.repeats.items():
            self._repeats[decision_id] = self._repeats.get(decision_id, 0) + count
        for verdict in decided.verdicts:
            self.sink.recorded(verdict)
            if verdict.action_id is not None:
                self._submit(
                    verdict.action_id,
                    verdict.policy,
                    verdict.action,
                    verdict.target,
                    verdict.params,
                )
        for request in decided.requested:
            self._pending_approvals += 1
            self.metrics.approvals_pending.set(self._pending_approvals)
            self.spawn(self._announce(request))
            _log.info(
                "approval.requested",
                approval_id=request.id,
                policy=request.policy,
                target=request.target,
                expires_at=request.expires_at.isoformat(),
            )
        for cancelled in decided.cancelled:
            self._closed(cancelled, Outcome.CANCELLED)

    def _submit(
        self, action_id: int, policy: str, action: str, target: str, params: Mapping[str, str]
    ) -> None:
        found = self._by_name.get(policy)
        verify = found.verify.within if found else timedelta(minutes=2)
        self.runner.submit(request_for(action_id, policy, action, target, params, verify))

    def _reopened(self, request: ActionRequest) -> None:
        """An action held at its turn (paused, tripped) reopened its episode in the store: no
        cached claim may still answer its repeats as settled. Dropping extra entries is safe."""
        self._claims.discard(
            lambda key, claim: key[0] == request.policy and claim.target == request.target
        )

    def _closed(
        self, item: approvals.Approval, result: str | None, shown: str | None = None, **log: Any
    ) -> None:
        """Bookkeeping for an approval that left `pending`, however it ended."""
        self._pending_approvals -= 1
        self.metrics.approvals_pending.set(self._pending_approvals)
        self.metrics.approval_decisions.labels(item.policy, item.state.value).inc()
        if result is not None:
            self.sink.settled(item.policy, result)
        _log.info(f"approval.{item.state.value}", approval_id=item.id, policy=item.policy, **log)
        self.spawn(self._refresh(item.id, shown))

    def _adopt(self, flags: Sequence[tuple[str, str]]) -> Gates:
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

    def _publish(self, gates: Gates) -> None:
        self.metrics.paused.set(int(gates.paused))
        for policy in self.policies:
            self.metrics.policy_tripped.labels(policy.name).set(int(policy.name in gates.tripped))

    async def sync(self) -> None:
        """Every second: switches and pending approvals as the store has them, then expiry.
        Every replica runs it; the expiry transaction holds the decision lock and touches
        only still-pending approvals, so two replicas never expire one approval twice."""
        try:
            for policy, reason in list(self._unrecorded_trips.items()):
                await self.store.set_flag(TRIPPED_PREFIX + policy, reason)
                del self._unrecorded_trips[policy]
            flags = await self.store.flags("")
        except StoreError as exc:
            self._probed("store", str(exc))
            raise
        self._probed("store", None)
        self._adopt(flags)
        self._pending_approvals = len(await self.store.approvals(pending_only=True))
        self.metrics.approvals_pending.set(self._pending_approvals)
        if self._pending_approvals:
            await self.expire_approvals()

    async def renew_leases(self) -> None:
        """Renew the leases of the actions this process holds; record expired ones of others."""
        now = self.clock()
        await self.store.heartbeat(self.runner.holding(), now)
        self.runner.record_interrupted(await self.store.interrupt_stale(now, self.action_lease))

    async def prune(self) -> None:
        """Audit rows older than `retention` go, in short batches (see Store.prune)."""
        pruned = await self.store.prune(self.clock() - self.retention)
        if any(pruned.values()):
            _log.info("store.pruned", retention=str(self.retention), **pruned)

    async def flush_repeats(self) -> None:
        counts, self._repeats = self._repeats, {}
        try:
            await self.store.add_repeats(counts, self.clock())
        except StoreError:
            for decision_id, n in counts.items():  # keep them for the next flush
                self._repeats[decision_id] = self._repeats.get(decision_id, 0) + n
            raise

    # --- switches --------------------------------------------------------------------------

    async def set_paused(self, paused: bool) -> None:
        await self.store.set_flag(PAUSED_FLAG, "1" if paused else None)
        self.gates = Gates(paused=paused, tripped=self.gates.tripped, dry_run=self.gates.dry_run)
        self.metrics.paused.set(int(paused))
        _log.warning("remediation.paused" if paused else "remediation.resumed")

    async def admit(self, request: ActionRequest, last_done: datetime | None) -> Hold | None:
        """An action's turn came, or a retry is due: the switches as the store holds them now
        (another replica may have paused), then the policy's cooldown counted from when the
        last action on this (policy, target) here ended. None: it may run."""
        gates = self._adopt(await self.store.flags(""))
        held = gates.holding(request.policy)
        if held is not None:
            why = "remediation is paused" if held is Outcome.PAUSED else "circuit breaker is open"
            return held, why
        policy = self._by_name.get(request.policy)
        if policy is None:
            return None
        reason = cooldown_reason(last_done, policy.guards.cooldown, self.clock())
        return None if reason is None else (Outcome.COOLDOWN, reason)

    async def trip(self, policy: str, reason: str) -> None:
        try:
            await self.store.set_flag(TRIPPED_PREFIX + policy, reason)
        except StoreError as exc:
            self._unrecorded_trips[policy] = reason  # held here, written by the next sync
            _log.error("policy.trip_record_failed", policy=policy, error=str(exc))
        self.gates = Gates(self.gates.paused, self.gates.tripped | {policy}, self.gates.dry_run)
        self.metrics.policy_tripped.labels(policy).set(1)
        _log.warning("policy.tripped", policy=policy, reason=reason)
        if self.slack is not None:
            text = (
                f":rotating_light: Policy `{policy}` tripped: {escape_mrkdwn(reason)}. "
                "It takes no action until "
                f"someone checks and resets it: `POST /api/v1/policies/{policy}/reset`"
            )
            self.spawn(self._say(text))

    async def reset(self, policy: str) -> bool:
        if policy not in self._by_name:
            return False
        await self.store.set_flag(TRIPPED_PREFIX + policy, None)
        self._unrecorded_trips.pop(policy, None)
        self.gates = Gates(self.gates.paused, self.gates.tripped - {policy}, self.gates.dry_run)
        self.metrics.policy_tripped.labels(policy).set(0)
        _log.warning("policy.reset", policy=policy)
        return True

    # --- approvals -------------------------------------------------------------------------

    async def decide_approval(
        self, approval_id: str, who: str, *, approve: bool, note: str = ""
    ) -> approvals.Approval | None:
        """Apply one human decision; None for an unknown id; raises ApprovalRefused.

        `who` is an authenticated identity (a Slack user ID from a signed click, or the API
        token's `api:NAME`), never text the caller chose; `note` is recorded beside it."""
        now = self.clock()
        outcome: str | None = None
        submit: _Submit | None = None
        async with self.store.transaction() as tx:
            current = await tx.approval(approval_id)
            if current is None:
                return None
            if approve:
                updated = approvals.approve(current, who, now)
            else:
                updated = approvals.deny(current, who, now)
            await tx.save_approval(updated)
            if updated.state is approvals.ApprovalState.DENIED:
                outcome = Outcome.DENIED
                await tx.set_outcome(updated.decision_id, outcome, f"denied by {who}")
            elif updated.state is approvals.ApprovalState.APPROVED:
                outcome, submit = await self._approved(tx, updated, now)
        try:
            event = "approved" if approve else "denied"
            await self.store.add_approval_event(approval_id, who, event, note, now)
        except StoreError as exc:  # the decision itself is committed; only the note is lost
            _log.error("approval.event_failed", approval_id=approval_id, error=str(exc))
        if updated.state is approvals.ApprovalState.PENDING:  # one of N approvers so far
            self.spawn(self._refresh(updated.id))
        else:
            self.metrics.approval_latency.observe((now - current.requested_at).total_seconds())
            self._closed(updated, outcome, _describe(outcome, updated), by=who, outcome=outcome)
        if submit is not None:
            self._submit(*submit)
        return updated

    async def _approved(
        self, tx: Transaction, approval: approvals.Approval, now: datetime
    ) -> tuple[str, _Submit | None]:
        """An approval never overrides the kill switch, a breaker, a limit or dry run."""
        who = ", ".join(approval.approved_by)
        policy = self._by_name.get(approval.policy)
        if policy is None:
            reason = f"approved by {who}, but policy {approval.policy} is no longer loaded"
            await _settle(tx, approval.decision_id, Outcome.FAILED, reason)
            return Outcome.FAILED, None
        # The guards an approval never overrides (scope as it is now, the kill switch, the
        # breaker, cooldown and limits, dry run): the same stages, over facts read now.
        gates = self._adopt(await tx.flags())
        job = Job(None, policy, now, approval.action, approval.target, {})
        facts = await read_facts(tx, [job], now, gates, self.settings, {})
        stop = first_stop(job, facts, now, AT_APPROVAL)
        if stop is not None and stop.outcome is not Outcome.DRY_RUN:
            if stop.outcome in (Outcome.PAUSED, Outcome.TRIPPED):
                reason = f"approved by {who} while {stop.outcome}"
            else:
                reason = f"approved by {who}, but {stop.reason}"
            await _settle(tx, approval.decision_id, stop.outcome, reason)
            return stop.outcome, None
        params = await tx.approval_params(approval.id)
        dry = stop is not None  # only the dry_run stage is left to stop it here
        action_id = await tx.add_action(
            approval.decision_id,
            policy.name,
            approval.action,
            approval.target,
            params,
            dry_run=dry,
            now=now,
        )
        if dry:
            await _settle(tx, approval.decision_id, Outcome.DRY_RUN, f"approved by {who}; dry run")
            return Outcome.DRY_RUN, None
        await _settle(tx, approval.decision_id, EXECUTING, f"approved by {who}")
        return EXECUTING, (action_id, policy.name, approval.action, approval.target, params)

    async def expire_approvals(self) -> None:
        now = self.clock()
        expired = []
        async with self.store.transaction() as tx:
            for pending in await tx.expired_approvals(now):
                done = approvals.expire(pending, now)
                if done is None:
                    continue
                await tx.save_approval(done)
                reason = f"no decision before {pending.expires_at.isoformat()} (approval_ttl)"
                await tx.set_outcome(done.decision_id, Outcome.EXPIRED, reason)
                expired.append(done)
        for item in expired:
            self._closed(item, Outcome.EXPIRED)

    def _backends(self) -> dict[str, Executor]:
        """One entry per executor object (one may serve several action types)."""
        unique: dict[int, tuple[str, Executor]] = {}
        for action, executor in self.executors.items():
            unique.setdefault(id(executor), (action.split(".")[0], executor))
        return dict(unique.values())

    async def probe_backends(self) -> None:
        for backend, executor in self._backends().items():
            self._probed(backend, await executor.probe())
        if self.checker is not None:  # conditions and verification depend on it
            self._probed("prometheus", await self.checker.probe())

    def _probed(self, backend: str, reason: str | None) -> None:
        """What the last probe of a backend (or the state store, each second) found."""
        if reason != self.backends.get(backend, ""):
            _log.info("backend.probed", backend=backend, up=reason is None, reason=reason)
        self.backends[backend] = reason
        self.metrics.backend_up.labels(backend).set(int(reason is None))

    # --- Slack ------------------------------------------------------------------------------

    async def slack_click(
        self, approval_id: str, user: str, *, approve: bool, channel: str
    ) -> None:
        """One button click, verified by the web layer; runs after Slack got its 200."""
        if self.slack is None:
            return
        try:
            await self._click(approval_id, user, approve=approve, channel=channel)
        except StoreError as exc:  # nothing was committed: the click changed nothing
            _log.error("approval.click_failed", approval_id=approval_id, user=user, error=str(exc))
            await self._tell(
                channel,
                user,
                "remediator cannot reach its state store; nothing changed. Try again.",
            )

    async def _click(self, approval_id: str, user: str, *, approve: bool, channel: str) -> None:
        current = await self.store.approval(approval_id)
        if current is None:
            await self._tell(
                channel, user, "This approval does not exist (any more); nothing changed."
            )
            return
        # In Slack an empty approver list means nobody: a button must never approve by itself.
        if user not in current.approvers:
            reason = f"{mention(user)} is not an approver of policy {current.policy}"
            await self.store.add_approval_event(approval_id, user, "refused", reason, self.clock())
            self.metrics.approval_decisions.labels(current.policy, "refused").inc()
            _log.warning(
                "approval.refused", approval_id=approval_id, user=user, policy=current.policy
            )
            await self._tell(
                channel,
                user,
                f"You are not an approver of policy `{current.policy}`; nothing changed.",
            )
            return
        try:
            await self.decide_approval(approval_id, user, approve=approve)
        except approvals.ApprovalRefused as exc:
            await self.store.add_approval_event(
                approval_id, user, "click_refused", exc.reason, self.clock()
            )
            await self._tell(channel, user, f"Nothing changed: {escape_mrkdwn(exc.reason)}.")

    async def _say(self, text: str) -> None:
        assert self.slack is not None  # noqa: S101  # callers check
        try:
            await self.slack.post(text)
        except SlackError as exc:
            _log.error("slack.post_failed", error=str(exc))

    async def _tell(self, channel: str, user: str, text: str) -> None:
        assert self.slack is not None  # noqa: S101  # callers check
        try:
            await self.slack.ephemeral(channel, user, text)
        except SlackError as exc:
            _log.error("slack.ephemeral_failed", user=user, error=str(exc))

    async def _announce(self, approval: approvals.Approval) -> None:
        if self.slack is None:
            return
        try:
            context = await self.store.approval_context(approval.id)
            text, blocks = request_message(approval, context)
            channel, ts = await self.slack.post(text, blocks)
            await self.store.set_approval_message(approval.id, channel, ts)
        except (SlackError, StoreError) as exc:
            _log.error("approval.announce_failed", approval_id=approval.id, error=str(exc))
            return
        _log.info("approval.announced", approval_id=approval.id, channel=channel, ts=ts)

    async def _refresh(self, approval_id: str, outcome: str | None = None) -> None:
        """Show the approval's current state on its message: who, when, what happened."""
        if self.slack is None:
            return
        try:
            message = await self.store.approval_message(approval_id)
            current = await self.store.approval(approval_id)
            if message is None or current is None:
                return
            context = await self.store.approval_context(approval_id)
            line = status_line(current, outcome, self.clock())
            text, blocks = request_message(current, context, line)
            await self.slack.update(*message, text, blocks)
        except (SlackError, StoreError) as exc:
            _log.error("approval.update_failed", approval_id=approval_id, error=str(exc))

    async def _finished(
        self, request: ActionRequest, outcome: str, reason: str, seconds: float
    ) -> None:
        """An action's result: in its approval's thread, or the channel if post_results."""
        if self.slack is None:
            return
        mark = ":white_check_mark:" if outcome == Outcome.EXECUTED else ":x:"
        # Targets and reasons carry alert text: shown as text, never as Slack markup.
        text = (
            f"{mark} `{request.type}` on {code_span(request.target)} {outcome} in "
            f"{seconds:.1f}s: {escape_mrkdwn(reason)}"
        )
        try:
            approval = await self.store.approval_for_action(request.action_id)
            message = await self.store.approval_message(approval.id) if approval else None
            if message is not None:
                await self.slack.post(text, thread_ts=message[1])
            elif self._post_results:
                await self.slack.post(f"{text} (policy `{request.policy}`)")
        except (SlackError, StoreError) as exc:
            _log.error("slack.result_failed", action_id=request.action_id, error=str(exc))


async def _settle(tx: Transaction, decision_id: int, outcome: str, reason: str) -> None:
    """An approved decision's outcome. The store refuses when the decision is no longer open
    (someone else settled it): raising rolls the whole approval back, action row included."""
    if not await tx.set_outcome(decision_id, outcome, reason):
        raise approvals.ApprovalRefused(
            f"decision {decision_id} was settled meanwhile; nothing changed", conflict=True
        )


def _describe(outcome: str | None, approval: approvals.Approval) -> str | None:
    if outcome is None or approval.state is not approvals.ApprovalState.APPROVED:
        return None
    if outcome == EXECUTING:
        return f"running `{approval.action}` on {code_span(approval.target)}"
    return f"not run: {outcome}"


_Submit = tuple[int, str, str, str, dict[str, str]]
_Work = tuple[Sequence[Alert], Mapping[tuple[str, int], Stopped | Met]]
_Seen = tuple[bytes, tuple[Policy, ...]]


def labels_digest(labels: Mapping[str, str]) -> bytes:
    """16 bytes that stand for a label set in the episode cache (a dict would cost ~1 KiB)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted(labels.items()):
        for part in (name, value):  # length-prefixed: no separator a value could forge
            raw = part.encode("utf-8", "surrogatepass")
            digest.update(len(raw).to_bytes(4, "big"))
            digest.update(raw)
    return digest.digest()
