"""Daemon config: SPEC defaults, ${ENV} substitution, *_file secrets, unknown keys rejected."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from remediator.config import Config
from remediator.config_file import load_config, parse_config
from remediator.errors import ConfigError
from remediator.store.postgres import redact


def test_defaults_match_spec() -> None:
    config = Config()
    assert config.listen == "127.0.0.1:9595"
    assert config.state == "sqlite:///./remediator.db"
    assert config.policies == ("./policies",)
    assert config.dry_run is False
    assert config.max_body_bytes == 1_048_576
    assert config.auth.alertmanager is None
    assert config.docker.url == "unix:///var/run/docker.sock"
    assert config.kubernetes.protected_namespaces == ("kube-system",)
    assert config.prometheus.url == "http://127.0.0.1:9090"
    assert config.slack.api_url == "https://slack.com/api/"
    assert config.limits.max_concurrent_actions == 4
    assert str(config.limits.global_rate) == "30/1h"
    assert config.limits.approval_ttl == timedelta(minutes=15)


def test_spec_sample_config_loads(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-pw\n")
    text = """
listen: "0.0.0.0:9595"
state: "sqlite:///./state.db"
policies: ["./policies"]
dry_run: true
max_body_bytes: 65536
auth:
  alertmanager: {basic: {username: am, password_file: pw}}
  datadog: {header: "X-Remediator-Token", token: "${DD_TOKEN}"}
  api: {bearer_token: "${API_TOKEN}"}
slack:
  bot_token: "${SLACK_BOT_TOKEN}"
  signing_secret: "${SLACK_SIGNING_SECRET}"
  channel: "C0123456"
  approvers: ["U111", "U222"]
  api_url: "http://127.0.0.1:1/api/"
docker: {url: "unix:///var/run/docker.sock"}
kubernetes: {kubeconfig: null, context: null, protected_namespaces: ["kube-system"]}
prometheus: {url: "http://127.0.0.1:9090"}
limits: {max_concurrent_actions: 2, global_rate: "10/1h", approval_ttl: "5m"}
"""
    env = {
        "DD_TOKEN": "dd-tok",
        "API_TOKEN": "api-tok",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "sig",
    }
    config = parse_config(text, "r.yaml", env, tmp_path)
    assert config.auth.alertmanager is not None and config.auth.alertmanager.basic is not None
    assert config.auth.alertmanager.basic.password.get_secret_value() == "s3cret-pw"  # trimmed
    assert config.auth.api is not None and config.auth.api.bearer_token is not None
    assert config.auth.api.bearer_token.get_secret_value() == "api-tok"
    assert list(config.auth.api.identities()) == ["api:api"]
    assert config.limits.approval_ttl == timedelta(minutes=5)
    assert config.state_target().path == str(tmp_path / "state.db")
    assert config.policy_paths() == [tmp_path / "policies"]
    assert set(config.secret_values()) == {"s3cret-pw", "dd-tok", "api-tok", "xoxb-1", "sig"}
    assert "s3cret-pw" not in repr(config) and "api-tok" not in repr(config)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("listn: x", {}, "c.yaml: listn: Extra inputs are not permitted"),
        (
            "auth: {alertmanager: {bearer_token: '${NOPE}'}}",
            {},
            "c.yaml: auth.alertmanager.bearer_token: environment variable NOPE is not set",
        ),
        (
            "auth: {alertmanager: {}}",
            {},
            "c.yaml: auth.alertmanager: set exactly one of bearer_token or basic",
        ),
        (
            "auth: {alertmanager: {bearer_token: ''}}",
            {},
            "auth.alertmanager.bearer_token: must not be empty",
        ),
        (
            "auth: {api: {bearer_token: '${EMPTY}'}}",
            {"EMPTY": ""},
            "auth.api.bearer_token: must not be empty",
        ),
        ("auth: {datadog: {token: ''}}", {}, "auth.datadog.token: must not be empty"),
        (
            "auth: {alertmanager: {bearer_token: a, bearer_token_file: b}}",
            {},
            "set either bearer_token or bearer_token_file",
        ),
        (
            "auth: {alertmanager: {bearer_token_file: /nonexistent/x}}",
            {},
            "cannot read /nonexistent/x",
        ),
        (
            "auth: {alertmanager: {bearer_tokn_file: x}}",
            {},
            "auth.alertmanager.bearer_tokn_file: Extra inputs are not permitted",
        ),
        ("state: postgresql:///db", {}, "c.yaml: state: postgresql state URL needs a host"),
        ("action_lease: 500ms", {}, "c.yaml: action_lease: must be at least 1s"),
        ("state: mysql://x", {}, "unsupported state URL scheme 'mysql'"),
        ("listen: localhost", {}, "c.yaml: listen: listen must be HOST:PORT"),
        ("limits: {global_rate: lots}", {}, "c.yaml: limits.global_rate: invalid rate 'lots'"),
        ("limits: {max_concurrent_actions: 0}", {}, "limits.max_concurrent_actions"),
        ("dry_run: maybe", {}, "c.yaml: dry_run:"),
        ("- a list", {}, "c.yaml: (config): expected a mapping"),
        ("a: 1\na: 2", {}, "c.yaml: yaml: duplicate key 'a' at line 2, column 1"),
    ],
)
def test_config_errors_name_the_key(text: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml", env, Path("/nonexistent"))
    assert expected in str(caught.value)


def test_env_default_syntax() -> None:
    config = parse_config("listen: '127.0.0.1:${PORT:-9999}'", "c.yaml", {})
    assert config.listen == "127.0.0.1:9999"


def test_no_config_file_means_builtin_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None) == Config()


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_a_postgresql_state_url_is_accepted_and_its_password_is_a_secret() -> None:
    url = "postgresql://remediator:p%40ss@db.internal:5432/remediator"
    config = parse_config(f"state: '{url}'\naction_lease: 9s", "c.yaml", {})
    target = config.state_target()
    assert (target.kind, target.path) == ("postgresql", url)
    assert config.action_lease == timedelta(seconds=9)
    # Both spellings: the URL as written and the password it stands for.
    assert {"p%40ss", "p@ss"} <= set(config.secret_values())


def test_the_postgresql_password_never_reaches_a_log_line() -> None:
    url = "postgresql://remediator:hunter2@db:5432/remediator"
    assert redact(url) == "postgresql://remediator:***@db:5432/remediator"
    assert redact("postgresql://db/x") == "postgresql://db/x"


def test_retention_must_outlast_every_window_the_guards_count() -> None:
    from remediator.core.policy import parse_policies  # noqa: PLC0415  # this test only
    from remediator.policy_files import retention_problems  # noqa: PLC0415

    text = """
name: a
action: {type: docker.restart, params: {container: x}, allow_targets: [x]}
guards: {cooldown: 2d, rate_limit: "5/3d"}
---
name: b
action: {type: docker.restart, params: {container: x}, allow_targets: [x]}
guards: {cooldown: 1h}
"""
    policies, problems = parse_policies(text, "p.yaml")
    assert problems == []
    assert retention_problems(timedelta(days=30), timedelta(hours=1), policies) == []
    found = retention_problems(timedelta(days=1), timedelta(days=2), policies)
    assert found == [
        "retention (1d) is shorter than limits.global_rate's window (2d)",
        "policy a: guards.cooldown: 2d is longer than retention (1d); raise retention",
        "policy a: guards.rate_limit: 3d is longer than retention (1d); raise retention",
    ]
