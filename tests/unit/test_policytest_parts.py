"""The parts of `remediator test` that decide nothing themselves: the first difference and how
decisions are shown (report.py), alerts as their senders' bodies (payloads.py), answers
spread over a window (world.py) and virtual time (vclock.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from remediator.policytest.harness import Made
from remediator.policytest.payloads import Episodes, to_alerts
from remediator.policytest.report import first_difference, made_lines, scalar, shown
from remediator.policytest.spec import AlertEvent, Expected
from remediator.policytest.vclock import CountedStore, VirtualClockLoop
from remediator.policytest.world import Answers, spread

START = datetime(2026, 1, 1, tzinfo=UTC)


def made(at: str, outcome: str, **more: object) -> Made:
    fields: dict[str, object] = {
        "at": _offset(at),
        "policy": "p",
        "action": "docker.restart",
        "target": "web-1",
        "outcome": outcome,
        "reason": "all guards passed",
        "step": None,
        "repeats": 0,
    }
    fields.update(more)
    return Made(**fields)  # type: ignore[arg-type]


def expected(at: str, outcome: str, **more: object) -> Expected:
    return Expected.model_validate({"at": at, "policy": "p", "outcome": outcome, **more})


def _offset(text: str) -> timedelta:
    return {"0s": timedelta(0), "5m": timedelta(minutes=5), "2m": timedelta(minutes=2)}[text]


@pytest.mark.parametrize(
    ("expect", "got", "lines"),
    [
        ([expected("0s", "executed")], [made("0s", "executed")], []),
        (  # fields the entry does not name are not compared
            [expected("0s", "executed")],
            [made("0s", "executed", target="web-9", repeats=3, step=2)],
            [],
        ),
        (
            [expected("0s", "executed"), expected("5m", "deduplicated")],
            [made("0s", "executed"), made("5m", "executed")],
            [
                "decision 2: outcome is executed, expected deduplicated",
                "  expected: {at: 5m, policy: p, outcome: deduplicated}",
                "  got:      {at: 5m, policy: p, target: web-1, outcome: executed}",
                "            reason: all guards passed",
            ],
        ),
        (
            [expected("0s", "executed", target="web-2", step=1, reason="verified")],
            [made("2m", "executed", step=2)],
            [
                "decision 1: at is 2m, expected 0s; target is web-1, expected web-2; step is 2, "
                "expected 1; reason does not contain verified",
                "  expected: {at: 0s, policy: p, target: web-2, step: 1, outcome: executed, "
                "reason: verified}",
                "  got:      {at: 2m, policy: p, target: web-1, step: 2, outcome: executed}",
                "            reason: all guards passed",
            ],
        ),
        (
            [expected("0s", "executed"), expected("5m", "cooldown")],
            [made("0s", "executed")],
            [
                "decision 2: expected, but the test made 1 decisions (1 fewer than expected)",
                "  expected: {at: 5m, policy: p, outcome: cooldown}",
            ],
        ),
        (
            [],
            [made("0s", "out_of_scope", target="db-1", reason="not in allow_targets")],
            [
                "decision 1: not expected (the test made 1 decisions, 0 expected)",
                "  got:      {at: 0s, policy: p, target: db-1, outcome: out_of_scope}",
                "            reason: not in allow_targets",
            ],
        ),
    ],
)
def test_the_first_difference_says_which_decision_and_which_field(
    expect: list[Expected], got: list[Made], lines: list[str]
) -> None:
    assert first_difference(expect, got) == lines


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("web-1", "web-1"),
        ("prod/api", "prod/api"),
        ("db-1:5432/app", "db-1:5432/app"),
        ("#alerts", '"#alerts"'),
        ("https://ci.example/job", "https://ci.example/job"),
        ("", '""'),
        ("true", '"true"'),
        ("5", '"5"'),
        ("a, b", '"a, b"'),
        (3, "3"),
    ],
)
def test_values_are_written_as_yaml_reads_them_back(value: object, written: str) -> None:
    assert scalar(value) == written


def test_decisions_are_listed_as_expect_entries() -> None:
    decisions = [made("0s", "executed", step=1), made("5m", "deduplicated", repeats=2, target="")]
    assert made_lines(decisions) == [
        "the test made these decisions:",
        "  - {at: 0s, policy: p, target: web-1, step: 1, outcome: executed}",
        "  - {at: 5m, policy: p, outcome: deduplicated, repeats: 2}",
    ]
    assert made_lines([]) == ["the test made no decision"]
    assert shown(made("0s", "cooldown")) == "{at: 0s, policy: p, target: web-1, outcome: cooldown}"


def _event(at: str, status: str = "firing", **more: object) -> AlertEvent:
    return AlertEvent.model_validate(
        {"at": at, "status": status, "labels": {"alertname": "A", "name": "web-1"}, **more}
    )


def test_an_alertmanager_alert_keeps_its_start_while_it_fires() -> None:
    episodes = Episodes()
    [first] = to_alerts(_event("0s"), episodes, START)
    [repeat] = to_alerts(_event("5m"), episodes, START)
    [resolved] = to_alerts(_event("6m", "resolved"), episodes, START)
    [again] = to_alerts(_event("8m"), episodes, START)
    [given] = to_alerts(_event("9m", starts_at="1m"), Episodes(), START)
    assert first.starts_at == repeat.starts_at == resolved.starts_at == START
    assert first.episode == repeat.episode == resolved.episode != again.episode
    assert again.starts_at == START + timedelta(minutes=8)
    assert given.starts_at == START + timedelta(minutes=1)
    assert first.fingerprint == again.fingerprint  # Alertmanager's, from the labels
    assert dict(first.labels) == {"alertname": "A", "name": "web-1"}
    assert resolved.status == "resolved" and first.source == "alertmanager"


def test_a_datadog_alert_is_one_cycle_from_trigger_to_recovery() -> None:
    episodes = Episodes()
    labels = {"alertname": "Container unhealthy", "env": "prod", "container_name": "web-1"}

    def event(at: str, status: str = "firing", transition: str | None = None) -> AlertEvent:
        notes = {"transition": transition} if transition else {}
        return AlertEvent.model_validate(
            {
                "at": at,
                "source": "datadog",
                "status": status,
                "labels": labels,
                "annotations": notes,
            }
        )

    [first] = to_alerts(event("0s"), episodes, START)
    [again] = to_alerts(event("2m", transition="Re-Triggered"), episodes, START)
    [recovered] = to_alerts(event("3m", "resolved"), episodes, START)
    [later] = to_alerts(event("9m"), episodes, START)
    assert first.source == "datadog" and first.episode == again.episode == recovered.episode
    assert later.episode != first.episode and recovered.status == "resolved"
    assert {k: first.labels[k] for k in labels} == labels  # the tags came back as labels
    assert again.annotations["transition"] == "Re-Triggered"
    assert first.starts_at == START


@pytest.mark.parametrize(
    ("entry", "fraction", "value"),
    [
        (0.3, 0.9, 0.3),
        (None, 0.5, None),
        ([0.3, 0.01], 0.0, 0.3),
        ([0.3, 0.01], 0.49, 0.3),
        ([0.3, 0.01], 0.5, 0.01),
        ([0.3, 0.01], 1.0, 0.01),
        ([1.0, 2.0, 3.0], 0.7, 3.0),
    ],
)
def test_a_list_entry_is_spread_evenly_over_its_window(
    entry: object, fraction: float, value: object
) -> None:
    assert spread(entry, fraction) == value


def test_answers_repeat_the_last_one_and_default_when_none_is_given() -> None:
    given = Answers(["failed", "executed"], "executed")
    assert [given.next() for _ in range(4)] == ["failed", "executed", "executed", "executed"]
    none: Answers[str | None] = Answers([], None)
    assert [none.next(), none.next()] == [None, None]


class _SlowStore:
    """Works on a thread, as SQLite does behind aiosqlite."""

    async def work(self) -> str:
        await asyncio.to_thread(time.sleep, 0.05)
        return "done"


def test_virtual_time_jumps_to_timers_and_stands_still_while_the_store_works() -> None:
    async def scenario() -> tuple[float, float, str]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualClockLoop)
        store = CountedStore(_SlowStore(), loop)
        ticks = asyncio.create_task(asyncio.sleep(3600))  # a timer waits meanwhile
        result = await store.work()
        during = loop.time()  # a whole hour of timer did not pass while the store worked
        await ticks
        return during, loop.time(), result

    started = time.monotonic()
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        during, after, result = runner.run(scenario())
    assert (during, after, result) == (0.0, 3600.0, "done")
    assert time.monotonic() - started < 5  # an hour of virtual time, in moments
