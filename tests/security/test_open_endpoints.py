"""Finding 1: an endpoint without auth on a network address. `serve` refuses to listen
(exit 2, naming the endpoint), `check` says the same, an explicit opt-out is honoured, and
every shipped config sets auth for every endpoint it serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from remediator.addresses import ENDPOINTS
from remediator.config_file import parse_config
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, DaemonFactory
from tests.fixtures.procs import free_port, remediator_cli

REPO = Path(__file__).resolve().parents[2]
POLICY = """
name: restart-web
match: {matchers: ['alertname="Down"']}
action: {type: docker.restart, params: {container: "{{ labels.name }}"}, allow_targets: ["web-*"]}
"""


def _write(tmp_path: Path, config: dict[str, object]) -> None:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "p.yaml").write_text(POLICY)
    (tmp_path / "remediator.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("missing", ["alertmanager", "datadog", "api"])
def test_serve_refuses_an_open_endpoint_on_a_network_address(tmp_path: Path, missing: str) -> None:
    port = free_port()
    auth = {
        "alertmanager": {"bearer_token": AM_TOKEN},
        "datadog": {"token": "dd-token-1234"},
        "api": {"tokens": {"oncall": API_TOKEN}},
    }
    del auth[missing]
    _write(tmp_path, {"listen": f"0.0.0.0:{port}", "policies": ["./policies"], "auth": auth})
    served = remediator_cli("serve", "--config", "remediator.yaml", cwd=tmp_path)
    endpoint = {key: ep for ep, key in ENDPOINTS}[missing]
    assert served.returncode == 2, served.stderr
    assert f"auth.{missing}: {endpoint} has no auth" in served.stderr
    assert not (tmp_path / "remediator.db").exists()  # refused before opening anything
    checked = remediator_cli("check", "--config", "remediator.yaml", cwd=tmp_path)
    assert checked.returncode == 1
    assert f"remediator.yaml: auth.{missing}: {endpoint} has no auth" in checked.stderr


def test_an_explicitly_open_endpoint_is_served_and_the_others_still_need_auth(
    daemon_factory: DaemonFactory,
) -> None:
    port = free_port()
    daemon = daemon_factory(
        POLICY,
        port=port,
        listen=f"0.0.0.0:{port}",
        auth={
            "alertmanager": {"bearer_token": AM_TOKEN},
            "datadog": {"allow_unauthenticated": True},
            "api": {"tokens": {"oncall": API_TOKEN}},
        },
    )
    daemon.start()
    [warning] = [e for e in daemon.events("auth.open") if e["endpoint"] == "datadog"]
    assert "allow_unauthenticated" in warning["detail"]
    # The attack of the review: one unauthenticated POST. Alertmanager's endpoint refuses it.
    body = json.dumps(
        {
            "alerts": [
                {
                    "labels": {"alertname": "Down", "name": "web-1"},
                    "startsAt": "2026-11-22T10:00:00Z",
                }
            ]
        }
    ).encode()
    status, _ = daemon.request(
        "POST", "/webhook/alertmanager", body, {"Content-Type": "application/json"}
    )
    assert status == 401
    status, _ = daemon.request("POST", "/api/v1/pause", b"", {})
    assert status == 401
    assert daemon.decisions() == []
    assert daemon.request("GET", "/healthz")[1]["paused"] is False


def _shipped_configs(tmp_path: Path) -> dict[str, str]:
    """Every config in deploy/, with its secret files pointed at a temp folder."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("am-token", "dd-token", "api-token", "state-url"):
        value = "postgresql://r:pw@db/r" if name == "state-url" else f"s3cret-{name}"
        (secrets / name).write_text(value + "\n")
    configmap = yaml.safe_load_all((REPO / "deploy/kubernetes/base/configmap.yaml").read_text())
    [k8s] = [d["data"]["remediator.yaml"] for d in configmap if "remediator.yaml" in d["data"]]
    texts = {
        "deploy/remediator.yaml": (REPO / "deploy/remediator.yaml").read_text(),
        "deploy/remediator.compose.yaml": (REPO / "deploy/remediator.compose.yaml").read_text(),
        "deploy/kubernetes/base/configmap.yaml": k8s,
    }
    return {
        name: text.replace("/etc/remediator/secrets", str(secrets)).replace(
            "/run/secrets", str(secrets)
        )
        for name, text in texts.items()
    }


def test_every_shipped_config_sets_auth_for_every_endpoint(tmp_path: Path) -> None:
    env = {"AM_TOKEN": "a" * 16, "DD_TOKEN": "d" * 16, "API_TOKEN": "p" * 16}
    for name, text in _shipped_configs(tmp_path).items():
        config = parse_config(text, name, env)
        for _, key in ENDPOINTS:
            block = getattr(config.auth, key)
            assert block is not None and not block.allow_unauthenticated, (name, key)


def test_every_shipped_config_passes_check_on_a_network_address(tmp_path: Path) -> None:
    """The same files, made to listen on 0.0.0.0 as in a container: still valid."""
    env = {"AM_TOKEN": "a" * 16, "DD_TOKEN": "d" * 16, "API_TOKEN": "p" * 16}
    for index, (name, text) in enumerate(_shipped_configs(tmp_path).items()):
        folder = tmp_path / f"c{index}"
        (folder / "policies").mkdir(parents=True)
        data = yaml.safe_load(text)
        data["listen"] = "0.0.0.0:9595"
        data["policies"] = [str(REPO / "policies")]
        (folder / "remediator.yaml").write_text(yaml.safe_dump(data))
        done = remediator_cli("check", "--config", "remediator.yaml", cwd=folder, env=env)
        assert done.returncode == 0, (name, done.stderr)
