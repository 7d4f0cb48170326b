"""The daemon's parts (switches, intake, approvals, the Slack conversation, health, runner and
the supervisor of their background work), built and wired in one function, `build_daemon`,
the order they start and stop in, and how a reloaded rule set reaches each of them at once.
No decisions and no HTTP here.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from remediator import log
from remediator.actions.base import Executor
from remediator.approvals import Approvals
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config
from remediator.conversation import Clicks, Conversation
from remediator.core.policy import Policy
from remediator.core.ruleset import Ruleset
from remediator.errors import StoreError
from remediator.health import Health, unique_executors
from remediator.intake import Intake
from remediator.memory import Memory
from remediator.metrics import Metrics
from remediator.runner import Runner
from remediator.sink import OutcomeSink
from remediator.store.roles.store import Store
from remediator.supervisor import Supervisor
from remediator.switches import Switches

if TYPE_CHECKING:  # slack_sdk is imported only when Slack is configured (backends.build_slack)
    from remediator.slack import SlackApprover

_log = log.get("remediator.daemon")
PRUNE_EVERY = 3600.0  # seconds; the first prune runs at start
SPAWNED_GRACE = 5.0  # seconds side work (result replies, message updates) gets at a stop


@dataclass
class Daemon:
    store: Store
    metrics: Metrics
    clock: Callable[[], datetime]
    switches: Switches
    intake: Intake
    approvals: Approvals
    conversation: Conversation
    clicks: Clicks
    health: Health
    runner: Runner
    supervisor: Supervisor
    executors: MutableMapping[str, Executor]  # shared with the runner and health
    checker: PrometheusChecker | None
    action_lease: timedelta
    retention: timedelta

    def adopt(self, policies: Sequence[Policy], config: Config) -> list[str]:
        """Swap in a reloaded rule set: every part that holds policies or their settings gets
        it in this one synchronous step, so no webhook, approval or action sees half of it
        (a webhook under way keeps the rule set it took). Episodes, claims, approvals and
        breakers live in the store and stay. Returns the names of the policies removed."""
        rules = Ruleset.of(policies, config)
        removed = sorted(set(self.intake.rules.by_name) - set(rules.by_name))
        self.intake.adopt(rules)
        self.approvals.adopt(rules, removed)
        self.switches.adopt_policies(rules.policies, dry_run=rules.dry_run)
        self.retention = config.retention
        self.metrics.policies(rules.by_name)
        return removed

    def add_backends(
        self, executors: MutableMapping[str, Executor], checker: PrometheusChecker | None
    ) -> None:
        """Backends a reloaded policy needs that were not built at start (running ones stay:
        an action under way may use them)."""
        self.executors.update(executors)
        if checker is not None and self.checker is None:
            self.checker = self.intake.checker = self.runner.checker = checker
            self.health.checker = checker

    async def start(self) -> None:
        """Record what a crash left running, restore the switches, start background loops."""
        # Alone on the store (SQLite), whatever is unfinished was left by a dead run; shared
        # (PostgreSQL), another replica may still be running it: only a stale lease says not.
        lease = None if self.store.exclusive else self.action_lease
        self.runner.record_interrupted(await self.store.interrupt_stale(self.clock(), lease))
        self.switches.publish()  # every policy's breaker gauge exists from the start
        await self.sync()
        for pending in await self.store.unannounced_approvals():  # a crash before the post
            self.conversation.announce(pending)
        every = self.supervisor.every
        every("flush-repeats", 1.0, self.intake.flush_repeats)
        every("sync", 1.0, self.sync)
        every("probe-backends", 15.0, self.health.probe_backends)
        every("renew-leases", self.action_lease.total_seconds() / 3, self.renew_leases)
        every("prune", PRUNE_EVERY, self.prune)

    async def stop(self, drain: timedelta) -> None:
        await self.intake.wait_idle()  # webhooks already in a transaction commit first
        await self.runner.drain(drain)
        await self.supervisor.finish_spawned(SPAWNED_GRACE)  # let Slack posts go out, briefly
        await self.supervisor.stop()
        try:
            await self.intake.flush_repeats()
        except StoreError as exc:
            _log.error("repeats.flush_failed", error=str(exc))
        for executor in unique_executors(self.executors).values():
            await executor.close()
        if self.checker is not None:
            await self.checker.close()

    async def sync(self) -> None:
        """Every second: switches and pending approvals as the store has them, then expiry.
        Every replica runs it; the expiry transaction holds the decision lock and touches
        only still-pending approvals, so two replicas never expire one approval twice."""
        try:
            flags = await self.switches.stored()
        except StoreError as exc:
            self.health.probed("store", str(exc))
            raise
        self.health.probed("store", None)
        self.switches.adopt(flags)
        await self.approvals.sync()

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


def build_daemon(
    config: Config,
    *,
    policies: Sequence[Policy],
    store: Store,
    executors: MutableMapping[str, Executor],
    metrics: Metrics,
    clock: Callable[[], datetime],
    slack: SlackApprover | None = None,
    checker: PrometheusChecker | None = None,
) -> Daemon:
    """Every part, each handed the parts it uses; the daemon (app.py) and the integration
    tests build it here. The store is opened by the caller and closed by it after `stop`."""
    supervisor = Supervisor()
    sink = OutcomeSink(metrics)
    memory = Memory()
    conversation = Conversation(
        store, slack, clock, supervisor.spawn, post_results=config.slack.post_results
    )
    switches = Switches(
        store, metrics, clock, policies, dry_run=config.dry_run, on_tripped=conversation.tripped
    )
    runner = Runner(
        store,
        executors,
        metrics,
        clock,
        max_concurrent=config.limits.max_concurrent_actions,
        on_unverified=switches.trip,
        on_finished=conversation.finished,
        admit=switches.admit,
        on_held=memory.reopened,
        checker=checker,
        sink=sink,
    )
    rules = Ruleset.of(policies, config)
    approvals = Approvals(
        store=store,
        metrics=metrics,
        clock=clock,
        rules=rules,
        switches=switches,
        runner=runner,
        sink=sink,
        notices=conversation,
    )
    runner.approvals = approvals  # a ladder's step with its own approval asks through it
    intake = Intake(
        rules=rules,
        store=store,
        metrics=metrics,
        clock=clock,
        switches=switches,
        memory=memory,
        runner=runner,
        approvals=approvals,
        sink=sink,
        checker=checker,
    )
    metrics.policies(rules.by_name)
    # The config in force was loaded and validated before this (serve, a test): as a reload.
    metrics.reload_successful.set(1)
    metrics.reload_success_time.set_to_current_time()
    return Daemon(
        store=store,
        metrics=metrics,
        clock=clock,
        switches=switches,
        intake=intake,
        approvals=approvals,
        conversation=conversation,
        clicks=Clicks(conversation, approvals, store, metrics, clock, supervisor.spawn),
        health=Health(executors, checker, metrics, runner),
        runner=runner,
        supervisor=supervisor,
        executors=executors,
        checker=checker,
        action_lease=config.action_lease,
        retention=config.retention,
    )
