"""Finding 12: unbounded growth. An alert no policy can match leaves no state; audit rows
older than `retention` are pruned at start and hourly, except a pending approval and what
dedup still needs for an episode seen within the window (so an old, still-firing alert that
Alertmanager re-sends is never decided twice)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fixtures.daemon import API_TOKEN, Daemon, DaemonFactory
from tests.fixtures.procs import wait_for

POLICIES = """
name: restart-web
match: {matchers: ['alertname="Down"']}
action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
guards: {dry_run: true}
---
name: approve-db
match: {matchers: ['alertname="DbDown"']}
action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["db-*"]}
guards: {approval: always}
"""
TABLES = ("episodes", "decisions", "claims", "actions", "approvals", "cycles")


def _alert(name: str, target: str, starts: str = "2026-11-01T10:00:00Z") -> dict[str, Any]:
    return {"labels": {"alertname": name, "name": target}, "startsAt": starts}


def _counts(daemon: Daemon) -> dict[str, int]:
    with sqlite3.connect(daemon.folder / "state.db") as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608  # fixed table names


def test_alerts_no_policy_matches_leave_no_state(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(POLICIES, auth={"datadog": {"token": "dd-token-1234"}})
    daemon.start()
    before = _counts(daemon)
    storm = [_alert(f"Noise{i}", f"web-{i}") for i in range(300)]
    for start in range(0, len(storm), 100):
        status, answer = daemon.webhook({"alerts": storm[start : start + 100]})
        assert status == 200 and answer["decisions"] == []
    for i in range(20):  # Datadog without a cycle key: its cycles would be numbered
        body = json.dumps({"title": f"[Triggered] Noise {i}", "alert_id": str(i)}).encode()
        headers = {"X-Remediator-Token": "dd-token-1234", "Content-Type": "application/json"}
        assert daemon.request("POST", "/webhook/datadog", body, headers)[0] == 200
    assert _counts(daemon) == before == dict.fromkeys(TABLES, 0)
    assert daemon.webhook({"alerts": [_alert("Down", "web-1")]})[0] == 200
    assert _counts(daemon)["decisions"] == 1  # a matching alert is still recorded


def _age(daemon: Daemon, days: int, *, keep_seen: str) -> None:
    """Everything recorded moves `days` into the past, but episode `keep_seen`'s last sight."""
    old = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(daemon.folder / "state.db") as db:
        db.execute("UPDATE decisions SET time = ?", (old,))
        db.execute(
            "UPDATE actions SET created_at = ?, started_at = coalesce(started_at, ?), "
            "finished_at = coalesce(finished_at, ?)",
            (old, old, old),
        )
        db.execute("UPDATE approvals SET requested_at = ?", (old,))
        db.execute("UPDATE episodes SET first_seen = ?", (old,))
        db.execute("UPDATE episodes SET last_seen = ? WHERE episode NOT LIKE ?", (old, keep_seen))


def test_old_rows_are_pruned_but_pending_approvals_and_live_episodes_stay(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory(POLICIES, limits={"approval_ttl": "1000h"})
    daemon.start()
    alerts = [_alert("Down", "web-1"), _alert("Down", "web-2"), _alert("DbDown", "db-1")]
    assert daemon.webhook({"alerts": alerts})[0] == 200
    outcomes = sorted(d["outcome"] for d in daemon.decisions())
    assert outcomes == ["awaiting_approval", "dry_run", "dry_run"]
    [web2] = [d for d in daemon.decisions() if d["target"] == "web-2"]
    assert daemon.stop() == 0
    # 40 days pass. web-2's alert was re-sent yesterday (still firing); web-1's was not.
    _age(daemon, 40, keep_seen=f"am:{web2['fingerprint']}:%")
    daemon.start()
    wait_for(lambda: daemon.events("store.pruned"), timeout=20, what="the prune at start")
    left = {d["target"]: d for d in daemon.decisions()}
    assert set(left) == {"web-2", "db-1"}  # web-1's audit row is gone
    assert left["db-1"]["outcome"] == "awaiting_approval"  # a pending approval never goes
    status, body = daemon.request("GET", "/api/v1/approvals")
    assert status == 200 and [a["target"] for a in body["approvals"]] == ["db-1"]
    # Alertmanager re-sends the still-firing web-2: its claim survived, no second decision.
    status, answer = daemon.webhook({"alerts": [_alert("Down", "web-2")]})
    assert [d["outcome"] for d in answer["decisions"]] == ["deduplicated"]
    # The approval still works after the prune.
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    status, _ = daemon.request(
        "POST", f"/api/v1/approvals/{left['db-1']['approval_id']}/deny", b"{}", headers
    )
    assert status == 200
