"""deploy/docker-compose.yml holds together: the remediator service has what the image and
the Docker socket need, and every file, secret and address it names agrees with the config
and the Alertmanager route beside it. tests/e2e/test_image.py runs it for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import compose
from tests.fixtures.procs import missing

REPO = compose.DEPLOY.parent


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    remediator: dict[str, Any] = compose.load()["services"]["remediator"]
    return remediator


def test_the_socket_is_mounted_and_its_group_added_from_docker_gid(
    service: dict[str, Any],
) -> None:
    socket = [m for m in compose.mounts(service) if m.target == compose.SOCKET_TARGET]
    assert [(m.source, m.read_only) for m in socket] == [("/var/run/docker.sock", False)]
    # The image's user is not root: without the socket's group it cannot restart anything.
    assert len(service["group_add"]) == 1
    assert re.fullmatch(r"\$\{DOCKER_GID:\?[^}]+\}", service["group_add"][0])
    assert compose.interpolate(service["group_add"][0], {"DOCKER_GID": "998"}) == "998"
    with pytest.raises(KeyError):  # compose refuses to start with it unset, and says why
        compose.interpolate(service["group_add"][0], {})


def test_config_policies_and_state_are_where_the_image_reads_them(
    service: dict[str, Any],
) -> None:
    by_target = {m.target: m for m in compose.mounts(service)}
    config = by_target[compose.CONFIG_TARGET]
    assert config.read_only and Path(config.source).is_file()
    assert by_target["/etc/remediator/policies"].read_only
    assert Path(by_target["/etc/remediator/policies"].source) == REPO / "policies"
    state = by_target[compose.STATE_TARGET]
    assert state.named_volume and state.source in compose.load()["volumes"]
    for mount in compose.mounts(service):  # every host path it names is in the repository
        assert (
            mount.named_volume or mount.source.startswith("/var/run") or Path(mount.source).exists()
        )
    # The image's own command and user: the service overrides neither to something else.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"CMD {json.dumps(service['command'])}" in dockerfile
    assert "user" not in service
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def test_the_config_reads_the_secrets_the_service_mounts_and_alertmanager_sends(
    service: dict[str, Any],
) -> None:
    document = compose.load()
    (mount,) = [m for m in compose.mounts(service) if m.target == compose.CONFIG_TARGET]
    config = yaml.safe_load(Path(mount.source).read_text())
    files = {
        config["auth"]["alertmanager"]["bearer_token_file"],
        config["auth"]["datadog"]["token_file"],
        config["auth"]["api"]["tokens"]["oncall_file"],
    }
    assert files == {f"/run/secrets/{name}" for name in service["secrets"]}
    assert set(service["secrets"]) <= set(document["secrets"])
    for secret in document["secrets"].values():
        # The token files are each user's own: their folder ships, git-ignored, empty.
        path = compose.DEPLOY / secret["file"]
        assert path.parent == compose.DEPLOY / "secrets" and path.parent.is_dir()
    assert (compose.DEPLOY / "secrets" / ".gitignore").read_text().splitlines()[1:] == [
        "*",
        "!.gitignore",
    ]
    # Alertmanager reaches the service by name on the port the config listens on, with the
    # token the daemon checks.
    am_service = document["services"]["alertmanager"]
    (am_config,) = [m for m in compose.mounts(am_service) if m.target.endswith("alertmanager.yml")]
    receivers = yaml.safe_load(Path(am_config.source).read_text())["receivers"]
    (hook,) = next(r for r in receivers if r["name"] == "remediator")["webhook_configs"]
    port = config["listen"].rpartition(":")[2]
    assert hook["url"] == f"http://remediator:{port}/webhook/alertmanager"
    (token,) = am_service["secrets"]
    assert token == {
        "source": "am-token",
        "target": hook["http_config"]["authorization"]["credentials_file"],
    }


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin), else the older `docker-compose`, else None."""
    docker = shutil.which("docker")
    if docker is not None:
        plugin = [docker, "compose"]
        version = subprocess.run([*plugin, "version"], capture_output=True, check=False, timeout=30)
        if version.returncode == 0:
            return plugin
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        missing("docker compose", "apt-get install docker-compose")

    def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        argv = [*command, "-f", str(compose.COMPOSE), "config"]
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=60, env=env
        )

    rendered = config({**os.environ, "DOCKER_GID": "998"})
    assert rendered.returncode == 0, rendered.stderr
    remediator = yaml.safe_load(rendered.stdout)["services"]["remediator"]
    assert [str(group) for group in remediator["group_add"]] == ["998"]
    assert remediator["read_only"] is True
    refused = config({k: v for k, v in os.environ.items() if k != "DOCKER_GID"})
    assert refused.returncode != 0 and "DOCKER_GID" in refused.stderr
