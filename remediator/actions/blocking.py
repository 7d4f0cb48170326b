"""Runs blocking client calls (docker-py) off the event loop, in daemon threads.

`asyncio.to_thread` uses the loop's default executor, which `asyncio.run` and interpreter
exit wait for: a restart blocked for its 30 s grace period would then hold SIGTERM's
bounded drain hostage. A daemon thread is abandoned at exit instead; the Docker engine
finishes a restart it has started on its own, and the action is recorded `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001  # handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked: nobody waits
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(
        target=work, name=f"blocking-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return await future
