"""docker.recreate against a real private dockerd: the replacement keeps the container's
configuration (name, env, labels, mounts, networks, restart policy, healthcheck) under a new
id; a replacement that does not come up is removed and the old container runs again; every
failure says what state it left."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from remediator.actions.base import ActionRequest
from remediator.actions.docker import DockerExecutor
from remediator.core.verify import VerifyPlan
from tests.fixtures.docker_engine import SLEEP_FOREVER, DockerEngine, healthcheck
from tests.integration.test_docker_executor import compose_labels

pytestmark = pytest.mark.docker


def recreate(within: str = "10s", **params: str) -> ActionRequest:
    seconds = float(within.removesuffix("s"))
    return ActionRequest(
        action_id=1,
        policy="test-policy",
        type="docker.recreate",
        target=params.get("container", ""),
        params=dict(params),
        verify=VerifyPlan(timedelta(seconds=seconds)),
    )


@pytest.fixture
def engine(docker_cleanup: DockerEngine) -> DockerEngine:
    return docker_cleanup


@pytest.fixture
def network(engine: DockerEngine) -> Iterator[str]:
    created = engine.client.networks.create("shop-net", driver="bridge")
    yield "shop-net"
    for container in engine.client.containers.list(all=True):
        if "shop-net" in (container.attrs["NetworkSettings"]["Networks"] or {}):
            container.remove(force=True)
    created.remove()


def run_configured(engine: DockerEngine, name: str, network: str, host_dir: Path) -> str:
    """A container with every setting a recreate must keep."""
    api = engine.client.api
    created = api.create_container(
        engine.image,
        SLEEP_FOREVER,
        name=name,
        environment={"MODE": "primary", "QUOTED": "a b; c"},
        labels={"team": "shop", "com.docker.compose.service": "web"},
        volumes=["/anon"],
        healthcheck=healthcheck("true"),
        stop_timeout=1,
        host_config=api.create_host_config(
            binds={str(host_dir): {"bind": "/data", "mode": "rw"}},
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
            network_mode=network,
        ),
        networking_config=api.create_networking_config(
            # docker-py takes a mapping of network to endpoint; its stub says one endpoint
            {network: api.create_endpoint_config(aliases=["web-alias"])}  # type: ignore[arg-type]
        ),
    )
    api.start(created["Id"])
    return str(created["Id"])


def inspect(engine: DockerEngine, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = engine.client.api.inspect_container(name)
    return attrs


def exec_out(engine: DockerEngine, name: str, *command: str) -> str:
    code, out = engine.client.containers.get(name).exec_run(list(command))
    assert code == 0, out
    assert isinstance(out, bytes)
    return out.decode()


async def test_the_replacement_keeps_the_configuration_under_a_new_id(
    engine: DockerEngine, docker_executor: DockerExecutor, network: str, tmp_path: Path
) -> None:
    (tmp_path / "kept.txt").write_text("bind mount\n")
    old_id = run_configured(engine, "shop-web-1", network, tmp_path)
    engine.wait_healthy("shop-web-1")
    exec_out(engine, "shop-web-1", "sh", "-c", "echo anonymous > /anon/kept.txt")
    before = inspect(engine, "shop-web-1")

    result = await docker_executor.execute(recreate(container="shop-web-1"))

    assert result.ok, result.detail
    after = inspect(engine, "shop-web-1")
    assert after["Id"] != old_id
    assert result.facts == {"shop-web-1.old_id": old_id, "shop-web-1.new_id": after["Id"]}
    assert result.detail.startswith(f"recreated shop-web-1 ({old_id[:12]} -> {after['Id'][:12]}")
    with pytest.raises(docker.errors.NotFound):
        engine.client.api.inspect_container(old_id)
    assert after["State"]["Running"] and after["State"]["Health"]["Status"] == "healthy"
    for key in ("Env", "Labels", "Cmd", "Image", "Healthcheck", "StopTimeout"):
        assert after["Config"][key] == before["Config"][key], key
    assert after["HostConfig"]["RestartPolicy"] == before["HostConfig"]["RestartPolicy"]
    assert after["HostConfig"]["Binds"][0] == before["HostConfig"]["Binds"][0]
    # The same volume (by name) and bind mount, with their data.
    mounts = {m["Destination"]: m.get("Name") or m["Source"] for m in after["Mounts"]}
    assert mounts == {m["Destination"]: m.get("Name") or m["Source"] for m in before["Mounts"]}
    assert exec_out(engine, "shop-web-1", "cat", "/anon/kept.txt") == "anonymous\n"
    assert exec_out(engine, "shop-web-1", "cat", "/data/kept.txt") == "bind mount\n"
    endpoint = after["NetworkSettings"]["Networks"][network]
    assert "web-alias" in endpoint["Aliases"]
    assert old_id[:12] not in endpoint["Aliases"]


async def test_a_replacement_that_never_becomes_healthy_is_removed_and_the_old_one_runs_again(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    # Healthy only once this container was told it is ready: a fresh replacement never is.
    old = engine.run("shop-web-1", healthcheck=healthcheck("test -e /tmp/ready"), stop_timeout=1)
    exec_out(engine, "shop-web-1", "touch", "/tmp/ready")
    engine.wait_healthy("shop-web-1")

    result = await docker_executor.execute(recreate(within="3s", container="shop-web-1"))

    assert not result.ok
    assert result.detail.startswith("recreating shop-web-1: the replacement failed: shop-web-1")
    assert "after 3s; the replacement" in result.detail
    old_id = str(old.id)
    assert f"was removed; shop-web-1 ({old_id[:12]}) was started again" in result.detail
    state = inspect(engine, "shop-web-1")
    assert state["Id"] == old.id and state["State"]["Running"]
    engine.wait_healthy("shop-web-1")
    names = [str(c.name) for c in engine.client.containers.list(all=True)]
    assert names.count("shop-web-1") == 1
    assert not any(name.endswith("_shop-web-1") for name in names)


def _broken_image() -> bytes:
    """An image with nothing to run: every container of it fails to start."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("README")
        data = b"no binaries here\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_a_replacement_that_cannot_start_leaves_the_old_one_running(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.client.images.get(engine.image).tag("remediator-test", "app")
    api = engine.client.api
    created = api.create_container(
        "remediator-test:app",
        SLEEP_FOREVER,
        name="shop-web-1",
        stop_timeout=1,
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(created["Id"])
    # The tag now names an image the replacement cannot run (as after a bad push).
    api.import_image_from_data(_broken_image(), repository="remediator-test", tag="app")
    try:
        result = await docker_executor.execute(recreate(container="shop-web-1"))
    finally:
        engine.client.images.get(engine.image).tag("remediator-test", "app")
    assert not result.ok
    assert result.detail.startswith("recreating shop-web-1: starting the replacement failed: ")
    assert f"shop-web-1 ({created['Id'][:12]}) was started again" in result.detail
    state = inspect(engine, "shop-web-1")
    assert state["Id"] == created["Id"] and state["State"]["Running"]


async def test_every_replica_of_a_compose_service_is_recreated_one_at_a_time(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    olds = {
        n: engine.run(f"shop-web-{n}", labels=compose_labels("shop", "web", n), stop_timeout=1).id
        for n in (1, 2)
    }
    other = engine.run("other-web-1", labels=compose_labels("other", "web", 1), stop_timeout=1)

    result = await docker_executor.execute(recreate(compose_project="shop", compose_service="web"))

    assert result.ok, result.detail
    for n, old_id in olds.items():
        state = inspect(engine, f"shop-web-{n}")
        assert state["Id"] != old_id and state["State"]["Running"]
        assert state["Config"]["Labels"]["com.docker.compose.container-number"] == str(n)
        assert result.facts[f"shop-web-{n}.old_id"] == old_id
    assert inspect(engine, "other-web-1")["Id"] == other.id


async def test_a_tag_that_cannot_be_pulled_leaves_the_container_untouched(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    old = engine.run("shop-web-1", stop_timeout=1)
    result = await docker_executor.execute(recreate(container="shop-web-1", pull="true"))
    assert not result.ok
    assert result.detail.startswith("recreating shop-web-1: pulling remediator-test:latest failed")
    assert result.detail.endswith("; shop-web-1 is untouched")
    state = inspect(engine, "shop-web-1")
    assert state["Id"] == old.id and state["State"]["Running"]
