"""One action per target at a time, within this process: per-target FIFO locks that exist only
while an action holds or waits for them, and what the last action on a target left behind.

Nothing here decides whether to act or talks to the store; the runner holds a target's lock
around an action's execution and verification, and re-checks its guards once it has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

TargetKey = tuple[str, str]


def target_key(action: str, target: str) -> TargetKey:
    """Actions of one backend on one target serialize, whatever their type: a
    kubernetes.rollback and a kubernetes.scale of `prod/checkout`, a docker.restart and a
    docker.exec of `web-1`. A backend's targets never collide with another backend's."""
    return action.split(".", 1)[0], target


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # asyncio.Lock wakes its waiters in arrival order
        self.users = 0


class TargetLocks:
    """Per-target locks, dropped when nobody holds or waits: at most one entry per queued or
    running action, so the table stays as small as the work in flight."""

    def __init__(self) -> None:
        self._entries: dict[TargetKey, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def busy(self, key: TargetKey) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    @asynccontextmanager
    async def hold(self, key: TargetKey) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:  # also when cancelled while waiting
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


class LastDone:
    """When the last action of each (policy, target) that ran in this process ended: the
    cooldown a later action on that target is checked against when it starts. Bounded: the
    oldest half is forgotten when full (the decision-time cooldown in the store still holds)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._items: dict[tuple[str, str], datetime] = {}

    def get(self, policy: str, target: str) -> datetime | None:
        return self._items.get((policy, target))

    def put(self, policy: str, target: str, when: datetime) -> None:
        self._items.pop((policy, target), None)  # re-inserted as the newest
        self._items[(policy, target)] = when
        if len(self._items) > self._limit:
            for old in list(self._items)[: self._limit // 2]:
                del self._items[old]
