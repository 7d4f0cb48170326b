"""Client libraries a daemon may not need are imported at first use, not at the start."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.actions.deferred import Deferred


def test_importing_the_daemon_imports_no_docker_postgres_kubernetes_or_slack_client() -> None:
    probe = (
        "import sys, remediator.app, remediator.daemon, remediator.web.server\n"
        "print(' '.join(m for m in ('docker', 'requests', 'asyncpg', 'kubernetes', 'slack_sdk') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


class _Fake:
    def __init__(self) -> None:
        self.closed = False

    async def execute(self, request: ActionRequest) -> ActionResult:
        return ActionResult(ok=True, detail=request.type)

    async def probe(self) -> str | None:
        return "fake is down"

    async def close(self) -> None:
        self.closed = True


def test_the_executor_is_loaded_once_in_a_worker_thread_even_by_concurrent_callers() -> None:
    loads: list[int] = []
    fake = _Fake()

    def load() -> Executor:
        loads.append(threading.get_ident())
        return fake

    async def scenario() -> list[str | None]:
        deferred = Deferred(load, name="fake")
        assert loads == []  # building it loads nothing
        reasons = await asyncio.gather(*(deferred.probe() for _ in range(5)))
        await deferred.close()
        return list(reasons)

    assert asyncio.run(scenario()) == ["fake is down"] * 5
    assert len(loads) == 1
    assert loads[0] != threading.get_ident()
    assert fake.closed


def test_closing_an_executor_never_used_loads_nothing() -> None:
    def load() -> Executor:
        raise AssertionError("closing must not import the client library")

    asyncio.run(Deferred(load, name="unused").close())
