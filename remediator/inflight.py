"""The actions this process has taken on, as tasks, with the result posts spawned for them;
the bounded drain at shutdown; and the `interrupted` record of actions that never ran or
never finished. It never starts or executes an action: the runner does, and registers it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.core.outcomes import Outcome
from remediator.errors import RemediatorError
from remediator.metrics import Metrics
from remediator.sink import OutcomeSink
from remediator.store.records import Interrupted
from remediator.store.roles.store import Store

# The runner's log lines, under its name whichever part writes them.
_log = log.get("remediator.runner")

NOT_STARTED = "the daemon stopped before this action started; not re-run"


class InFlight:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        sink: OutcomeSink,
        clock: Callable[[], datetime],
        on_finished: Callable[[ActionRequest, str, str, float], Coroutine[Any, Any, None]] | None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._sink = sink
        self._clock = clock
        self._on_finished = on_finished
        self.tasks: dict[int, tuple[ActionRequest, asyncio.Task[None]]] = {}
        # Past the queue (slot and target held): a drain lets these finish or decide for
        # themselves; the others it cancels and records interrupted.
        self._claimed: set[int] = set()
        self.draining = False
        self._reports: set[asyncio.Task[None]] = set()

    def add(self, request: ActionRequest, task: asyncio.Task[None]) -> None:
        self.tasks[request.action_id] = (request, task)
        task.add_done_callback(lambda _: self._forget(request.action_id))

    def _forget(self, action_id: int) -> None:
        self.tasks.pop(action_id, None)
        self._claimed.discard(action_id)

    def claim(self, action_id: int) -> None:
        """Its slot and target are held: a drain no longer takes it for queued."""
        self._claimed.add(action_id)

    def report(self, request: ActionRequest, outcome: str, reason: str, seconds: float) -> None:
        """The result to Slack: spawned, so no post ever holds a slot or a target."""
        if self._on_finished is None:
            return
        task = asyncio.create_task(
            self._on_finished(request, outcome, reason, seconds),
            name=f"action-report-{request.action_id}",
        )
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def not_run(
        self, request: ActionRequest, bound: FilteringBoundLogger, reason: str
    ) -> None:
        """Recorded `interrupted` (pending, or running but not executed): never run."""
        try:
            found = await self._store.interrupt_actions([request.action_id], self._clock(), reason)
        except RemediatorError as exc:  # left unfinished: its lease runs out, interrupted
            bound.error("action.record_failed", error=str(exc))
            return
        self.record_interrupted(found)

    async def drain(self, within: timedelta) -> None:
        """Start nothing new: record queued actions interrupted; let running ones finish
        `within` the bound; then cancel and record the rest."""
        self.draining = True
        queued = {
            action_id: task
            for action_id, (_, task) in self.tasks.items()
            if action_id not in self._claimed
        }
        if queued:
            _log.info("runner.draining_queued", actions=len(queued))
            for task in queued.values():
                task.cancel()  # each waits for its target or a slot: nothing has started
            await asyncio.wait(queued.values())
            try:
                found = await self._store.interrupt_actions(
                    list(queued), self._clock(), NOT_STARTED
                )
            except RemediatorError as exc:  # left pending: recorded interrupted at the next start
                _log.error("runner.record_failed", error=str(exc), actions=sorted(queued))
            else:
                self.record_interrupted(found)
        await self._drain_running(within)
        if self._reports:  # let result posts go out, briefly
            _, late = await asyncio.wait(set(self._reports), timeout=5)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    async def _drain_running(self, within: timedelta) -> None:
        if not self.tasks:
            return
        running = dict(self.tasks)
        _log.info("runner.draining", actions=len(running), timeout_seconds=within.total_seconds())
        _, still = await asyncio.wait(
            [task for _, task in running.values()], timeout=within.total_seconds()
        )
        if not still:
            return
        for task in still:
            task.cancel()
        await asyncio.wait(still)
        reason = "the daemon stopped (drain_timeout) while this action ran; not re-run"
        found = await self._store.interrupt_actions(list(running), self._clock(), reason)
        self.record_interrupted(found)
        _log.warning("runner.drain_timeout", interrupted=[item.action_id for item in found])

    def record_interrupted(self, found: Sequence[Interrupted]) -> None:
        """Metrics and log for actions the store recorded interrupted, whoever held them."""
        for item in found:
            self._metrics.acted(item.policy, item.type, Outcome.INTERRUPTED)
            self._sink.settled(item.policy, Outcome.INTERRUPTED)
            _log.warning(
                "action.interrupted",
                action_id=item.action_id,
                policy=item.policy,
                action=item.type,
                reason=item.reason,
            )
