"""The guard stages as data (core/guards.py) and the pure judgement of a batch
(core/judge.py): order, each stage's verdict, and the rows a batch writes. No store."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.durations import parse_rate
from remediator.core.guards import (
    AT_APPROVAL,
    BEFORE_APPROVAL,
    STAGES,
    Facts,
    Gates,
    Settings,
    first_stop,
)
from remediator.core.job import Job, Met, Stopped, render_job
from remediator.core.judge import Ids, Sighting, judge
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy, parse_policies

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = Settings(global_rate=parse_rate("5/1h"), approval_ttl=timedelta(minutes=15))


def policy(guards: str = "{}", extra: str = "") -> Policy:
    doc = (
        "name: p\n"
        "action: {type: docker.restart, params: {container: '{{ labels.container }}'},"
        " allow_targets: ['web-*']}\n"
        f"guards: {guards}\n{extra}"
    )
    policies, problems = parse_policies(doc, "t.yaml")
    assert not problems, problems
    return policies[0]


def alert(container: str = "web-1", episode: str = "e1", status: str = "firing") -> Alert:
    return Alert(
        source="alertmanager",
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "Down", "container": container},
        annotations={},
        starts_at=NOW,
        fingerprint=episode,
        episode=episode,
    )


def facts(gates: object = None, **kw: object) -> Facts:
    return Facts(gates or Gates(), SETTINGS, **kw)  # type: ignore[arg-type]  # table rows


def ids() -> Ids:
    return Ids(itertools.count(100), itertools.count(500))


def test_the_order_is_one_tuple_that_every_user_iterates() -> None:
    names = [s.name for s in STAGES]
    assert names == [
        "dedup",
        "scope",
        "condition",
        "paused",
        "breaker",
        "cooldown",
        "rate_limit",
        "global_rate",
        "approval",
        "dry_run",
    ]
    assert [s.name for s in AT_APPROVAL] == [
        "scope",
        "paused",
        "breaker",
        "cooldown",
        "rate_limit",
        "global_rate",
        "dry_run",
    ]
    assert tuple(names[: names.index("approval")]) == BEFORE_APPROVAL


SETTLED = Claim(7, "executed", False, "docker.restart", "web-1", dedup_decision_id=8)
FIRST_SETTLED = Claim(7, "executed", False, "docker.restart", "web-1")
HELD_PAUSED = Claim(7, "paused", True, "docker.restart", "web-1")
NOT_MET = Claim(7, "condition_not_met", True, "docker.restart", "web-1")


@pytest.mark.parametrize(
    ("case", "guards", "state", "outcome", "repeat_of"),
    [
        ("new episode, all pass", "{}", {}, None, None),
        ("repeat of settled", "{}", {"claims": {("p", "e1"): SETTLED}}, "deduplicated", 8),
        ("first repeat", "{}", {"claims": {("p", "e1"): FIRST_SETTLED}}, "deduplicated", None),
        (
            "held, still paused",
            "{}",
            {"claims": {("p", "e1"): HELD_PAUSED}, "gates": Gates(paused=True)},
            "paused",
            7,
        ),
        ("held, resumed", "{}", {"claims": {("p", "e1"): HELD_PAUSED}}, None, None),
        ("paused", "{}", {"gates": Gates(paused=True)}, "paused", None),
        ("tripped", "{}", {"gates": Gates(tripped=frozenset({"p"}))}, "tripped", None),
        (
            "paused wins over tripped",
            "{}",
            {"gates": Gates(paused=True, tripped=frozenset({"p"}))},
            "paused",
            None,
        ),
        (
            "cooldown",
            "{cooldown: 10m}",
            {"last_action": {("p", "web-1"): NOW - timedelta(minutes=1)}},
            "cooldown",
            None,
        ),
        (
            "cooldown over",
            "{cooldown: 10m}",
            {"last_action": {("p", "web-1"): NOW - timedelta(minutes=11)}},
            None,
            None,
        ),
        (
            "cooldown before rate",
            "{cooldown: 10m, rate_limit: 1/1h}",
            {"last_action": {("p", "web-1"): NOW}, "policy_counts": {"p": 1}},
            "cooldown",
            None,
        ),
        ("policy rate", "{rate_limit: 2/1h}", {"policy_counts": {"p": 2}}, "rate_limited", None),
        ("global rate", "{}", {"global_count": 5}, "rate_limited", None),
        (
            "dry-run policy skips the live global budget",
            "{dry_run: true}",
            {"global_count": 5},
            "dry_run",
            None,
        ),
        (
            "whole dry run counts it",
            "{dry_run: true}",
            {"global_count": 5, "gates": Gates(dry_run=True)},
            "rate_limited",
            None,
        ),
        ("approval", "{approval: always}", {}, "awaiting_approval", None),
        (
            "rate before approval",
            "{approval: always, rate_limit: 1/1h}",
            {"policy_counts": {"p": 1}},
            "rate_limited",
            None,
        ),
        ("dry run last", "{dry_run: true}", {}, "dry_run", None),
        (
            "approval before dry run",
            "{dry_run: true, approval: always}",
            {},
            "awaiting_approval",
            None,
        ),
    ],
)
def test_first_stop(
    case: str, guards: str, state: dict[str, object], outcome: str | None, repeat_of: int | None
) -> None:
    job = render_job(policy(guards), alert(), NOW)
    stop = first_stop(job, facts(**state), NOW)
    assert (stop.outcome.value if stop else None) == outcome, case
    assert (stop.repeat_of if stop else None) == repeat_of, case


def test_scope_and_render_errors_stop_after_dedup() -> None:
    out = render_job(policy(), alert(container="db-1"), NOW)
    assert first_stop(out, facts(), NOW) == Stopped(
        Outcome.OUT_OF_SCOPE, "target 'db-1' is not in allow_targets [web-*]", "db-1"
    )
    # A repeat of that episode is counted, not judged (and recorded) again.
    claim = Claim(3, "out_of_scope", False, "docker.restart", "db-1", 4)
    stop = first_stop(out, facts(claims={("p", "e1"): claim}), NOW)
    assert stop is not None and stop.outcome is Outcome.DEDUPLICATED and stop.repeat_of == 4
    broken = render_job(policy(), alert(container="bad/name"), NOW)
    stop = first_stop(broken, facts(), NOW)
    assert stop is not None and stop.outcome is Outcome.RENDER_ERROR


CONDITION = "condition: {prometheus: {query: 'up', above: 1, for: 1m}}"


@pytest.mark.parametrize(
    ("checked", "claim", "outcome", "repeat_of"),
    [
        (None, None, "condition_not_met", None),  # never evaluated: not met
        (Stopped(Outcome.CONDITION_NOT_MET, "low"), None, "condition_not_met", None),
        (Met("high"), None, None, None),
        (Stopped(Outcome.CONDITION_NOT_MET, "low"), NOT_MET, "condition_not_met", 7),
        (Met("high"), NOT_MET, None, None),  # met now: decided afresh
    ],
)
def test_condition_stage(
    checked: Stopped | Met | None, claim: Claim | None, outcome: str | None, repeat_of: int | None
) -> None:
    job = render_job(policy(extra=CONDITION), alert(), NOW, index=0)
    state = facts(
        conditions={} if checked is None else {("p", 0): checked},
        claims={} if claim is None else {("p", "e1"): claim},
    )
    stop = first_stop(job, state, NOW)
    assert (stop.outcome.value if stop else None) == outcome
    assert (stop.repeat_of if stop else None) == repeat_of


def test_approval_path_skips_dedup_condition_and_approval() -> None:
    pol = policy("{approval: always, cooldown: 5m}", CONDITION)
    job = Job(None, pol, NOW, "docker.restart", "web-1", {})
    assert first_stop(job, facts(), NOW, AT_APPROVAL) is None
    cooling = facts(last_action={("p", "web-1"): NOW})
    stop = first_stop(job, cooling, NOW, AT_APPROVAL)
    assert stop is not None and stop.outcome is Outcome.COOLDOWN


def _sight(*alerts: Alert, pol: Policy | None = None) -> list[Sighting]:
    pol = pol or policy()
    return [Sighting(a, i, (render_job(pol, a, NOW, i),)) for i, a in enumerate(alerts)]


def test_a_batch_counts_as_it_goes() -> None:
    """Rate limits and cooldowns see the batch's own earlier actions, as the store would."""
    pol = policy("{rate_limit: 2/1h, cooldown: 10m}")
    batch = _sight(
        alert("web-1", "e1"),
        alert("web-1", "e2"),
        alert("web-2", "e3"),
        alert("web-3", "e4"),
        pol=pol,
    )
    decided = judge(batch, facts(), ids(), NOW)
    assert [v.outcome.value for v in decided.verdicts] == [
        "executing",
        "cooldown",
        "executing",
        "rate_limited",
    ]
    assert [d.id for d in decided.decisions] == [100, 101, 102, 103]
    assert [(a.id, a.decision_id, a.target) for a in decided.actions] == [
        (500, 100, "web-1"),
        (501, 102, "web-2"),
    ]
    assert [v.action_id for v in decided.verdicts] == [500, None, 501, None]


def test_the_same_episode_twice_in_one_batch_is_one_decision_and_one_repeat_record() -> None:
    decided = judge(_sight(alert(), alert()), facts(), ids(), NOW)
    first, second = decided.verdicts
    assert first.outcome is Outcome.EXECUTING and second.outcome is Outcome.DEDUPLICATED
    assert [d.outcome for d in decided.decisions] == [Outcome.EXECUTING, Outcome.DEDUPLICATED]
    assert decided.decisions[1].repeats == 1
    assert decided.claims[("p", "e1")] == Claim(
        100, Outcome.EXECUTING, False, "docker.restart", "web-1", 101
    )
    # A third copy is counted on that record, not written again.
    state = facts(claims=dict(decided.claims))
    again = judge(_sight(alert()), state, ids(), NOW)
    assert not again.decisions and again.repeats == {101: 1}


def test_dry_run_records_a_dry_action_and_submits_nothing() -> None:
    decided = judge(_sight(alert(), pol=policy("{dry_run: true}")), facts(), ids(), NOW)
    (verdict,) = decided.verdicts
    assert verdict.outcome is Outcome.DRY_RUN and verdict.action_id is None
    (action,) = decided.actions
    assert action.dry_run


def test_approval_request_and_its_cancellation_by_the_resolve_in_the_same_batch() -> None:
    pol = policy("{approval: always}")
    fire, resolve = alert(), alert(status="resolved")
    batch = [Sighting(fire, 0, (render_job(pol, fire, NOW, 0),)), Sighting(resolve, 1, ())]
    decided = judge(batch, facts(), ids(), NOW, new_id=lambda: "A1")
    (request,) = decided.requested
    assert request.id == "A1" and request.decision_id == 100
    assert request.expires_at == NOW + SETTINGS.approval_ttl
    (row,) = decided.approval_rows
    assert row.context["guards"] == ["dedup", "scope", "paused", "breaker", "cooldown",
                                     "rate_limit", "global_rate"]  # fmt: skip
    (cancelled,) = decided.cancelled
    assert cancelled.id == "A1" and cancelled.state.value == "cancelled"


def test_held_outcomes_leave_provisional_claims() -> None:
    decided = judge(_sight(alert()), facts(Gates(paused=True)), ids(), NOW)
    assert decided.claims[("p", "e1")].provisional
    decided = judge(_sight(alert()), facts(global_count=5), ids(), NOW)
    assert not decided.claims[("p", "e1")].provisional  # rate_limited settles the episode
