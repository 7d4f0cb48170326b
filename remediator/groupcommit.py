"""Group commit: webhooks that arrive while a transaction is being decided wait for the next
one and share it, so a burst costs one transaction and one commit (one fsync), not one each.

Each caller gets its own result only after the commit that holds its work: a webhook is
still acknowledged only once its decisions are durable. If a shared transaction fails, each
of its callers is tried again alone, so one bad request fails only itself. Work whose `key`
is not the same object (webhooks taken under two rule sets, around a reload) never shares one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# A bound on one shared transaction: it is held under the store's write lock (or, on
# PostgreSQL, the decision lock all replicas share) while it is judged and written.
MAX_GROUP = 64


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        max_group: int = MAX_GROUP,
        key: Callable[[T], object] = lambda _: None,
    ) -> None:
        """`run(items)` does the items' work in one transaction and returns one result per
        item, in order, once that transaction is committed; the items of one call share one
        `key` (compared by identity)."""
        self._run = run
        self._max = max_group
        self._key = key
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="group-commit")
        # Shielded: a caller that goes away does not cancel the work others share; its
        # decisions still commit and apply, as they would had it waited.
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Until everything submitted so far is committed or failed (used at shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _drain(self) -> None:
        while self._queue:
            await self._gather()
            size = self._leading()
            group, self._queue = self._queue[:size], self._queue[size:]
            try:
                await self._settle(group)
            except BaseException as exc:  # cancelled mid-group: nobody may wait forever
                for _, future in group:
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    elif isinstance(exc, Exception):
                        _fail(future, exc)
                raise

    async def _gather(self) -> None:
        """Webhooks sent together reach the queue over a few loop turns (each is read and
        parsed first): wait while the queue still grows, so they share one transaction
        instead of one going alone and the rest in the next."""
        seen = 0
        while seen != len(self._queue) and len(self._queue) < self._max:
            seen = len(self._queue)
            await asyncio.sleep(0)

    def _leading(self) -> int:
        """How many items from the head of the queue may share a transaction: up to the bound,
        and only while their key is the first one's (the queue stays in arrival order)."""
        first = self._key(self._queue[0][0])
        size = 1
        for item, _ in self._queue[1 : self._max]:
            if self._key(item) is not first:
                break
            size += 1
        return size

    async def _settle(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001  # handed to every caller, retried alone below
            if len(group) == 1:
                _fail(group[0][1], exc)
                return
            for item, future in group:  # one bad request must not fail the others
                try:
                    (result,) = await self._run([item])
                except Exception as alone:  # noqa: BLE001  # the caller raises it
                    _fail(future, alone)
                else:
                    _succeed(future, result)
            return
        for (_, future), result in zip(group, results, strict=True):
            _succeed(future, result)


def _succeed(future: asyncio.Future[R], result: R) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[R], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        # The caller may have gone away (its wait was shielded): retrieving here keeps
        # asyncio from reporting an exception nobody read; the caller still gets it.
        future.add_done_callback(lambda f: f.exception())
