"""The condition stage's I/O: each policy's Prometheus condition for the alerts that may
still act, evaluated before the store transaction so a slow Prometheus never holds it.

The whole stage of one webhook has one deadline: what Prometheus has not answered by then
is `condition_not_met`, never an action taken without the evidence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from remediator.checks.prometheus import PrometheusChecker, check_condition, default_step
from remediator.core.alert import Alert
from remediator.core.job import Met, Stopped
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex
from remediator.core.render import render_context
from remediator.errors import RenderError

# Seconds the condition stage of one webhook may take in all. Unbounded, the retries
# (3 attempts x 5 s, min_rate then the range query) reach ~32 s, while Datadog gives up on
# a webhook after 15 s and retries it, and Alertmanager's per-flush deadline can be as
# short as 10 s. 10 s leaves time to record the decisions and answer within Datadog's 15 s.
CONDITION_DEADLINE = 10.0


async def evaluate_conditions(
    checker: PrometheusChecker,
    alerts: Sequence[Alert],
    policies: Sequence[Policy] | PolicyIndex,
    now: datetime,
    settled: Callable[[str, str], bool],
    deadline: float = CONDITION_DEADLINE,
) -> dict[tuple[str, int], Stopped | Met]:
    """The condition stage's I/O, for every (alert, policy) that may still act.

    `settled(policy, episode)` skips episodes already decided for good: a repeat never
    costs a query. Every failure is `condition_not_met` (or `render_error`) with its reason;
    so is a condition still unanswered `deadline` seconds after the stage began.
    """
    until = asyncio.get_running_loop().time() + deadline
    pending: dict[tuple[str, int], Awaitable[Stopped | Met]] = {}
    index = policies if isinstance(policies, PolicyIndex) else PolicyIndex(policies)
    for position, alert in enumerate(alerts):
        for policy in index.matching(alert):
            if policy.condition is not None and not settled(policy.name, alert.episode):
                pending[(policy.name, position)] = _condition(
                    checker, policy, alert, now, until, deadline
                )
    results = await asyncio.gather(*pending.values())
    return dict(zip(pending, results, strict=True))


async def _condition(
    checker: PrometheusChecker,
    policy: Policy,
    alert: Alert,
    now: datetime,
    until: float,
    seconds: float,
) -> Stopped | Met:
    spec = policy.condition
    assert spec is not None  # noqa: S101  # only policies with a condition are evaluated
    prom = spec.prometheus
    context = render_context(alert.labels, alert.annotations, alert.template_view(), policy.name)
    try:
        query = prom.query.render(context)
        min_rate = prom.min_rate.render(context) if prom.min_rate is not None else None
    except RenderError as exc:
        return Stopped(Outcome.RENDER_ERROR, f"condition: {exc}")
    try:
        async with asyncio.timeout_at(until):
            verdict = await check_condition(
                checker,
                query,
                above=prom.above,
                below=prom.below,
                window=prom.window,
                step=prom.step or default_step(prom.window),
                min_rate=min_rate,
                now=now,
            )
    except TimeoutError:
        return Stopped(
            Outcome.CONDITION_NOT_MET,
            f"prometheus did not answer within the condition deadline of {seconds:g}s "
            f"(query: {query})",
        )
    if verdict.ok:
        return Met(f"{verdict.reason} (query: {query})")
    return Stopped(Outcome.CONDITION_NOT_MET, f"{verdict.reason} (query: {query})")
