"""Hot reload's pure parts: which changed keys need a restart, the config a reload puts in
force, and the match cache that a new rule set must not answer from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediator.config import Config
from remediator.config_file import parse_config
from remediator.core.alert import Alert
from remediator.core.guards import Gates
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.memory import Memory
from remediator.reload import changed_keys, in_force, is_hot, needs_restart

BASE = """
listen: "127.0.0.1:9595"
state: "sqlite:///./state.db"
policies: ["./policies"]
auth: {api: {tokens: {alice: alice-token-123}}}
slack: {bot_token: xoxb-1, signing_secret: sig-1, channel: C1, approvers: [U1]}
limits: {max_concurrent_actions: 4, global_rate: "30/1h", approval_ttl: 15m}
secrets: {ci: ci-token-1}
"""


def _config(text: str, tmp_path: Path) -> Config:
    return parse_config(text, "remediator.yaml", {}, tmp_path)


def _changed(old: str, new: str) -> str:
    """BASE with one line's text replaced."""
    assert old in BASE
    return BASE.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "restart"),
    [
        # Applied by a reload: nothing to report.
        ('policies: ["./policies"]', 'policies: ["./policies", "./more"]', []),
        ("secrets: {ci: ci-token-1}", "secrets: {ci: ci-token-2, pg: pg-pw-1}", []),
        ('global_rate: "30/1h"', 'global_rate: "5/1h"', []),
        ("approval_ttl: 15m", "approval_ttl: 5m", []),
        ("approvers: [U1]", "approvers: [U1, U2]", []),
        ('policies: ["./policies"]', 'policies: ["./policies"]\ndry_run: true', []),
        ('policies: ["./policies"]', 'policies: ["./policies"]\nretention: 90d', []),
        ('policies: ["./policies"]', 'policies: ["./policies"]\ndrain_timeout: 10s', []),
        # Built once at start: reported, not applied.
        ('listen: "127.0.0.1:9595"', 'listen: "127.0.0.1:9696"', ["listen"]),
        ('state: "sqlite:///./state.db"', 'state: "sqlite:///./other.db"', ["state"]),
        ("alice: alice-token-123", "alice: alice-token-456", ["auth.api.tokens"]),
        ("channel: C1", "channel: C2", ["slack.channel"]),
        (
            "max_concurrent_actions: 4",
            "max_concurrent_actions: 8",
            ["limits.max_concurrent_actions"],
        ),
        (
            'policies: ["./policies"]',
            'policies: ["./policies"]\ndocker: {url: "unix:///tmp/d.sock"}',
            ["docker.url"],
        ),
        (
            'policies: ["./policies"]',
            'policies: ["./policies"]\nprometheus: {url: "http://127.0.0.1:9091"}',
            ["prometheus.url"],
        ),
        (
            'policies: ["./policies"]',
            'policies: ["./policies"]\nkubernetes: {protected_namespaces: [kube-system, prod]}',
            ["kubernetes.protected_namespaces"],
        ),
        (
            'policies: ["./policies"]',
            'policies: ["./policies"]\nmax_body_bytes: 4096',
            ["max_body_bytes"],
        ),
        (
            'policies: ["./policies"]',
            'policies: ["./policies"]\naction_lease: 60s',
            ["action_lease"],
        ),
    ],
)
def test_a_changed_key_needs_a_restart_only_when_a_reload_cannot_apply_it(
    tmp_path: Path, old: str, new: str, restart: list[str]
) -> None:
    running, changed = _config(BASE, tmp_path), _config(_changed(old, new), tmp_path)
    assert changed_keys(running, changed)  # the case changes something
    assert needs_restart(running, changed) == restart
    # The config put in force has the new value of every applied key, the running one of the
    # others: nothing is left differing but the keys that need a restart.
    assert changed_keys(running, in_force(running, changed)) == [
        key for key in changed_keys(running, changed) if key not in restart
    ]
    assert changed_keys(in_force(running, changed), changed) == restart


def test_the_config_in_force_keeps_every_restart_key_and_takes_every_hot_one(
    tmp_path: Path,
) -> None:
    running = _config(BASE, tmp_path)
    new = _config(
        BASE.replace("9595", "9696")
        .replace("approvers: [U1]", "approvers: [U9]")
        .replace("channel: C1", "channel: C9")
        .replace("max_concurrent_actions: 4", "max_concurrent_actions: 9")
        .replace('"30/1h"', '"9/1h"')
        + "dry_run: true\n",
        tmp_path,
    )
    config = in_force(running, new)
    assert config.listen == "127.0.0.1:9595"
    assert config.slack.channel == "C1" and config.slack.approvers == ("U9",)
    assert config.limits.max_concurrent_actions == 4
    assert str(config.limits.global_rate) == "9/1h"
    assert config.dry_run is True
    assert config.base_dir == str(tmp_path)


def test_policies_left_to_the_default_stay_optional_after_a_reload(tmp_path: Path) -> None:
    """The built-in ./policies may be absent; a configured path that is missing is an error.
    The config in force says which, as the new file does."""
    running = _config("", tmp_path)
    assert not in_force(running, _config("", tmp_path)).policies_configured
    configured = _config('policies: ["./policies"]', tmp_path)
    assert in_force(running, configured).policies_configured


@pytest.mark.parametrize(
    ("key", "hot"),
    [
        ("policies", True),
        ("secrets", True),
        ("http.secrets", True),
        ("limits.global_rate", True),
        ("limits.max_concurrent_actions", False),
        ("slack.approvers", True),
        ("slack.bot_token", False),
        ("auth.api.tokens", False),
        ("listen", False),
        ("state", False),
    ],
)
def test_which_keys_are_hot(key: str, hot: bool) -> None:
    assert is_hot(key) is hot


def test_changed_keys_name_secrets_never_their_values(tmp_path: Path) -> None:
    running = _config(BASE, tmp_path)
    new = _config(BASE.replace("alice-token-123", "alice-token-999"), tmp_path)
    assert changed_keys(running, new) == ["auth.api.tokens"]
    assert "alice-token" not in json.dumps(needs_restart(running, new))


def _alerts(container: str) -> list[Alert]:
    body = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Other", "container": container},
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    return list(parse_alertmanager(json.dumps(body).encode()))


def test_what_one_rule_set_matched_is_no_answer_under_another() -> None:
    """A repeat answered from memory must have been matched by the rule set in force: after
    a reload, a new policy may concern it."""
    memory = Memory()
    alerts = _alerts("web-1")
    memory.saw(alerts, [], generation=1)  # matched nothing under rule set 1
    known = memory.known_repeats(alerts, Gates(), 1)
    assert known is not None and known.verdicts == []
    assert memory.known_repeats(alerts, Gates(), 2) is None
