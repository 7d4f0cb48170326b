"""Intake: decides each webhook's alerts (known repeats from memory, conditions before the
transaction, the pipeline in a transaction shared through group commit) and applies what
was committed: memory, repeat counts, the outcome sink, actions to the runner, approval
requests and cancellations to the approvals part. It runs no action and talks to no Slack.
A webhook is decided by the rule set in force when it arrived, whatever a reload swaps in
meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta

from remediator import log
from remediator.approvals import Approvals
from remediator.checks.conditions import evaluate_conditions
from remediator.checks.prometheus import PrometheusChecker
from remediator.core.alert import Alert
from remediator.core.job import Met, Stopped
from remediator.core.judge import Decided, Verdict
from remediator.core.policy import Policy
from remediator.core.ruleset import Ruleset
from remediator.core.verify import VerifyPlan
from remediator.errors import StoreError
from remediator.escalation import request_for
from remediator.groupcommit import GroupCommit
from remediator.matchlog import MatchLog
from remediator.memory import Memory
from remediator.metrics import Metrics
from remediator.pipeline import decide
from remediator.runner import Runner
from remediator.sink import OutcomeSink
from remediator.store.roles.store import Store
from remediator.switches import Switches

_log = log.get("remediator.intake")
# Held episodes decided again per transaction by a resume or reset (as a large webhook).
REDECIDE_BATCH = 500
# A webhook's alerts, its conditions evaluated before the transaction, and its rule set.
_Work = tuple[Sequence[Alert], Mapping[tuple[str, int], Stopped | Met], Ruleset]


class Intake:
    def __init__(
        self,
        *,
        rules: Ruleset,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        switches: Switches,
        memory: Memory,
        runner: Runner,
        approvals: Approvals,
        sink: OutcomeSink,
        checker: PrometheusChecker | None = None,
    ) -> None:
        self.rules = rules  # replaced whole by a reload (adopt)
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._switches = switches
        self._memory = memory
        self._runner = runner
        self._approvals = approvals
        self._sink = sink
        self.checker = checker  # set once by a reload that first needs Prometheus
        # One transaction never mixes rule sets: a group holds webhooks of one.
        self._commits: GroupCommit[_Work, Decided] = GroupCommit(
            self._decide_group, key=lambda work: work[2]
        )
        self._repeats: dict[int, int] = {}
        self._matchlog = MatchLog(metrics)

    @property
    def policies(self) -> Sequence[Policy]:
        return self.rules.policies

    def adopt(self, rules: Ruleset) -> None:
        """The rule set for webhooks that arrive from now on; those under way keep theirs."""
        self.rules = rules

    async def ingest(self, alerts: Sequence[Alert]) -> Decided:
        """Decide every alert; returns only after the decisions are committed. Webhooks that
        arrive while a transaction runs share the next one (groupcommit.py)."""
        for alert in alerts:
            self._metrics.received(alert.source, alert.status).inc()
        rules = self.rules  # this webhook's, to the end
        self._matchlog.trace(rules.index, alerts)
        gates = rules.gates(self._switches.gates)
        decided = self._memory.known_repeats(alerts, gates, rules.generation)
        if decided is not None:
            self._apply(decided, alerts)
            return decided
        conditions = None
        if self.checker is not None:
            conditions = await evaluate_conditions(
                self.checker, alerts, rules.index, self._clock(), self._memory.settled
            )
        return await self._commits.submit((alerts, conditions or {}, rules))

    async def wait_idle(self) -> None:
        """Until every webhook already in a transaction is committed (or failed)."""
        await self._commits.wait_idle()

    async def _decide_group(self, group: Sequence[_Work]) -> list[Decided]:
        """Several webhooks' alerts judged as one batch in one transaction; each gets back
        its own verdicts, and the whole batch is applied once, after the commit."""
        alerts: list[Alert] = []
        conditions: dict[tuple[str, int], Stopped | Met] = {}
        bounds = []
        rules = group[0][2]  # the same for every webhook of the group (GroupCommit's key)
        for batch, checked, _ in group:
            offset = len(alerts)
            alerts.extend(batch)
            conditions.update({(p, i + offset): r for (p, i), r in checked.items()})
            bounds.append((offset, len(alerts)))
        decided = await self._decide(alerts, rules, conditions)
        self._memory.saw(alerts, decided.matched, rules.generation, decided.unmatched)
        self._apply(decided, alerts)
        return [
            Decided(verdicts=[v for v in decided.verdicts if start <= v.position < end])
            for start, end in bounds
        ]

    async def redecide(self, policy: str | None = None) -> list[Verdict]:
        """Resume and reset: decide again, at once, the still-firing episodes a pause or a
        breaker held (`policy`'s only, if given), through the same pipeline as a webhook
        (every guard again, conditions before the transaction), without waiting for the
        sender's next repeat. Each is decided once: the pipeline re-reads its claim under the
        deciding lock and leaves it alone if a repeat or another replica decided it first,
        or if a gate still holds it. Raises StoreError; what was committed stays."""
        rules = self.rules  # the set in force now decides them
        held = await self._store.held_episodes(policy)
        verdicts: list[Verdict] = []
        for start in range(0, len(held), REDECIDE_BATCH):
            chunk = held[start : start + REDECIDE_BATCH]
            keys = {(name, alert.episode) for name, alert in chunk}
            alerts = list({alert.episode: alert for _, alert in chunk}.values())
            conditions = None
            if self.checker is not None:
                conditions = await evaluate_conditions(
                    self.checker,
                    alerts,
                    rules.index,
                    self._clock(),
                    _outside(keys),  # only the held pairs ask Prometheus
                )
            decided = await self._decide(alerts, rules, conditions, reopen=keys)
            self._apply(decided, alerts)
            verdicts += decided.verdicts
        if verdicts:
            _log.info("episodes.redecided", policy=policy, decisions=len(verdicts))
        return verdicts

    async def _decide(
        self,
        alerts: Sequence[Alert],
        rules: Ruleset,
        conditions: Mapping[tuple[str, int], Stopped | Met] | None,
        *,
        reopen: Collection[tuple[str, str]] | None = None,
    ) -> Decided:
        """One transaction of the pipeline. Another replica may have paused or tripped
        meanwhile: the switches are read in it, with the facts (one round trip), adopted,
        and are what the judgement sees."""
        async with self._store.transaction() as tx:
            return await decide(
                alerts,
                rules.index,
                tx,
                self._clock(),
                rules.gates(self._switches.gates),
                rules.settings,
                conditions,
                reopen=reopen,
                adopt=lambda flags: rules.gates(self._switches.adopt(flags)),
            )

    def _apply(self, decided: Decided, alerts: Sequence[Alert]) -> None:
        self._memory.claimed(decided.claims)
        self._matchlog.unmatched(alerts, decided.unmatched)
        for decision_id, count in decided.repeats.items():
            self._repeats[decision_id] = self._repeats.get(decision_id, 0) + count
        for verdict in decided.verdicts:
            self._sink.recorded(verdict)
            if verdict.action_id is not None:
                self._submit(verdict.action_id, verdict)
        for request in decided.requested:
            self._approvals.requested(request)
        for cancelled in decided.cancelled:
            self._approvals.cancelled(cancelled)

    def _submit(self, action_id: int, verdict: Verdict) -> None:
        # Rendered with the action (every verdict with an action_id has it).
        verify = verdict.verify or VerifyPlan(timedelta(minutes=2))
        self._runner.submit(
            request_for(
                action_id,
                verdict.policy,
                verdict.action,
                verdict.target,
                verdict.params,
                verify,
                verdict.step,
                verdict.ladder,
            )
        )

    async def flush_repeats(self) -> None:
        """Repeat counts gathered since the last flush, to the store (each second)."""
        counts, self._repeats = self._repeats, {}
        try:
            await self._store.add_repeats(counts, self._clock())
        except StoreError:
            for decision_id, n in counts.items():  # keep them for the next flush
                self._repeats[decision_id] = self._repeats.get(decision_id, 0) + n
            raise


def _outside(keys: Collection[tuple[str, str]]) -> Callable[[str, str], bool]:
    """evaluate_conditions' `settled`: every (policy, episode) but these."""
    return lambda policy, episode: (policy, episode) not in keys
