"""docker.recreate's pure half: its params, and the create request a replacement gets from
the old container's inspection (what is kept, what the image or the engine supplies)."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.core.kinds.docker import RestartTarget
from remediator.core.kinds.docker_recreate import (
    DOCKER_RECREATE,
    RecreateSpec,
    creation,
    recreate_spec,
    temporary_name,
)
from remediator.core.policy import parse_policies
from remediator.errors import RenderError

OLD_ID = "0123456789abcdef" * 4

IMAGE = {
    "Config": {
        "Env": ["PATH=/usr/bin", "VERSION=1"],
        "Cmd": ["serve"],
        "Labels": {"org.opencontainers.image.version": "1"},
        "WorkingDir": "/app",
    }
}


def inspected(**overrides: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "Id": OLD_ID,
        "Name": "/shop-web-1",
        "Image": "sha256:feed",
        "Config": {
            "Hostname": OLD_ID[:12],
            "Image": "shop/web:1.4",
            "Env": ["PATH=/usr/bin", "VERSION=1", "MODE=primary"],
            "Cmd": ["serve"],
            "WorkingDir": "/srv",
            "Labels": {"org.opencontainers.image.version": "1", "team": "shop"},
            "Healthcheck": {"Test": ["CMD", "true"]},
        },
        "HostConfig": {
            "Binds": ["/host/data:/data:rw"],
            "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
            "NetworkMode": "shop-net",
        },
        "Mounts": [
            {"Type": "bind", "Source": "/host/data", "Destination": "/data", "RW": True},
            {"Type": "volume", "Name": "abc123", "Destination": "/cache", "RW": True},
            {"Type": "volume", "Name": "ro-vol", "Destination": "/seed", "RW": False},
        ],
        "NetworkSettings": {
            "Networks": {
                "shop-net": {
                    "Aliases": ["web", OLD_ID[:12]],
                    "IPAddress": "172.18.0.5",
                    "IPAMConfig": None,
                },
                "metrics-net": {"Aliases": None, "IPAMConfig": {"IPv4Address": "10.9.0.9"}},
            }
        },
    }
    attrs.update(overrides)
    return attrs


def test_the_replacement_keeps_what_the_user_set_and_leaves_the_image_its_defaults() -> None:
    plan = creation(inspected(), IMAGE)
    body = plan.body
    assert body["Image"] == "shop/web:1.4"  # the tag: a pulled tag's image is used
    assert body["Env"] == ["MODE=primary"]
    assert body["Labels"] == {"team": "shop"}
    assert "Cmd" not in body  # the image's own command
    assert body["WorkingDir"] == "/srv"  # set by the user: differs from the image's
    assert body["Healthcheck"] == {"Test": ["CMD", "true"]}
    assert "Hostname" not in body  # the engine's default (the old id) is not carried over
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert body["HostConfig"]["Binds"] == [
        "/host/data:/data:rw",
        "abc123:/cache",
        "ro-vol:/seed:ro",
    ]
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"shop-net": {"Aliases": ["web"]}}}
    assert plan.more_networks == {"metrics-net": {"IPAMConfig": {"IPv4Address": "10.9.0.9"}}}


def test_without_the_old_image_everything_is_copied() -> None:
    body = creation(inspected(), None).body
    assert body["Env"] == ["PATH=/usr/bin", "VERSION=1", "MODE=primary"]
    assert body["Cmd"] == ["serve"]
    assert body["Labels"]["org.opencontainers.image.version"] == "1"


def test_a_hostname_the_user_chose_is_kept_and_no_network_means_none_requested() -> None:
    attrs = inspected(NetworkSettings={"Networks": {"none": {}}})
    attrs["Config"]["Hostname"] = "web.internal"
    attrs["HostConfig"]["NetworkMode"] = "none"
    plan = creation(attrs, IMAGE)
    assert plan.body["Hostname"] == "web.internal"
    assert "NetworkingConfig" not in plan.body and plan.more_networks == {}
    assert plan.body["HostConfig"]["NetworkMode"] == "none"


def test_temporary_name_is_composes() -> None:
    assert temporary_name(OLD_ID, "shop-web-1") == "0123456789ab_shop-web-1"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"container": "web-1"}, RecreateSpec(RestartTarget("web-1", None, None), False)),
        (
            {"container": "web-1", "pull": "True", "timeout": "2s"},
            RecreateSpec(RestartTarget("web-1", None, None, 2), True),
        ),
        (
            {"compose_project": "shop", "compose_service": "web"},
            RecreateSpec(RestartTarget(None, "shop", "web"), False),
        ),
        ({"container": "web-1", "pull": "yes"}, "pull 'yes' is not true or false"),
        ({"container": "web-1", "force": "true"}, "unknown param(s) force"),
    ],
)
def test_recreate_spec(params: dict[str, str], expected: RecreateSpec | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            recreate_spec(params)
    else:
        assert recreate_spec(params) == expected


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("{container: web-1, pull: sometimes}", "pull 'sometimes' is not true or false"),
        ("{pull: 'true'}", "docker.recreate needs either container"),
        ("{container: web-1, timeout: soon}", "invalid duration 'soon'"),
    ],
)
def test_what_the_static_check_refuses(params: str, problem: str) -> None:
    text = (
        "name: recreate-web\n"
        f"action: {{type: docker.recreate, allow_targets: ['web-*'], params: {params}}}\n"
    )
    _, found = parse_policies(text, "p.yaml")
    assert len(found) == 1 and problem in found[0], found


def test_a_rendered_target_is_checked_like_a_restarts() -> None:
    assert DOCKER_RECREATE.target({"container": "web-1", "pull": "false"}) == "web-1"
    with pytest.raises(RenderError, match="is not a valid Docker container name"):
        DOCKER_RECREATE.target({"container": "web-1/../db"})
    with pytest.raises(RenderError, match="param timeout"):
        DOCKER_RECREATE.target({"container": "web-1", "timeout": "100d"})
