"""`${VAR}` unset in the environment: an error for `serve`, a note for `check`/`simulate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.config_file import parse_config
from remediator.errors import ConfigError

TEXT = """
auth:
  alertmanager: {bearer_token: "${AM_TOKEN}"}
  api: {tokens: {oncall: "${API_TOKEN}", ci: "${CI_TOKEN:-ci-default-token}"}}
secrets: {ci_token: "${CI_SECRET}"}
prometheus: {url: "http://${PROM_HOST:-127.0.0.1}:9090"}
"""


def test_serve_refuses_an_unset_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(TEXT, "r.yaml", {"API_TOKEN": "t0ken-abc", "CI_SECRET": "x1234"})
    assert str(caught.value) == (
        "r.yaml: auth.alertmanager.bearer_token: environment variable AM_TOKEN is not set"
    )


def test_check_notes_every_unset_variable_and_keeps_the_placeholder() -> None:
    unset: list[str] = []
    config = parse_config(TEXT, "r.yaml", {"API_TOKEN": "t0ken-abc"}, unset=unset)
    assert unset == [
        "r.yaml: auth.alertmanager.bearer_token: environment variable AM_TOKEN is not set",
        "r.yaml: secrets.ci_token: environment variable CI_SECRET is not set",
    ]
    assert config.auth.alertmanager is not None
    token = config.auth.alertmanager.bearer_token
    assert token is not None and token.get_secret_value() == "${AM_TOKEN}"
    assert config.action_secrets()["ci_token"].get_secret_value() == "${CI_SECRET}"
    # Set variables and defaults are substituted as ever.
    assert config.auth.api is not None
    identities = config.auth.api.identities()
    assert identities["api:oncall"].get_secret_value() == "t0ken-abc"
    assert identities["api:ci"].get_secret_value() == "ci-default-token"
    assert config.prometheus.url == "http://127.0.0.1:9090"


def test_a_set_environment_leaves_no_note() -> None:
    unset: list[str] = []
    env = {"AM_TOKEN": "a" * 8, "API_TOKEN": "b" * 8, "CI_SECRET": "c" * 8}
    parse_config(TEXT, "r.yaml", env, unset=unset)
    assert unset == []


def test_other_errors_stay_errors_for_check() -> None:
    with pytest.raises(ConfigError, match="listn: Extra inputs are not permitted"):
        parse_config("listn: 1\n", "r.yaml", {}, unset=[])


FILES = """
state_file: secrets/state-url
auth:
  alertmanager: {bearer_token_file: secrets/am-token}
  api: {tokens: {oncall_file: secrets/api-token, ci_file: secrets/ci-token}}
secrets: {pg_password_file: secrets/pg}
"""


def test_serve_refuses_an_unreadable_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"state_file: cannot read .*state-url"):
        parse_config(FILES, "r.yaml", {}, tmp_path)


def test_check_notes_every_unreadable_secret_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ci-token").write_text("ci-token-value\n")
    unset: list[str] = []
    config = parse_config(FILES, "r.yaml", {}, tmp_path, unset)
    missing = "No such file or directory"
    assert unset == [
        f"r.yaml: state_file: cannot read {tmp_path}/secrets/state-url: {missing}",
        f"r.yaml: bearer_token_file: cannot read {tmp_path}/secrets/am-token: {missing}",
        f"r.yaml: oncall_file: cannot read {tmp_path}/secrets/api-token: {missing}",
        f"r.yaml: pg_password_file: cannot read {tmp_path}/secrets/pg: {missing}",
    ]
    assert config.state == "sqlite:///./remediator.db"  # the default stands in
    assert config.auth.api is not None
    tokens = {k: v.get_secret_value() for k, v in config.auth.api.identities().items()}
    assert tokens == {
        "api:oncall": f"(unread {tmp_path}/secrets/api-token)",
        "api:ci": "ci-token-value",  # a readable one is read
    }
    assert "pg_password" in config.action_secrets()  # declared: ${secret:pg_password} checks
