"""What a reload keeps and what it ends, over a real store (both backends where the store is
what matters): episodes, claims, approvals and breakers survive; a removed policy's pending
approvals are cancelled (and their Slack message says so), also one its old rule set asks for
after the swap; a policy that is the first to need a backend or a secret gets it."""

from __future__ import annotations

import asyncio
from typing import Any

from remediator.checks.prometheus import PrometheusChecker
from tests.fixtures.held_prometheus import HeldPrometheus
from tests.fixtures.http_hook import Hook
from tests.fixtures.slack_api import SlackAPI
from tests.integration.conftest import Harness, HarnessFactory, on_both_backends
from tests.integration.test_reload import (
    CONDITION,
    eventually,
    policy,
    reload,
    write_config,
    write_policies,
)
from tests.integration.test_slack_approvals import CHANNEL, config
from tests.integration.test_webhook_http import body

ASK = ", approval: always"


@on_both_backends
async def test_episodes_claims_approvals_and_breakers_survive_a_reload(
    harness: HarnessFactory,
) -> None:
    policies = policy("keep") + policy("ask", ASK) + policy("fragile")
    h = await harness(policies)
    _, first = await h.post(body("web-1"))
    outcomes = {d["policy"]: d["outcome"] for d in first["decisions"]}
    assert outcomes == {"keep": "dry_run", "ask": "awaiting_approval", "fragile": "dry_run"}
    [approval_id] = [d["approval_id"] for d in first["decisions"] if d["approval_id"]]
    await h.daemon.switches.trip("fragile", "verify failed (test)")

    write_policies(h, policies + policy("extra"))
    status, answer = await reload(h)
    assert status == 200 and answer["added"] == ["extra"], answer

    _, repeat = await h.post(body("web-1"))
    assert {d["policy"]: d["outcome"] for d in repeat["decisions"]} == {
        "keep": "deduplicated",
        "ask": "deduplicated",
        "fragile": "deduplicated",
        "extra": "dry_run",
    }
    _, other = await h.post(body("web-2"))
    assert {d["policy"]: d["outcome"] for d in other["decisions"]}["fragile"] == "tripped"
    assert h.metric("remediator_policy_tripped", policy="fragile") == 1
    assert (await (await h.client.get("/healthz")).json())["tripped"] == ["fragile"]
    assert h.metric("remediator_approvals_pending") == 2  # web-1's and web-2's
    status, approved = await h.api(f"/api/v1/approvals/{approval_id}/approve", {})
    assert status == 200 and approved["state"] == "approved", approved


@on_both_backends
async def test_a_removed_policys_pending_approval_is_cancelled_and_slack_says_why(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    h = await harness(policy("ask", ASK) + policy("keep"), config(slack_api))
    decision, message = await request_approval_for(h, slack_api)

    write_policies(h, policy("keep"))
    status, answer = await reload(h)

    assert status == 200, answer
    assert answer["removed"] == ["ask"]
    assert answer["cancelled_approvals"] == [decision["approval_id"]]
    updated = await eventually(
        lambda: (
            "Cancelled" in str(slack_api.message(CHANNEL, message["ts"])["blocks"])
            and slack_api.message(CHANNEL, message["ts"])
        ),
        "the approval message updated",
    )
    assert "its policy was removed by a config reload; nothing ran" in str(updated["blocks"])
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]  # no buttons left
    [cancelled] = [d for d in await h.decisions() if d["id"] == decision["id"]]
    assert cancelled["outcome"] == "cancelled"
    assert cancelled["reason"] == "policy ask was removed by a config reload"
    assert (await (await h.client.get("/api/v1/approvals")).json())["approvals"] == []
    assert h.metric("remediator_approval_decisions_total", policy="ask", decision="cancelled") == 1
    assert h.metric("remediator_approvals_pending") == 0
    status, _ = await h.api(f"/api/v1/approvals/{decision['approval_id']}/approve", {})
    assert status == 409


@on_both_backends
async def test_the_reload_answer_lists_a_cancellation_the_sync_loop_got_to_first(
    harness: HarnessFactory, slack_api: SlackAPI
) -> None:
    """The sync loop runs each second and also cancels a removed policy's approvals: when it
    wins the race against the reload's own pass, the reload must still report the cancel."""
    h = await harness(policy("ask", ASK) + policy("keep"), config(slack_api))
    decision, _ = await request_approval_for(h, slack_api)
    approvals = h.daemon.approvals
    own_pass = approvals.cancel_removed

    async def sync_first() -> list[str]:
        await approvals.sync()  # what the loop does when it runs between adopt and this
        return await own_pass()

    approvals.cancel_removed = sync_first  # type: ignore[method-assign]
    write_policies(h, policy("keep"))
    status, answer = await reload(h)

    assert status == 200 and answer["removed"] == ["ask"], answer
    assert answer["cancelled_approvals"] == [decision["approval_id"]]
    [cancelled] = [d for d in await h.decisions() if d["id"] == decision["id"]]
    assert cancelled["outcome"] == "cancelled"
    assert h.metric("remediator_approval_decisions_total", policy="ask", decision="cancelled") == 1


async def request_approval_for(h: Harness, slack_api: SlackAPI) -> tuple[dict[str, Any], Any]:
    _, answer = await h.post(body("web-1"))
    [decision] = [d for d in answer["decisions"] if d["policy"] == "ask"]
    message = await eventually(lambda: slack_api.messages(CHANNEL), "the approval message")
    return decision, message[-1]


@on_both_backends
async def test_an_approval_the_old_set_asks_for_after_the_swap_is_cancelled(
    harness: HarnessFactory, held_prometheus: HeldPrometheus
) -> None:
    """A webhook in flight across the reload is decided by the old set, which may ask for an
    approval of the policy just removed: the sync cancels it within a second or so."""
    h = await harness(
        policy("ask", ASK, extra=CONDITION), checker=PrometheusChecker(held_prometheus.url)
    )
    first = asyncio.create_task(h.post(body("web-1")))
    await eventually(lambda: held_prometheus.conditions, "the condition query")
    write_policies(h, policy("keep"))
    status, answer = await reload(h)
    assert status == 200 and answer["cancelled_approvals"] == [], answer

    held_prometheus.release.set()
    _, late = await first
    [decision] = late["decisions"]
    assert (decision["policy"], decision["outcome"]) == ("ask", "awaiting_approval")
    cancelled = await h.wait_outcome(decision["id"], {"cancelled"})
    assert cancelled["reason"] == "policy ask was removed by a config reload"


async def test_a_new_policy_gets_the_backend_and_the_secrets_it_is_the_first_to_need(
    harness: HarnessFactory, http_hook: Hook
) -> None:
    h = await harness(policy("keep"))
    assert "http.request" not in h.daemon.executors
    hook = f"""---
name: call-ci
match: {{matchers: ['alertname="ContainerDown"']}}
action:
  type: http.request
  allow_targets: ["{http_hook.url}/job/*"]
  params:
    method: POST
    url: "{http_hook.url}/job/restart"
    headers: {{Authorization: "Bearer ${{secret:ci}}"}}
    body: '{{"container": "{{{{ labels.container }}}}"}}'
"""
    write_policies(h, policy("keep") + hook)
    write_config(h, "secrets: {ci: first-ci-token-123}\n")
    status, answer = await reload(h)
    assert status == 200 and answer["added"] == ["call-ci"], answer

    for container, token in (("web-1", "first-ci-token-123"), ("web-2", "second-ci-token-456")):
        if container == "web-2":  # the secret rotated in the config: a reload fills it in
            config_path = h.folder / "remediator.yaml"
            config_path.write_text(
                config_path.read_text().replace("first-ci-token-123", "second-ci-token-456")
            )
            assert (await reload(h))[0] == 200
        _, answer = await h.post(body(container))
        [call] = [d for d in answer["decisions"] if d["policy"] == "call-ci"]
        await h.wait_outcome(call["id"], {"executed"})
        assert http_hook.requests[-1].headers["Authorization"] == f"Bearer {token}"
        assert http_hook.requests[-1].body == f'{{"container": "{container}"}}'.encode()
