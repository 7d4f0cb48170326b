"""Every guard through the real pipeline and SQLite store, with a controllable clock.

Policies here are dry runs (or need approval), so no executor is involved: the outcomes,
the audit records and the counters are what is under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import HarnessFactory, on_both_backends

# Every guard holds the same on the embedded store and on the shared one.
pytestmark = on_both_backends


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def alert(
    container: str, starts: str = "2026-11-22T10:00:00Z", status: str = "firing", **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ContainerDown", "container": container, **labels},
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T10:30:00Z",
    }


def message(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": list(alerts)}


def policy(name: str = "restart-web", guards: str = "dry_run: true", extra: str = "") -> str:
    return f"""
name: {name}
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: docker.restart
  params: {{container: "{{{{ labels.container }}}}"}}
  allow_targets: ["web-*"]
guards: {{{guards}}}
{extra}
"""


async def test_repeats_of_one_episode_are_one_decision_plus_one_counted_repeat(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy())
    for _ in range(6):  # first notification, repeats, and the HA peer's copies
        assert (await h.post(message(alert("web-1"))))[0] == 200
    records = await h.decisions()
    assert [(d["outcome"], d["repeats"]) for d in records] == [("dry_run", 0), ("deduplicated", 5)]
    assert h.metric("remediator_decisions_total", policy="restart-web", outcome="deduplicated") == 5


async def test_repeats_are_answered_with_the_episode_outcome(harness: HarnessFactory) -> None:
    h = await harness(policy())
    await h.post(message(alert("web-1")))
    status, answer = await h.post(message(alert("web-1")))
    assert status == 200
    [decision] = answer["decisions"]
    assert decision["outcome"] == "deduplicated"
    assert "repeat of the episode decided by decision" in decision["reason"]


async def test_a_new_episode_after_resolve_is_held_by_the_cooldown(harness: HarnessFactory) -> None:
    clock = Clock()
    h = await harness(policy(guards="dry_run: true, cooldown: 10m"), clock=clock)
    await h.post(message(alert("web-1", starts="2026-11-22T10:00:00Z")))
    clock.advance(minutes=2)
    await h.post(message(alert("web-1", starts="2026-11-22T10:00:00Z", status="resolved")))
    clock.advance(minutes=1)
    await h.post(message(alert("web-1", starts="2026-11-22T12:03:00Z")))  # a new episode
    clock.advance(minutes=8)
    await h.post(message(alert("web-1", starts="2026-11-22T12:11:00Z")))  # after the cooldown
    records = await h.decisions()
    assert [d["outcome"] for d in records] == ["dry_run", "cooldown", "dry_run"]
    assert "cooldown 10m" in records[1]["reason"]


async def test_cooldown_is_per_target(harness: HarnessFactory) -> None:
    h = await harness(policy(guards="dry_run: true, cooldown: 1h"))
    await h.post(message(alert("web-1"), alert("web-2")))
    assert await h.outcomes() == ["dry_run", "dry_run"]


async def test_rate_limit_holds_under_a_burst_of_distinct_alerts(harness: HarnessFactory) -> None:
    h = await harness(policy(guards='dry_run: true, rate_limit: "3/1h"'))
    await h.post(message(*(alert(f"web-{i}") for i in range(8))))
    outcomes = await h.outcomes()
    assert outcomes == ["dry_run"] * 3 + ["rate_limited"] * 5
    assert "policy rate_limit 3/1h: 3 actions" in (await h.decisions())[3]["reason"]


async def test_rate_limit_window_slides(harness: HarnessFactory) -> None:
    clock = Clock()
    h = await harness(policy(guards='dry_run: true, rate_limit: "2/10m"'), clock=clock)
    await h.post(message(alert("web-1"), alert("web-2"), alert("web-3")))
    clock.advance(minutes=10, seconds=1)
    await h.post(message(alert("web-4")))
    assert await h.outcomes() == ["dry_run", "dry_run", "rate_limited", "dry_run"]


async def test_global_rate_holds_across_policies(harness: HarnessFactory) -> None:
    two = policy("restart-a", "cooldown: 1s") + "---\n" + policy("restart-b", "cooldown: 1s")
    h = await harness(two, 'dry_run: true\nlimits: {global_rate: "3/1h"}\n')
    await h.post(message(*(alert(f"web-{i}") for i in range(4))))
    outcomes = await h.outcomes()
    assert outcomes.count("dry_run") == 3
    assert outcomes.count("rate_limited") == 5
    assert all(
        "global_rate 3/1h" in d["reason"]
        for d in await h.decisions()
        if d["outcome"] == "rate_limited"
    )


async def test_a_dry_run_policy_does_not_spend_the_live_global_budget(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy(), 'limits: {global_rate: "1/1h"}\n')
    await h.post(message(alert("web-1"), alert("web-2"), alert("web-3")))
    assert await h.outcomes() == ["dry_run"] * 3


async def test_paused_decides_nothing_and_resume_decides_afresh(harness: HarnessFactory) -> None:
    h = await harness(policy())
    assert (await h.api("/api/v1/pause"))[0] == 200
    assert h.metric("remediator_paused") == 1
    for _ in range(3):
        await h.post(message(alert("web-1")))
    assert [(d["outcome"], d["repeats"]) for d in await h.decisions()] == [("paused", 2)]
    status, answer = await h.api("/api/v1/resume")
    # the still-firing episode is decided at once, without waiting for a repeat
    assert status == 200
    assert [(d["outcome"], d["target"]) for d in answer["redecided"]] == [("dry_run", "web-1")]
    await h.post(message(alert("web-1")))  # its repeats are repeats of that decision
    await h.post(message(alert("web-1")))
    assert [(d["outcome"], d["repeats"]) for d in await h.decisions()] == [
        ("paused", 2),
        ("dry_run", 0),
        ("deduplicated", 2),
    ]
    assert h.metric("remediator_paused") == 0


async def test_pause_survives_a_restart(harness: HarnessFactory) -> None:
    h = await harness(policy())
    await h.api("/api/v1/pause")
    await h.daemon.stop(timedelta(seconds=1))
    await h.daemon.start()
    assert h.daemon.switches.gates.paused
    await h.post(message(alert("web-1")))
    assert await h.outcomes() == ["paused"]


async def test_a_tripped_policy_is_held_until_reset(harness: HarnessFactory) -> None:
    h = await harness(policy())
    await h.daemon.switches.trip("restart-web", "verify failed")
    assert h.metric("remediator_policy_tripped", policy="restart-web") == 1
    await h.post(message(alert("web-1")))
    status, answer = await h.api("/api/v1/policies/restart-web/reset")
    assert status == 200 and answer["cleared"] == ["breaker"]
    assert [d["outcome"] for d in answer["redecided"]] == ["dry_run"]  # at once
    await h.post(message(alert("web-1")))
    assert await h.outcomes() == ["tripped", "dry_run", "deduplicated"]
    assert h.metric("remediator_policy_tripped", policy="restart-web") == 0


async def test_global_dry_run_goes_through_every_guard(harness: HarnessFactory) -> None:
    live = policy(guards='cooldown: 1h, rate_limit: "1/1h"')
    h = await harness(live, "dry_run: true\n")
    await h.post(message(alert("web-1"), alert("web-2")))
    await h.post(message(alert("web-1")))
    assert await h.outcomes() == ["dry_run", "rate_limited", "deduplicated"]


async def test_missing_label_is_render_error_and_outside_allowlist_is_out_of_scope(
    harness: HarnessFactory,
) -> None:
    h = await harness(policy())
    no_label = {"labels": {"alertname": "ContainerDown"}, "startsAt": "2026-11-22T10:00:00Z"}
    await h.post(message(no_label, alert("db-1"), alert("web-1; rm -rf /")))
    records = await h.decisions()
    assert [d["outcome"] for d in records] == ["render_error", "out_of_scope", "render_error"]
    assert "has no attribute 'container'" in records[0]["reason"]
    assert records[0]["target"] == ""
    assert records[1]["target"] == "db-1"


async def test_resolved_alerts_do_not_match_firing_policies(harness: HarnessFactory) -> None:
    h = await harness(policy())
    status, answer = await h.post(message(alert("web-1", status="resolved")))
    assert status == 200 and answer["decisions"] == []


APPROVAL = policy(guards="approval: always, approvers: ['api:alice', 'api:bob']")


async def test_approval_flow_through_the_api(harness: HarnessFactory) -> None:
    h = await harness(APPROVAL.replace("approval: always", "approval: always, dry_run: true"))
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    assert decision["outcome"] == "awaiting_approval"
    approval_id = decision["approval_id"]
    listed = await (await h.client.get("/api/v1/approvals")).json()
    [entry] = listed["approvals"]
    assert entry["id"] == approval_id and entry["state"] == "pending" and entry["target"] == "web-1"
    assert set(entry) >= {
        "id",
        "policy",
        "action",
        "target",
        "state",
        "requested_at",
        "expires_at",
        "approved_by",
    }
    assert h.metric("remediator_approvals_pending") == 1
    status, answer = await h.api(
        f"/api/v1/approvals/{approval_id}/approve", {"by": "via the API"}, who="mallory"
    )
    assert status == 403 and "not an approver" in answer["error"]
    status, answer = await h.api(
        f"/api/v1/approvals/{approval_id}/approve", {"by": "via the API"}, who="alice"
    )
    assert status == 200 and answer["state"] == "approved"
    status, _ = await h.api(
        f"/api/v1/approvals/{approval_id}/deny", {"by": "via the API"}, who="bob"
    )
    assert status == 409  # the first decision wins
    [record] = await h.decisions()
    assert record["outcome"] == "dry_run" and record["approval_id"] == approval_id
    assert h.metric("remediator_approvals_pending") == 0
    assert (
        h.metric("remediator_approval_decisions_total", policy="restart-web", decision="approved")
        == 1
    )
    # a repeat of the approved episode does not ask again
    await h.post(message(alert("web-1")))
    assert (await h.decisions())[-1]["outcome"] == "deduplicated"


async def test_denied_approval(harness: HarnessFactory) -> None:
    h = await harness(APPROVAL)
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    assert (
        await h.api(
            f"/api/v1/approvals/{decision['approval_id']}/deny", {"by": "via the API"}, who="bob"
        )
    )[0] == 200
    assert await h.outcomes() == ["denied"]
    assert "denied by api:bob" in (await h.decisions())[0]["reason"]


async def test_expired_approvals_never_run(harness: HarnessFactory) -> None:
    clock = Clock()
    h = await harness(APPROVAL, "limits: {approval_ttl: 5m}\n", clock=clock)
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    clock.advance(minutes=5)
    status, answer = await h.api(
        f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "alice"}
    )
    assert status == 409 and "expired" in answer["error"]
    await h.daemon.approvals.expire_approvals()
    assert await h.outcomes() == ["expired"]
    assert (
        h.metric("remediator_approval_decisions_total", policy="restart-web", decision="expired")
        == 1
    )
    assert (await (await h.client.get("/api/v1/approvals")).json())["approvals"] == []


async def test_a_resolved_alert_cancels_its_pending_approval(harness: HarnessFactory) -> None:
    h = await harness(APPROVAL)
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    await h.post(message(alert("web-1", status="resolved")))
    assert await h.outcomes() == ["cancelled"]
    status, _ = await h.api(
        f"/api/v1/approvals/{decision['approval_id']}/approve", {"by": "via the API"}, who="alice"
    )
    assert status == 409


async def test_an_approval_does_not_override_the_kill_switch(harness: HarnessFactory) -> None:
    h = await harness(APPROVAL)
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    await h.api("/api/v1/pause")
    assert (
        await h.api(
            f"/api/v1/approvals/{decision['approval_id']}/approve",
            {"by": "via the API"},
            who="alice",
        )
    )[0] == 200
    [record] = await h.decisions()
    assert record["outcome"] == "paused" and "approved by api:alice" in record["reason"]


async def test_two_person_rule(harness: HarnessFactory) -> None:
    h = await harness(
        APPROVAL.replace(
            "approval: always", "approval: always, approvals_required: 2, dry_run: true"
        )
    )
    [decision] = (await h.post(message(alert("web-1"))))[1]["decisions"]
    path = f"/api/v1/approvals/{decision['approval_id']}/approve"
    assert (await h.api(path, {"by": "via the API"}, who="alice"))[1]["state"] == "pending"
    assert (await h.api(path, {"by": "via the API"}, who="alice"))[0] == 409
    assert (await h.api(path, {"by": "via the API"}, who="bob"))[1]["state"] == "approved"
    assert await h.outcomes() == ["dry_run"]


async def test_approval_when_expression(harness: HarnessFactory) -> None:
    h = await harness(policy(guards="dry_run: true, approval: {when: 'labels.env == \"prod\"'}"))
    await h.post(message(alert("web-1", env="prod"), alert("web-2", env="staging")))
    assert await h.outcomes() == ["awaiting_approval", "dry_run"]
