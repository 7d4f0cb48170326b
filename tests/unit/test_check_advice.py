"""`check`'s warnings about approvals nobody (or too few) can give."""

from __future__ import annotations

import pytest

from remediator.advice import approval_warnings
from remediator.config_file import parse_config
from remediator.core.policy import parse_policies

SLACK = "slack: {bot_token: xoxb-1, signing_secret: abcd, channel: C1, approvers: [U1, U2]}\n"
SLACK_NO_APPROVERS = "slack: {bot_token: xoxb-1, signing_secret: abcd, channel: C1}\n"
TOKENS = "auth: {api: {tokens: {alice: alice-token-1, bob: bob-token-22}}}\n"
ONE_TOKEN = "auth: {api: {tokens: {alice: alice-token-1}}}\n"
OPEN = ""  # loopback, no auth.api: every caller is api:anonymous


def policy(guards: str = "approval: always", steps: bool = False) -> str:
    action = "{type: notify, params: {text: hi}}"
    if steps:
        return (
            f"name: p\nguards: {{{guards}}}\nsteps:\n  - action: {action}\n"
            f"  - action: {action}\n    approval: always\n"
        )
    return f"name: p\naction: {action}\nguards: {{{guards}}}\n"


CASES = [
    # (config, policy guards, expected warning or None)
    pytest.param(OPEN, "approval: never", None, id="no-approval-asked"),
    pytest.param(
        OPEN,
        "approval: always",
        "policy p: guards.approval: no approvers (guards.approvers, slack.approvers) and no "
        "API tokens (auth.api.tokens): only an unauthenticated API caller (api:anonymous) "
        "can approve",
        id="nobody-listed-and-no-tokens",
    ),
    pytest.param(
        OPEN,
        "approval: {when: 'labels.env == \"prod\"'}",
        "policy p: guards.approval: no approvers (guards.approvers, slack.approvers) and no "
        "API tokens (auth.api.tokens): only an unauthenticated API caller (api:anonymous) "
        "can approve",
        id="when-counts-too",
    ),
    pytest.param(TOKENS, "approval: always", None, id="no-approvers-but-api-tokens"),
    pytest.param(
        ONE_TOKEN,
        "approval: always, approvals_required: 2",
        "policy p: guards.approval: needs 2 approvals, but with no approvers listed only the "
        "1 API token(s) of auth.api can approve",
        id="two-person-rule-with-one-token",
    ),
    pytest.param(
        TOKENS,
        "approval: always, approvers: [U1, U2]",
        "policy p: guards.approval: nobody can approve (guards.approvers): Slack users U1, U2 "
        "while slack is not configured",
        id="only-slack-users-and-no-slack",
    ),
    pytest.param(
        TOKENS + SLACK_NO_APPROVERS, "approval: always, approvers: [U1, U2]", None, id="slack-users"
    ),
    pytest.param(
        TOKENS + "slack: {approvers: [U1]}\n",
        "approval: always",
        "policy p: guards.approval: nobody can approve (slack.approvers): Slack users U1 while "
        "slack is not configured",
        id="slack-approvers-without-slack",
    ),
    pytest.param(SLACK + TOKENS, "approval: always", None, id="slack-approvers-with-slack"),
    pytest.param(
        TOKENS,
        "approval: always, approvers: ['api:carol']",
        "policy p: guards.approval: nobody can approve (guards.approvers): api:carol without "
        "a token in auth.api.tokens",
        id="api-approver-without-a-token",
    ),
    pytest.param(
        OPEN,
        "approval: always, approvers: ['api:alice']",
        "policy p: guards.approval: nobody can approve (guards.approvers): api:alice without "
        "a token in auth.api.tokens",
        id="api-approver-while-the-api-is-open",
    ),
    pytest.param(
        TOKENS, "approval: always, approvers: ['api:alice', U1]", None, id="one-usable-is-enough"
    ),
    pytest.param(
        TOKENS,
        "approval: always, approvals_required: 2, approvers: ['api:alice', U1]",
        "policy p: guards.approval: needs 2 approvals but only 1 of its approvers "
        "(guards.approvers) can give one: Slack users U1 while slack is not configured",
        id="two-person-rule-short-of-people",
    ),
    pytest.param(
        SLACK_NO_APPROVERS,
        "approval: always, approvals_required: 3, approvers: [U1, U2]",
        "policy p: guards.approval: needs 3 approvals but only 2 of its approvers "
        "(guards.approvers) can give one",
        id="fewer-approvers-than-required",
    ),
]


@pytest.mark.parametrize(("config", "guards", "expected"), CASES)
def test_approvals_nobody_can_give(config: str, guards: str, expected: str | None) -> None:
    cfg = parse_config(config, "r.yaml", {})
    policies, problems = parse_policies(policy(guards), "p.yaml")
    assert problems == []
    assert approval_warnings(cfg, policies) == ([] if expected is None else [expected])


def test_a_ladder_steps_own_approval_is_named() -> None:
    cfg = parse_config(OPEN, "r.yaml", {})
    policies, problems = parse_policies(policy("cooldown: 1m", steps=True), "p.yaml")
    assert problems == []
    [warning] = approval_warnings(cfg, policies)
    assert warning.startswith("policy p: steps.1.approval (step 2): no approvers")
    cfg = parse_config(TOKENS, "r.yaml", {})
    assert approval_warnings(cfg, policies) == []
