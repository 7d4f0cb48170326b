"""Auth and secrets config: named API tokens, the explicit opt-out, open endpoints on a
network address, `secrets` with `_file` entries, and how credentials are compared."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from remediator.addresses import network_problems
from remediator.config_file import parse_config
from remediator.errors import ConfigError
from remediator.web import auth

FULL_AUTH = """
auth:
  alertmanager: {bearer_token: am-token-1}
  datadog: {token: dd-token-1}
  api: {tokens: {alice: alice-token, bob: bob-token}}
"""


def test_named_tokens_are_identities_and_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "ci").write_text("ci-token-from-file\n")
    text = FULL_AUTH.replace("bob: bob-token", "ci_file: ci")
    config = parse_config(text, "r.yaml", {}, tmp_path)
    assert config.auth.api is not None
    tokens = {k: v.get_secret_value() for k, v in config.auth.api.identities().items()}
    assert tokens == {"api:alice": "alice-token", "api:ci": "ci-token-from-file"}
    assert "ci-token-from-file" in config.secret_values()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auth: {api: {}}", "set tokens or bearer_token"),
        ("auth: {api: {tokens: {}}}", "set tokens or bearer_token"),
        ("auth: {api: {tokens: {a: x1234}, bearer_token: y1234}}", "set tokens or bearer_token"),
        ("auth: {api: {tokens: {a: same-tok, b: same-tok}}}", "share one token"),
        ("auth: {api: {tokens: {'a b': x1234}}}", "token name"),
        ("auth: {api: {tokens: {a: ''}}}", "must not be empty"),
        ("auth: {datadog: {header: X}}", "set token"),
        (
            "auth: {alertmanager: {allow_unauthenticated: true, bearer_token: t1234}}",
            "cannot be combined",
        ),
        ("auth: {alertmanager: {allow_unauthenticated: false}}", "exactly one"),
        ("secrets: {'bad-name': x1234}", "secret name"),
        ("retention: 10m", "at least 1h"),
    ],
)
def test_bad_auth_and_secrets_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "r.yaml", {})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("listen", "auth_text", "open_keys"),
    [
        ("127.0.0.1:9595", "", []),
        ("[::1]:9595", "", []),
        ("localhost:9595", "", []),
        ("0.0.0.0:9595", FULL_AUTH, []),
        (":9595", "auth: {alertmanager: {bearer_token: am-token-1}}", ["datadog", "api"]),
        ("10.0.0.5:9595", "", ["alertmanager", "datadog", "api"]),
        (
            "0.0.0.0:9595",
            "auth: {alertmanager: {allow_unauthenticated: true}, datadog: "
            "{allow_unauthenticated: true}, api: {allow_unauthenticated: true}}",
            [],
        ),
        (
            "myhost:9595",
            "auth: {datadog: {token: x1234}, api: {bearer_token: y1234}}",
            ["alertmanager"],
        ),
    ],
)
def test_open_endpoints_are_refused_off_loopback(
    listen: str, auth_text: str, open_keys: list[str]
) -> None:
    text = f'listen: "{listen}"\n{auth_text}'
    if not open_keys:
        assert network_problems(parse_config(text, "r.yaml", {})) == []
        return
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "r.yaml", {})
    lines = str(raised.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [f"auth.{k}" for k in open_keys]


def test_secrets_merge_with_the_older_http_secrets(tmp_path: Path) -> None:
    (tmp_path / "pg").write_text("pg-password\n")
    text = "secrets: {ci_token: new-ci, pg_password_file: pg}\nhttp: {secrets: {ci_token: old, x: y1234}}"
    config = parse_config(text, "r.yaml", {}, tmp_path)
    merged = {k: v.get_secret_value() for k, v in config.action_secrets().items()}
    assert merged == {"ci_token": "new-ci", "pg_password": "pg-password", "x": "y1234"}


def test_a_prometheus_password_is_a_registered_secret() -> None:
    config = parse_config('prometheus: {url: "http://u:p%40ssw0rd@prom:9090"}', "r.yaml", {})
    assert {"p@ssw0rd", "p%40ssw0rd"} <= set(config.secret_values())


def test_api_identity_names_the_matching_token() -> None:
    config = parse_config(FULL_AUTH, "r.yaml", {})
    api = config.auth.api
    assert auth.api_identity("Bearer alice-token", api) == "api:alice"
    assert auth.api_identity("bearer bob-token", api) == "api:bob"
    assert auth.api_identity("Bearer alice-token-x", api) is None
    assert auth.api_identity("Basic alice-token", api) is None
    assert auth.api_identity(None, api) is None
    assert auth.api_identity("anything", None) == auth.OPEN


@pytest.mark.parametrize(
    "header",
    [
        "Bearer \udcff\udcfe",  # how aiohttp hands over undecodable bytes
        "Bearer \ud800",  # a lone surrogate that was never a byte
        "Basic \udcff",
        "Basic " + "w6k6w6k=",  # é:é in UTF-8
    ],
)
def test_credentials_that_are_not_text_do_not_match_and_do_not_raise(header: str) -> None:
    assert auth.bearer_ok(header, SecretStr("token")) is False
    assert auth.basic_ok(header, "é", SecretStr("x")) is False
