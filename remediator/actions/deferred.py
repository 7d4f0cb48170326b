"""An executor whose client library is imported at its first use, not at the start.

docker-py (with requests and urllib3) takes 0.1-0.2 s to import, and the Docker executor is
built even when no policy uses it (so /healthz can report the engine). Importing it when the
first probe or action needs it, in a worker thread, lets the daemon answer webhooks sooner
after a start and keeps the event loop free while the import runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from remediator.actions.base import ActionRequest, ActionResult, Executor


class Deferred:
    """Executor protocol over `load`, which imports and builds the real executor. `load`
    runs once, in a worker thread (imports hold the import lock, not the event loop)."""

    def __init__(self, load: Callable[[], Executor], *, name: str) -> None:
        self._load = load
        self._lock = asyncio.Lock()
        self._executor: Executor | None = None
        self.name = name

    async def loaded(self) -> Executor:
        if self._executor is None:
            async with self._lock:
                if self._executor is None:
                    self._executor = await asyncio.to_thread(self._load)
        return self._executor

    async def execute(self, request: ActionRequest) -> ActionResult:
        return await (await self.loaded()).execute(request)

    async def probe(self) -> str | None:
        return await (await self.loaded()).probe()

    async def close(self) -> None:
        # Never loaded: nothing was opened, so nothing is imported just to close it.
        if self._executor is not None:
            await self._executor.close()

    def __repr__(self) -> str:
        return f"Deferred({self.name}, loaded={self._executor is not None})"
