"""The world a policy test runs against, as its `results` say it answers: stand-ins for every
executor, for Prometheus (conditions, min_rate, verify) and for verify.http. Nothing outside
the process is touched. An answer goes to the policy that asked: each policy's queries and
URLs are rendered for every alert of the test, as the daemon renders them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
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
from remediator.policytest.spec import ActionAnswer, HttpAnswer, Results

T = TypeVar("T")
Value = float | list[float] | None


class Answers(Generic[T]):
    """One answer per question, the last one repeated; `default` when none was given."""

    def __init__(self, given: Sequence[T], default: T) -> None:
        self._given = list(given) or [default]
        self._asked = 0

    def next(self) -> T:
        answer = self._given[min(self._asked, len(self._given) - 1)]
        self._asked += 1
        return answer


class World:
    def __init__(self, policies: Sequence[Policy], results: Results) -> None:
        self._policies = list(policies)
        # (what is asked, its rendered text) -> the policies that ask it, in file order
        self._askers: dict[tuple[str, str], list[str]] = {}
        self._values: dict[tuple[str, str], Answers[Value]] = {}
        for name, given in results.prometheus.items():
            self._values[(name, "condition")] = Answers(given.condition, None)
            self._values[(name, "min_rate")] = Answers(given.min_rate, 1.0)
            self._values[(name, "verify")] = Answers(given.verify, None)
        self._http = {name: Answers(given, None) for name, given in results.http.items()}
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

    def value(self, what: str, query: str) -> Value:
        """The next answer to `query` of the first policy asking it that has answers."""
        for name in self._askers.get((what, query), []):
            answers = self._values.get((name, what))
            if answers is not None:
                return answers.next()
        return 1.0 if what == "min_rate" else None  # traffic, but no data for the rest

    async def http_probe(self, check: HttpCheck, budget: float) -> Verdict:
        """verify.http's one try (runner.http_probe); by default the check holds."""
        del budget  # every answer here is immediate
        answer: HttpAnswer | None = None
        for name in self._askers.get(("http", check.url), []):
            if name in self._http:
                answer = self._http[name].next()
                break
        healthy = expected_statuses(check.expect_status)
        status = answer.status if answer is not None else 200 if 200 in healthy else min(healthy)
        body = answer.body if answer is not None and answer.body is not None else None
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
        value = self._world.value("condition", query)
        values = value if isinstance(value, list) else [] if value is None else [value]
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
        value = self._world.value(what, query)
        if value is None or isinstance(value, list):
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
        if answer == "executed":
            return ActionResult(ok=True, detail=f"{shown}: done")
        if answer == "failed":  # known only once its own check gave up
            within = request.verify.within
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
