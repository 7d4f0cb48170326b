"""Finding 4: the two-person rule. The approver is the API token's identity, never the `by`
text of the body; an identity counts once; a token that is not an approver is 403; and
approving re-checks the scope as it is now."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.daemon import AM_TOKEN, Daemon, DaemonFactory
from tests.fixtures.http_hook import Hook
from tests.fixtures.procs import wait_for

TOKENS = {"alice": "alice-token-0001", "bob": "bob-token-0002", "mallory": "mallory-token-03"}
POLICY = """
name: call-hook
match: {matchers: ['alertname="Down"']}
action:
  type: http.request
  params: {method: POST, url: "http://127.0.0.1:%(port)d/hook/{{ labels.name }}"}
  allow_targets: ["%(allow)s"]
guards:
  approval: always
  approvers: %(approvers)s
  approvals_required: %(required)d
"""
ALERT = {
    "alerts": [
        {"labels": {"alertname": "Down", "name": "web-1"}, "startsAt": "2026-11-22T10:00:00Z"}
    ]
}


def _policy(hook: Hook, *, approvers: str, required: int, allow: str = "") -> str:
    allow = allow or f"http://127.0.0.1:{hook.port}/hook/*"
    return POLICY % {
        "port": hook.port,
        "allow": allow,
        "approvers": approvers,
        "required": required,
    }


def _as(daemon: Daemon, who: str, verb: str, approval_id: str, by: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKENS[who]}", "Content-Type": "application/json"}
    body = json.dumps({"by": by}).encode()
    return daemon.request("POST", f"/api/v1/approvals/{approval_id}/{verb}", body, headers)


def _requested(daemon: Daemon) -> str:
    assert daemon.webhook(ALERT)[0] == 200
    [decision] = daemon.decisions()
    assert decision["outcome"] == "awaiting_approval"
    approval_id: str = decision["approval_id"]
    return approval_id


@pytest.fixture
def auth() -> dict[str, Any]:
    return {"alertmanager": {"bearer_token": AM_TOKEN}, "api": {"tokens": dict(TOKENS)}}


def test_one_token_cannot_be_two_approvers(
    daemon_factory: DaemonFactory, http_hook: Hook, auth: dict[str, Any]
) -> None:
    policy = _policy(http_hook, approvers='["api:alice", "api:bob", "U111", "U222"]', required=2)
    daemon = daemon_factory(policy, auth=auth)
    daemon.start()
    approval_id = _requested(daemon)
    status, answer = _as(daemon, "alice", "approve", approval_id, by="U111")
    assert status == 200 and answer["state"] == "pending" and answer["approved_by"] == ["api:alice"]
    status, answer = _as(daemon, "alice", "approve", approval_id, by="U222")  # the old bypass
    assert status == 409, answer
    status, answer = _as(daemon, "mallory", "approve", approval_id, by="api:bob")
    assert status == 403, answer
    [pending] = daemon.request("GET", "/api/v1/approvals")[1]["approvals"]
    assert pending["approved_by"] == ["api:alice"] and pending["state"] == "pending"
    assert http_hook.requests == []
    status, answer = _as(daemon, "bob", "approve", approval_id, by="bob from the CLI")
    assert status == 200 and answer["state"] == "approved"
    assert answer["approved_by"] == ["api:alice", "api:bob"]
    wait_for(lambda: http_hook.requests, timeout=20, what="the approved action")
    [sent] = http_hook.requests
    assert sent.path == "/hook/web-1"
    events = daemon.request("GET", f"/api/v1/approvals/{approval_id}")[1]["events"]
    notes = [(e["who"], e["detail"]) for e in events if e["event"] == "approved"]
    assert ("api:alice", "U111") in notes and ("api:bob", "bob from the CLI") in notes


def test_a_deny_is_recorded_under_the_token_identity(
    daemon_factory: DaemonFactory, http_hook: Hook, auth: dict[str, Any]
) -> None:
    daemon = daemon_factory(_policy(http_hook, approvers='["api:bob"]', required=1), auth=auth)
    daemon.start()
    approval_id = _requested(daemon)
    assert _as(daemon, "alice", "deny", approval_id, by="api:bob")[0] == 403
    status, answer = _as(daemon, "bob", "deny", approval_id, by="no")
    assert status == 200 and answer["state"] == "denied" and answer["by"] == "api:bob"
    [decision] = daemon.decisions()
    assert decision["outcome"] == "denied" and "api:bob" in decision["reason"]
    assert http_hook.requests == []


def test_approving_rechecks_the_scope_as_it_is_now(
    daemon_factory: DaemonFactory, http_hook: Hook, auth: dict[str, Any]
) -> None:
    daemon = daemon_factory(_policy(http_hook, approvers='["api:alice"]', required=1), auth=auth)
    daemon.start()
    approval_id = _requested(daemon)
    assert daemon.stop() == 0
    # The policy is narrowed while the request waits: web-1 is no longer allowed.
    narrowed = _policy(
        http_hook,
        approvers='["api:alice"]',
        required=1,
        allow=f"http://127.0.0.1:{http_hook.port}/hook/api-*",
    )
    (daemon.folder / "policies" / "policies.yaml").write_text(narrowed)
    daemon.start()
    status, answer = _as(daemon, "alice", "approve", approval_id, by="ok")
    assert status == 200 and answer["state"] == "approved"
    [decision] = daemon.decisions()
    assert decision["outcome"] == "out_of_scope", decision
    assert "not in allow_targets" in decision["reason"] or "allow_targets" in decision["reason"]
    assert http_hook.requests == []
