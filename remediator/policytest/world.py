"""The world a policy test runs against, as its `results` say it answers: stand-ins for every
executor, for Prometheus (conditions, min_rate, verify) and for verify.http. Nothing outside
the process is touched. An answer goes to the policy that asked: each policy's queries and
URLs are rendered for every alert of the test, as the daemon renders them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from remediator.actions.base import ActionRequest, ActionResult, Executor
from remediator.checks.http import judge_answer
from remediator.checks.prometheus import PrometheusChecker, Verdict
from remediator.core.alert import Alert
from remediator.core.durations import format_duration
from remediator.core.job import render_verify
from remediator.core.kinds import KINDS
from remediator.core.kinds.http import expected_statuses
from remediator.core.policy import Policy
from remediator.core.render import render_context
from remediator.core.verify import HttpCheck
from remediator.errors import ActionError, RenderError
from remediator.policytest.spec import ActionAnswer, Entry, HttpAnswer, HttpValue, Results

HttpEntry = HttpValue | list[HttpValue]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Verifying:
    """The action whose verification runs in this task, and since when (loop seconds)."""

    action_id: int
    since: float
    within: float


# Set by the stand-in executor when an action is done: the runner verifies it in the same
# task right after, so the answers below know which verification asks, and how far into it.
_VERIFYING: ContextVar[_Verifying | None] = ContextVar("policytest_verifying", default=None)


class Answers(Generic[T]):
    """One answer per question, the last one repeated; `default` when none was given."""

    def __init__(self, given: Sequence[T], default: T) -> None:
        self._given = list(given) or [default]
        self._asked = 0

    def next(self) -> T:
        answer = self._given[min(self._asked, len(self._given) - 1)]
        self._asked += 1
        return answer


def spread(entry: T | list[T], fraction: float) -> T:
    """An entry's value `fraction` of the way through its window (a list spreads evenly)."""
    if not isinstance(entry, list):
        return entry
    return entry[min(len(entry) - 1, max(0, int(fraction * len(entry))))]


class World:
    def __init__(self, policies: Sequence[Policy], results: Results) -> None:
        self._policies = list(policies)
        # (what is asked, its rendered text) -> the policies that ask it, in file order
        self._askers: dict[tuple[str, str], list[str]] = {}
        self._values: dict[tuple[str, str], Answers[Entry]] = {}
        for name, given in results.prometheus.items():
            self._values[(name, "condition")] = Answers(given.condition, None)
            self._values[(name, "min_rate")] = Answers(given.min_rate, 1.0)
            self._values[(name, "verify")] = Answers(given.verify, None)
        self._http: dict[str, Answers[HttpEntry | None]] = {
            name: Answers(given, None) for name, given in results.http.items()
        }
        self._chosen: dict[tuple[int, str], object] = {}  # each verification's entry
        self.prometheus = StandInPrometheus(self)
        executor = StandInExecutor(results.actions)
        self.executors: dict[str, Executor] = dict.fromkeys(KINDS, executor)

    def learn(self, alert: Alert) -> None:
        """What each policy would ask the world about `alert`."""
        for policy in self._policies:
            context = render_context(
                alert.labels, alert.annotations, alert.template_view(), policy.name
            )
            if policy.condition is not None:
                spec = policy.condition.prometheus
                self._render("condition", spec.query.render, context, policy)
                if spec.min_rate is not None:
                    self._render("min_rate", spec.min_rate.render, context, policy)
            for verify in policy.verifies:
                try:
                    plan = render_verify(verify, alert, policy.name)
                except RenderError:
                    continue  # the daemon records render_error and asks nothing
                if plan.prometheus is not None:
                    self._asked("verify", plan.prometheus.query, policy)
                if plan.http is not None:
                    self._asked("http", plan.http.url, policy)

    def _render(self, what: str, render: Any, context: dict[str, Any], policy: Policy) -> None:
        with contextlib.suppress(RenderError):  # the daemon records render_error, asks nothing
            self._asked(what, render(context), policy)

    def _asked(self, what: str, text: str, policy: Policy) -> None:
        askers = self._askers.setdefault((what, text), [])
        if policy.name not in askers:
            askers.append(policy.name)

    def asks(self, what: str, text: str) -> bool:
        return (what, text) in self._askers

    def entry(self, what: str, query: str) -> Entry:
        """The next answer to `query` of the first policy asking it that has answers; for a
        verify query, the entry of the verification under way, and where in it."""
        if what == "verify":
            spread_value: Entry = self._verifying(what, lambda: self._next(what, query))
            return spread_value
        return self._next(what, query)

    def _next(self, what: str, query: str) -> Entry:
        for name in self._askers.get((what, query), []):
            answers = self._values.get((name, what))
            if answers is not None:
                found: Entry = answers.next()
                return found
        return 1.0 if what == "min_rate" else None  # traffic, but no data for the rest

    def _verifying(self, what: str, choose: Callable[[], Any]) -> Any:
        current = _VERIFYING.get()
        if current is None:
            return spread(choose(), 0.0)
        key = (current.action_id, what)
        if key not in self._chosen:
            self._chosen[key] = choose()
        elapsed = asyncio.get_running_loop().time() - current.since
        return spread(self._chosen[key], elapsed / current.within if current.within else 1.0)

    async def http_probe(self, check: HttpCheck, budget: float) -> Verdict:
        """verify.http's one try (runner.http_probe); by default the check holds."""
        del budget  # every answer here is immediate

        def choose() -> HttpEntry | None:
            for name in self._askers.get(("http", check.url), []):
                if name in self._http:
                    return self._http[name].next()
            return None

        answer: HttpAnswer | None = self._verifying("http", choose)
        healthy = expected_statuses(check.expect_status)
        status = answer.status if answer is not None else 200 if 200 in healthy else min(healthy)
        body = answer.body if answer is not None else None
        if body is None:  # a status alone: the body says what the check looks for
            body = check.contains or ""
        return judge_answer(check, status, body)


def _text(value: float) -> str:
    return "NaN" if value != value else repr(value)  # noqa: PLR0124  # NaN is not itself


class StandInPrometheus(PrometheusChecker):
    """Answers range and instant queries from the test's results; never connects."""

    def __init__(self, world: World) -> None:
        super().__init__("http://prometheus.invalid")
        self._world = world

    async def range(
        self, query: str, end: datetime, window: timedelta, step: timedelta
    ) -> dict[str, Any]:
        entry = self._world.entry("condition", query)
        values = entry if isinstance(entry, list) else [] if entry is None else [entry]
        if not values:
            return _answer("matrix", [])
        count = int(window / step) + 1  # as many samples as the window holds (judge_range)
        start = end - window
        samples = [
            [(start + step * i).timestamp(), _text(values[i * len(values) // count])]
            for i in range(count)
        ]
        return _answer("matrix", [{"metric": {}, "values": samples}])

    async def instant(self, query: str) -> dict[str, Any]:
        what = "min_rate" if self._world.asks("min_rate", query) else "verify"
        value = self._world.entry(what, query)
        if value is None or isinstance(value, list):  # (a verify entry is spread already)
            return _answer("vector", [])
        return _answer("vector", [{"metric": {}, "value": [0, _text(value)]}])

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


def _answer(kind: str, result: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": kind, "result": result}}


class StandInExecutor:
    """Every action type; answers by policy name, else by action type, else `executed`."""

    def __init__(self, given: Mapping[str, ActionAnswer | list[ActionAnswer]]) -> None:
        self._answers = {
            key: Answers(value if isinstance(value, list) else [value], "executed")
            for key, value in given.items()
        }

    async def execute(self, request: ActionRequest) -> ActionResult:
        answers = self._answers.get(request.policy) or self._answers.get(request.type)
        answer = answers.next() if answers is not None else "executed"
        shown = f"stand-in {request.type} on {request.target}"
        if request.type == "notify":  # its target is "slack": the channel says where it went
            shown = f"stand-in notify to {request.params.get('channel') or 'slack.channel'}"
        within = request.verify.within
        if answer == "executed":
            now = asyncio.get_running_loop().time()
            _VERIFYING.set(_Verifying(request.action_id, now, within.total_seconds()))
            return ActionResult(ok=True, detail=f"{shown}: done")
        if answer == "failed":  # known only once its own check gave up
            await asyncio.sleep(within.total_seconds())
            detail = f"{shown}: did not take effect within {format_duration(within)}"
            return ActionResult(ok=False, verified=False, detail=detail)
        if answer == "error":
            raise ActionError(f"{shown}: refused by the backend")
        raise ActionError(f"{shown}: connection refused", retryable=True)

    async def probe(self) -> str | None:
        return None

    async def close(self) -> None:
        return None
