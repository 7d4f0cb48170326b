"""A supervisor of named background tasks: the daemon's periodic loops and its side work
(Slack posts, click handling), started from one place and stopped in stages. It decides
nothing, leaves no task of its own running after `stop`, and never swallows a cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from remediator import log
from remediator.errors import StoreError

_log = log.get("remediator.supervisor")


class Supervisor:
    def __init__(self) -> None:
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._spawned: set[asyncio.Task[None]] = set()

    def every(self, name: str, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` now, then `seconds` after each round ends, until `stop`. A StoreError or
        a bug in one round is logged and the loop goes on."""
        if name in self._loops:
            raise RuntimeError(f"background loop {name} is already running")
        self._loops[name] = asyncio.create_task(_every(seconds, job), name=name)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Side work (Slack calls and the like): tracked, never awaited by a request."""
        task = asyncio.create_task(work, name=name)
        self._spawned.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._spawned.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # side work handles its own errors: this is a bug
        if exc is not None:
            _log.error("background.failed", task=task.get_name(), exc_info=exc)

    @property
    def spawned(self) -> int:
        """How much side work is under way."""
        return len(self._spawned)

    async def finish_spawned(self, within: float) -> None:
        """First stage of a stop: side work under way gets `within` seconds to finish (a
        result reply, a message update); what is still running then is cancelled."""
        if not self._spawned:
            return
        _, late = await asyncio.wait(set(self._spawned), timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def stop(self) -> None:
        """Last stage: the loops are cancelled, with any side work started meanwhile, and
        awaited. A cancellation of the caller itself propagates (asyncio.wait never eats it)."""
        tasks = [*self._loops.values(), *self._spawned]
        self._loops = {}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    name = getattr(job, "__name__", "?")
    while True:
        try:
            await job()
        except StoreError as exc:
            _log.error("background.store_error", job=name, error=str(exc))
        except Exception:  # noqa: BLE001  # a bug in one round must not stop the loop for good
            _log.exception("background.failed", job=name)
        await asyncio.sleep(seconds)
