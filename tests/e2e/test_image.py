"""The Dockerfile, built for real with no registry: a Debian base from debootstrap, the
wheelhouse from the host (`WHEELS`), the session's private dockerd; then the container runs
as the compose example runs it and answers, decides, stays non-root and turns healthy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import docker.errors
import pytest
import yaml
from docker.models.containers import Container

from tests.fixtures import compose
from tests.fixtures.daemon import AM_TOKEN, API_TOKEN, Daemon
from tests.fixtures.debian_base import base_rootfs_tar, debian_mirror
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.image_build import Wheelhouse, build_context, build_image
from tests.fixtures.procs import free_port, wait_for

# A cold start (debootstrap, every dependency's wheel) is about 2.5 minutes here, warm about
# one; the default 300 s per test is too tight on a loaded machine for the first test, which
# builds the image in its setup.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

BASE = "remediator-base:debian"
IMAGE = "remediator:test"
CONTAINER = "remediator-image-test"
UID = 10001
T = TypeVar("T")


@dataclass(frozen=True)
class Built:
    image: dict[str, Any]
    context_paths: list[str]


@pytest.fixture(scope="module")
def built(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("image")
    context = work / "context.tar"
    # pip runs while the base is made (or read from the cache) and imported.
    with Wheelhouse(work / "wheels") as wheels:
        repository, tag = BASE.split(":")
        docker_engine.client.api.import_image_from_file(
            str(base_rootfs_tar()), repository=repository, tag=tag
        )
        paths = build_context(context, wheels.finish())
    return Built(image=build_image(docker_engine, context, IMAGE, BASE), context_paths=paths)


@dataclass(frozen=True)
class Running:
    container: Container
    daemon: Daemon  # only its HTTP helpers: the process is the container's


@pytest.fixture(scope="module")
def running(
    built: Built, docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The container as deploy/docker-compose.yml runs it (its mounts, secrets, socket group,
    read-only root, dropped capabilities), the shipped compose config on a free loopback port
    of the host network (the engine has no bridge). A dry run: nothing to restart here."""
    folder = tmp_path_factory.mktemp("container")
    port = free_port()
    config = yaml.safe_load((compose.DEPLOY / "remediator.compose.yaml").read_text())
    config.update(listen=f"127.0.0.1:{port}", dry_run=True)
    config_file = folder / "remediator.yaml"
    config_file.write_text(yaml.safe_dump(config))
    config_file.chmod(0o644)  # the container's user is not the file's owner
    tokens = {"am-token": AM_TOKEN, "dd-token": "dd-secret-token", "api-token": API_TOKEN}
    for name, token in tokens.items():
        (folder / name).write_text(token + "\n")
        (folder / name).chmod(0o644)
    options = compose.run_options(
        compose.load()["services"]["remediator"],
        socket=Path(docker_engine.url.removeprefix("unix://")),
        config_file=config_file,
        secrets={name: folder / name for name in tokens},
    )
    container = docker_engine.client.containers.run(
        IMAGE,
        detach=True,
        name=CONTAINER,
        network_mode="host",
        # Only the interval: the test and the rest of the check stay the image's own.
        healthcheck={"interval": 1_000_000_000},
        **options,
    )
    try:
        yield Running(container, Daemon(folder=folder, port=port, config=config))
    finally:
        container.remove(force=True)
        for mount in compose.mounts(compose.load()["services"]["remediator"]):
            if mount.named_volume:
                with contextlib.suppress(docker.errors.NotFound):
                    docker_engine.client.api.remove_volume(mount.source, force=True)


def _exec(container: Container, *argv: str) -> tuple[int, str]:
    exit_code, output = container.exec_run(list(argv))
    assert isinstance(exit_code, int) and isinstance(output, bytes)
    return exit_code, output.decode(errors="replace")


def _wait(running: Running, probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """wait_for, failing with the container's log as it is at the deadline."""
    try:
        return wait_for(probe, timeout=timeout, what=what, interval=0.2)
    except pytest.fail.Exception:
        logs = running.container.logs().decode(errors="replace")[-4000:]
        pytest.fail(
            f"timed out after {timeout:g}s waiting for {what}; the container's log:\n{logs}"
        )


def _ready(running: Running) -> None:
    _wait(
        running,
        lambda: running.daemon.request("GET", "/readyz")[0] == 200,
        timeout=60,
        what="/readyz",
    )


def test_the_image_is_built_offline_from_a_debian_base_and_a_wheelhouse(built: Built) -> None:
    config = built.image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["/opt/remediator/bin/remediator"]
    assert config["Cmd"] == ["serve", "--config", "/etc/remediator/remediator.yaml"]
    assert config["WorkingDir"] == "/var/lib/remediator"
    assert config["Healthcheck"]["Test"] == [
        "CMD",
        *("/opt/remediator/bin/python", "-m", "remediator.healthcheck"),
        *("--config", "/etc/remediator/remediator.yaml", "--path", "/readyz"),
    ]
    # .dockerignore keeps the context to the build's inputs: no venv, git, tests or caches.
    tops = {path.split("/")[0] for path in built.context_paths}
    assert {"pyproject.toml", "README.md", "constraints.txt", "remediator"} <= tops
    assert not tops & {".git", ".venv", "tests", ".mypy_cache", ".pytest_cache", "bench"}
    assert not [path for path in built.context_paths if "__pycache__" in path]


def test_the_container_answers_readyz_and_decides_an_alertmanager_webhook(
    running: Running,
) -> None:
    daemon = running.daemon
    _ready(running)
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "ContainerUnhealthy",
                    "name": "web-1",
                    "severity": "warning",
                    "env": "staging",
                },
                "annotations": {},
                "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    status, answer = daemon.webhook(body)
    assert status == 200, answer
    decisions = daemon.wait_decisions(
        lambda found: any(d["outcome"] == "dry_run" for d in found),
        timeout=30,
        what="the webhook's dry-run decision",
    )
    assert [(d["policy"], d["target"], d["outcome"]) for d in decisions] == [
        ("restart-unhealthy-container", "web-1", "dry_run")
    ]


def test_the_daemon_runs_as_the_non_root_user_and_reaches_the_socket_by_its_group(
    running: Running,
) -> None:
    _ready(running)
    assert _exec(running.container, "id", "-u") == (0, f"{UID}\n")
    # The serving process itself (PID 1's owner as the engine reports it), not only exec's.
    top = running.container.top(ps_args="-o pid,uid,args")
    owners = {row[1] for row in top["Processes"] if "remediator" in row[2]}
    assert owners == {str(UID)}, top

    # /healthz shows the Docker backend up: the user reaches the socket through group_add.
    def probed() -> dict[str, Any] | None:
        status, health = running.daemon.request("GET", "/healthz")
        return health if status == 200 and "docker" in health["backends"] else None

    health = _wait(running, probed, timeout=30, what="the docker backend's first probe")
    assert health["backends"]["docker"] == "ok", health


def test_its_own_healthcheck_turns_healthy_and_state_lives_under_var_lib(
    running: Running, built: Built, docker_engine: DockerEngine
) -> None:
    attrs = docker_engine.client.api.inspect_container(CONTAINER)
    assert attrs["Config"]["Healthcheck"]["Test"] == built.image["Config"]["Healthcheck"]["Test"]
    _wait(
        running,
        lambda: docker_engine.health(CONTAINER) == "healthy",
        timeout=60,
        what="the container's HEALTHCHECK to pass",
    )
    exit_code, listing = _exec(running.container, "ls", "-ln", "/var/lib/remediator")
    assert exit_code == 0
    assert any(
        line.split()[-1] == "remediator.db" and line.split()[2] == str(UID)
        for line in listing.splitlines()[1:]
    ), listing
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/var/lib/remediator"]["Type"] == "volume"


def test_the_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert debian_mirror(deb822, tmp_path / "none") == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert debian_mirror(tmp_path / "none", one_line) == "http://old.example/debian"
    assert debian_mirror(tmp_path / "none", tmp_path / "none") == "http://deb.debian.org/debian"
