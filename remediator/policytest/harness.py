"""Runs one test of a policy test file through the daemon's own parts (build_daemon: intake,
judgement, runner, approvals, switches) over an in-memory SQLite store, on virtual time,
against the stand-in world; returns every decision the test made, oldest first.

Each test gets a fresh event loop, store and daemon: nothing carries over between tests, and
nothing is written to disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from remediator.core.approval import ApprovalRefused
from remediator.daemon import Daemon, build_daemon
from remediator.metrics import Metrics
from remediator.policytest.load import Suite
from remediator.policytest.payloads import Episodes, to_alerts
from remediator.policytest.spec import AlertEvent, ApprovalEvent, Case, offset
from remediator.policytest.vclock import CountedStore, VirtualClockLoop
from remediator.policytest.world import World
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore

# A test's 0s. Fixed, so rendered times and reasons are the same on every run.
START = datetime(2026, 1, 1, tzinfo=UTC)
_ALL = 1_000_000  # decisions read back: every one a test can make


@dataclass(frozen=True, slots=True)
class Made:
    """One decision as the audit log holds it at the end of the test."""

    at: timedelta
    policy: str
    action: str
    target: str
    outcome: str
    reason: str
    step: int | None
    repeats: int


class CaseError(Exception):
    """The test cannot go on (an approval it names is not pending): it fails, saying why."""


def run_case(suite: Suite, case: Case) -> list[Made]:
    """On a loop of its own: virtual time starts at 0 for every test."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(_run(suite, case))


async def _run(suite: Suite, case: Case) -> list[Made]:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualClockLoop):
        raise TypeError("a policy test runs on a VirtualClockLoop")

    def clock() -> datetime:  # whole milliseconds: the same times on every run
        return START + timedelta(milliseconds=round(loop.time() * 1000))

    world = World(suite.policies, case.results)
    store = cast(Store, CountedStore(SqliteStore(":memory:"), loop))
    await store.open()
    try:
        daemon = build_daemon(
            suite.config,
            policies=suite.policies,
            store=store,
            executors=world.executors,
            metrics=Metrics(),
            clock=clock,
            checker=world.prometheus,
        )
        daemon.runner.http_probe = world.http_probe
        try:
            await _drive(daemon, world, case, loop)
            await daemon.runner.wait_idle()  # every action, ladder and verify window ends
            await daemon.approvals.expire_approvals()
        finally:
            await daemon.stop(timedelta(0))  # flushes the repeat counts too
        records = await store.decisions(_ALL)
    finally:
        await store.close()
    return [
        Made(r.time - START, r.policy, r.action, r.target, r.outcome, r.reason, r.step, r.repeats)
        for r in sorted(records, key=lambda r: r.id)
    ]


async def _drive(daemon: Daemon, world: World, case: Case, loop: VirtualClockLoop) -> None:
    """Each alert is one webhook, in `at` order (alerts before approvals at the same time);
    approvals expire when their time comes, as the daemon's sync would expire them."""
    events: list[tuple[timedelta, int, int, AlertEvent | ApprovalEvent]] = [
        (event.at, 0, index, event) for index, event in enumerate(case.alerts)
    ]
    events += [(event.at, 1, index, event) for index, event in enumerate(case.approvals)]
    episodes = Episodes()
    for at, _, _, event in sorted(events, key=lambda e: e[:3]):
        wait = at.total_seconds() - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        await daemon.approvals.expire_approvals()
        if isinstance(event, AlertEvent):
            alerts = to_alerts(event, episodes, START)
            for alert in alerts:
                world.learn(alert)
            await daemon.intake.ingest(alerts)
        else:
            await _answer(daemon, event)


async def _answer(daemon: Daemon, event: ApprovalEvent) -> None:
    verb = "approve" if event.approve is not None else "deny"
    pending = [
        a
        for a in await daemon.store.approvals(pending_only=True)
        if a.policy == event.policy and event.target in (None, a.target)
    ]
    what = f"at {offset(event.at)}: {verb} {event.policy}" + (
        f" on {event.target}" if event.target is not None else ""
    )
    if not pending:
        raise CaseError(f"{what}: no approval of it is pending")
    approval = min(pending, key=lambda a: (a.requested_at, a.decision_id))
    who = event.by or (approval.approvers[0] if approval.approvers else "api:remediator-test")
    try:
        await daemon.approvals.decide_approval(
            approval.id, who, approve=verb == "approve", note="remediator test"
        )
    except ApprovalRefused as exc:
        raise CaseError(f"{what}: refused for {who}: {exc.reason}") from None
