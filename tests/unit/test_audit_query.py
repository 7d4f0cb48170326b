"""The audit API's query strings, table-driven: what each filter accepts, and that anything
else is refused naming the parameter (never ignored); and one decision's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.core.approval import Approval, ApprovalState
from remediator.core.audit import (
    AuditQueryError,
    DecisionQuery,
    EventQuery,
    OperatorEvent,
    parse_decision_query,
    parse_event_query,
    parse_id,
)
from remediator.store.records import ActionRecord, DecisionRecord
from remediator.web.audit import decision_json

T = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", DecisionQuery()),
        ("limit=1", DecisionQuery(limit=1)),
        ("limit=10000", DecisionQuery(limit=10_000)),
        ("policy=restart-web", DecisionQuery(policy="restart-web")),
        ("outcome=rate_limited", DecisionQuery(outcome="rate_limited")),
        ("outcome=executing", DecisionQuery(outcome="executing")),  # what a running one shows
        ("target=ns/deploy", DecisionQuery(target="ns/deploy")),
        ("before=42", DecisionQuery(before=42)),
        ("before=9223372036854775807", DecisionQuery(before=2**63 - 1)),
        ("since=2026-11-22T10:00:00Z", DecisionQuery(since=T)),
        ("since=2026-11-22t10:00:00z", DecisionQuery(since=T)),  # RFC 3339 allows lower case
        ("since=2026-11-22T11:00:00+01:00", DecisionQuery(since=T)),
        ("since=2026-11-22T11:00:00 01:00", DecisionQuery(since=T)),  # `+` decoded as a space
        ("since=2026-11-22T05:00:00-05:00", DecisionQuery(since=T)),
        ("since=2026-11-22T10:00:00.250Z", DecisionQuery(since=T + timedelta(milliseconds=250))),
        (
            "policy=p&outcome=failed&target=web-1&since=2026-11-22T10:00:00Z&before=9&limit=5",
            DecisionQuery(5, "p", "failed", "web-1", T, 9),
        ),
    ],
)
def test_decision_filters_parse(query: str, expected: DecisionQuery) -> None:
    assert parse_decision_query(pairs(query)) == expected


@pytest.mark.parametrize(
    ("query", "param", "says"),
    [
        ("polcy=x", "polcy", "unknown filter"),
        ("state=executed", "state", "unknown filter"),
        ("who=api:alice", "who", "unknown filter"),  # an operator-events filter, not this one
        ("policy=a&policy=b", "policy", "more than once"),
        ("limit=0", "limit", "from 1 to 10000"),
        ("limit=10001", "limit", "from 1 to 10000"),
        ("limit=²", "limit", "integer"),
        ("limit=", "limit", "integer"),
        ("before=0", "before", "integer"),
        ("before=-1", "before", "integer"),
        ("before=9223372036854775808", "before", "integer"),
        ("before=1e3", "before", "integer"),
        ("outcome=", "outcome", "not one of"),
        ("outcome=EXECUTED", "outcome", "not one of"),
        ("policy=", "policy", "empty"),
        ("target=" + "x" * 1001, "target", "longer than"),
        ("target=a\x00b", "target", "NUL"),
        ("target=\udcff", "target", "UTF-8"),
        ("since=2026-11-22", "since", "RFC 3339"),
        ("since=2026-11-22T10:00:00", "since", "RFC 3339"),  # no offset
        ("since=yesterday", "since", "RFC 3339"),
        ("since=2026-02-30T10:00:00Z", "since", "RFC 3339"),
        ("since=1700000000", "since", "RFC 3339"),
    ],
)
def test_anything_else_is_refused_naming_its_parameter(query: str, param: str, says: str) -> None:
    with pytest.raises(AuditQueryError) as caught:
        parse_decision_query(pairs(query))
    assert caught.value.param == param and says in caught.value.message
    assert str(caught.value).startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", EventQuery()),
        ("who=api:alice&act=pause", EventQuery(who="api:alice", act="pause")),
        ("who=U111&policy=p&before=3&limit=2", EventQuery(2, "U111", None, "p", None, 3)),
        ("since=2026-11-22T10:00:00Z", EventQuery(since=T)),
    ],
)
def test_event_filters_parse(query: str, expected: EventQuery) -> None:
    assert parse_event_query(pairs(query)) == expected


@pytest.mark.parametrize(
    ("query", "param"),
    [("act=explode", "act"), ("outcome=failed", "outcome"), ("who=", "who"), ("x=1", "x")],
)
def test_event_filters_refused(query: str, param: str) -> None:
    with pytest.raises(AuditQueryError) as caught:
        parse_event_query(pairs(query))
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("1", True), ("77", True), ("0", False), ("-3", False), ("x", False), ("٣", False)],
)
def test_decision_ids(raw: str, ok: bool) -> None:
    if ok:
        assert parse_id(raw) == int(raw)
    else:
        with pytest.raises(AuditQueryError):
            parse_id(raw)


def _decision(outcome: str, approval_id: str | None = None) -> DecisionRecord:
    return DecisionRecord(
        1, T, "p", "alertmanager", "Down", "fp", "am:fp:1", "docker.restart", "web-1",
        outcome, "why", approval_id, 0,
    )  # fmt: skip


def _action(state: str, *, dry_run: bool = False, ran: bool = True) -> ActionRecord:
    return ActionRecord(
        7, 1, "p", "docker.restart", "web-1", {"container": "web-1"}, dry_run, state, "done",
        {}, T, T + timedelta(minutes=2) if ran else None, T + timedelta(minutes=3) if ran else None,
    )  # fmt: skip


def _approval() -> Approval:
    return Approval(
        "a1", 1, "p", "docker.restart", "web-1", ApprovalState.APPROVED, T, T + timedelta(hours=1),
        1, ("api:alice",), ("api:alice",), "api:alice",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("decision", "actions", "approvals", "events"),
    [
        # Held by a guard: the decision is all there is.
        (_decision("cooldown"), [], [], [("decided", "cooldown: why")]),
        # Acted at once: decided executing, then the action's start and end.
        (
            _decision("executed"),
            [_action("executed")],
            [],
            [("decided", "executing"), ("action_started", "docker.restart"),
             ("action_finished", "executed: done")],
        ),
        # A dry run never starts.
        (_decision("dry_run"), [_action("dry_run", dry_run=True, ran=False)], [],
         [("decided", "dry_run: why")]),
        # Approved a minute after the request, then run: in time order.
        (
            _decision("executed", "a1"),
            [_action("executed")],
            [(_approval(), [{"time": (T + timedelta(minutes=1)).isoformat(), "who": "api:alice",
                             "event": "approved", "detail": "ok"}])],
            [("decided", "awaiting_approval"), ("approved", "ok"),
             ("action_started", "docker.restart"), ("action_finished", "executed: done")],
        ),
    ],
)  # fmt: skip
def test_one_decision_as_a_timeline(
    decision: DecisionRecord,
    actions: list[ActionRecord],
    approvals: list[tuple[Approval, list[dict[str, str]]]],
    events: list[tuple[str, str]],
) -> None:
    reset = OperatorEvent(T + timedelta(minutes=5), "api:bob", "reset", policy="p", decision_id=1)
    approve = OperatorEvent(T + timedelta(minutes=1), "api:alice", "approve", decision_id=1)
    shown: dict[str, Any] = decision_json(decision, actions, approvals, [approve, reset])
    # Approve and deny are in the approval's history already; other acts on it are added.
    assert [(e["event"], e["detail"]) for e in shown["events"]] == [*events, ("reset", "")]
    assert shown["action"]["type"] == "docker.restart"
    assert (shown["approval"] is None) == (not approvals)
    times = [e["time"] for e in shown["events"]]
    assert times == sorted(times, key=datetime.fromisoformat)
