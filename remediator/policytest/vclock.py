"""Virtual time for `remediator test`: an event loop whose clock stands still while anything
is ready to run or the store is at work, and jumps to the next timer once everything waits
for one; and the store wrapper that tells it when the store is at work.

So the daemon's own code (the runner's verify windows, retries, ladders) runs as it would,
minutes of it in milliseconds, and always to the same times. Nothing here decides anything.
"""

from __future__ import annotations

import asyncio
import inspect
import selectors
import time
from types import TracebackType
from typing import Any

# Real seconds the loop may wait with nothing to run, no timer and no store work before it
# gives up: the simulation waits for something that can never come (a bug, not a slow disk).
STALL_SECONDS = 30.0


class StalledError(RuntimeError):
    """The simulation waits for nothing that can ever happen."""


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """`time()` starts at 0 and moves only by jumps to the next timer (see _Selector)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.store_calls = 0  # calls into the store under way (CountedStore)
        super().__init__(_Selector(self))

    def time(self) -> float:
        return self.now


class _Selector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """`timeout` is what the loop would sleep until its next timer (None: no timer)."""
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is not None and self._loop.store_calls == 0:
            # Everything waits for a timer: the next one is due now.
            self._loop.now += timeout
            return []
        # The store's thread works (its answer wakes the loop), or nothing at all is
        # scheduled (a thread the loop started itself, at shutdown): wait for real.
        started = time.monotonic()
        while not ready:
            ready = super().select(1.0)
            if not ready and time.monotonic() - started > STALL_SECONDS:
                raise StalledError(
                    f"the simulation waited {STALL_SECONDS:g}s for something that never came "
                    f"({self._loop.store_calls} store calls under way)"
                )
        return ready


class CountedStore:
    """A store whose every call is counted while it runs: the loop's clock must not jump
    while SQLite works on its own thread. Any store: calls pass through unchanged."""

    def __init__(self, inner: object, loop: VirtualClockLoop) -> None:
        self._inner = inner
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._counted(result)
            if hasattr(result, "__aenter__"):  # transaction(), target_lease()
                return _CountedContext(result, self._loop)
            return result

        return call

    async def _counted(self, work: Any) -> Any:
        self._loop.store_calls += 1
        try:
            return await work
        finally:
            self._loop.store_calls -= 1


class _CountedContext:
    """Entering and leaving counted; what it yields (a transaction) counted call by call."""

    def __init__(self, inner: Any, loop: VirtualClockLoop) -> None:
        self._inner = inner
        self._loop = loop

    async def __aenter__(self) -> Any:
        self._loop.store_calls += 1
        try:
            value = await self._inner.__aenter__()
        finally:
            self._loop.store_calls -= 1
        return None if value is None else CountedStore(value, self._loop)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool | None:
        self._loop.store_calls += 1
        try:
            result: bool | None = await self._inner.__aexit__(kind, error, trace)
        finally:
            self._loop.store_calls -= 1
        return result
