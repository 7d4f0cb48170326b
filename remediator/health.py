"""Backend health: what the last probe of each backend (each executor's, Prometheus, the state
store) found, as `/healthz` shows it and `remediator_backend_up` counts it, and how many
actions run. A probe only reports: a backend that is down holds nothing back by itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from remediator import log
from remediator.actions.base import Executor
from remediator.checks.prometheus import PrometheusChecker
from remediator.metrics import Metrics
from remediator.runner import Runner

_log = log.get("remediator.health")


def unique_executors(executors: Mapping[str, Executor]) -> dict[str, Executor]:
    """One entry per executor object (one may serve several action types), by backend name."""
    unique: dict[int, tuple[str, Executor]] = {}
    for action, executor in executors.items():
        unique.setdefault(id(executor), (action.split(".")[0], executor))
    return dict(unique.values())


class Health:
    def __init__(
        self,
        executors: Mapping[str, Executor],
        checker: PrometheusChecker | None,
        metrics: Metrics,
        runner: Runner,
    ) -> None:
        self._executors = executors
        self.checker = checker  # set once by a reload that first needs Prometheus
        self._metrics = metrics
        self._runner = runner
        # backend -> None when up, else why not
        self.backends: dict[str, str | None] = {}

    @property
    def running_actions(self) -> int:
        return self._runner.running

    async def probe_backends(self) -> None:
        for backend, executor in unique_executors(self._executors).items():
            self.probed(backend, await executor.probe())
        if self.checker is not None:  # conditions and verification depend on it
            self.probed("prometheus", await self.checker.probe())

    def probed(self, backend: str, reason: str | None) -> None:
        """What the last probe of a backend (or the state store, each second) found."""
        if reason != self.backends.get(backend, ""):
            _log.info("backend.probed", backend=backend, up=reason is None, reason=reason)
        self.backends[backend] = reason
        self._metrics.backend_up.labels(backend).set(int(reason is None))
