"""The `docker.recreate` kind: replace each container by a new one made from its current
configuration, like `docker compose up -d --force-recreate`. Its params (those of
docker.restart, plus `pull`), and the pure half of the work: the create request a new
container gets from the old one's inspection. Pure.

Compose recreates in four steps: create the new container under a temporary name
(`<old id[:12]>_<name>`), stop the old one, remove it, rename the new one
(pkg/compose/reconcile.go, planRecreateContainer). The executor keeps compose's temporary
name but starts and verifies the new container before it removes the old one, so a new
container that does not come up leaves the old one to be started again
(actions/docker_recreate.py).

What is copied is what the engine reports as the container's configuration (name, image
reference, env, labels, command, mounts, networks with their aliases, restart policy,
healthcheck, ...), except what the old image supplied: Env entries, labels and settings
equal to the old image's defaults are left for the image to supply, so a pulled tag's new
defaults take effect, as they would for compose, which recreates from the compose file.
Anonymous volumes are mounted again by name (compose's default, without
--renew-anon-volumes): their data stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from remediator.core.kinds.base import ActionKind, Backend, is_static
from remediator.core.kinds.docker import (
    LOCATION,
    LOCATION_DOC,
    RestartTarget,
    check_grace,
    check_location,
    restart_target,
)
from remediator.core.render import Template
from remediator.errors import RenderError

_PARAMS = LOCATION | {"timeout", "pull"}
_BOOLEANS = {"true": True, "false": False}
# Config keys whose value, when it equals the image's, is the image's to supply.
_IMAGE_DEFAULTS = (
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Healthcheck",
    "StopSignal",
    "ExposedPorts",
    "Volumes",
    "OnBuild",
    "Shell",
)
# Set by the engine for this container only; a new container gets its own.
_PER_CONTAINER = ("Hostname", "Domainname", "Image", "MacAddress")


@dataclass(frozen=True, slots=True)
class RecreateSpec:
    where: RestartTarget
    pull: bool


def recreate_spec(params: Mapping[str, str]) -> RecreateSpec:
    """The one reading of rendered docker.recreate params; ValueError says what is wrong."""
    pull = params.get("pull", "false").strip().lower()
    if pull not in _BOOLEANS:
        raise ValueError(f"pull {params['pull']!r} is not true or false")
    where = restart_target({k: v for k, v in params.items() if k != "pull"})
    return RecreateSpec(where, _BOOLEANS[pull])


def temporary_name(old_id: str, name: str) -> str:
    """Compose's name for a replacement until the old container is gone."""
    return f"{old_id[:12]}_{name}"


@dataclass(frozen=True, slots=True)
class Creation:
    """The create request for the replacement: its body (Config with HostConfig and the
    first network's NetworkingConfig), and the other networks to connect it to afterwards
    (an engine before API 1.44 takes one network at create)."""

    body: dict[str, Any]
    more_networks: dict[str, dict[str, Any]]


def creation(attrs: Mapping[str, Any], image: Mapping[str, Any] | None) -> Creation:
    """The replacement of the container inspected as `attrs`; `image`: the inspection of
    the image it was created from (None if it is gone: everything is copied)."""
    config = dict(attrs.get("Config") or {})
    defaults = dict((image or {}).get("Config") or {})
    short_id = str(attrs.get("Id", ""))[:12]
    body: dict[str, Any] = {
        k: v for k, v in config.items() if k not in _PER_CONTAINER and k not in _IMAGE_DEFAULTS
    }
    body["Image"] = config.get("Image") or attrs.get("Image")
    for key in _IMAGE_DEFAULTS:
        if key in config and config[key] != defaults.get(key):
            body[key] = config[key]
    if config.get("Hostname") and config["Hostname"] != short_id:
        body["Hostname"] = config["Hostname"]  # set by the user, not the engine's default
    if config.get("Domainname"):
        body["Domainname"] = config["Domainname"]
    image_env = set(defaults.get("Env") or [])
    body["Env"] = [entry for entry in config.get("Env") or [] if entry not in image_env]
    image_labels = defaults.get("Labels") or {}
    body["Labels"] = {
        k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v
    }
    host = dict(attrs.get("HostConfig") or {})
    host["Binds"] = list(host.get("Binds") or []) + _anonymous_volumes(attrs, host)
    body["HostConfig"] = host
    networks = _endpoints(attrs, short_id)
    mode = str(host.get("NetworkMode") or "")
    first = mode if mode in networks else next(iter(networks), None)
    if first is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {first: networks.pop(first)}}
    return Creation(body, networks)


def _anonymous_volumes(attrs: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    """`name:destination[:ro]` for each volume mounted without a Binds or Mounts entry of
    its own (anonymous or from the image's VOLUME): the replacement mounts the same one."""
    declared = {str(b).split(":")[1] for b in host.get("Binds") or [] if ":" in str(b)}
    declared |= {str(m.get("Target")) for m in host.get("Mounts") or []}
    found = []
    for mount in attrs.get("Mounts") or []:
        if mount.get("Type") != "volume" or mount.get("Destination") in declared:
            continue
        suffix = "" if mount.get("RW", True) else ":ro"
        found.append(f"{mount['Name']}:{mount['Destination']}{suffix}")
    return found


def _endpoints(attrs: Mapping[str, Any], short_id: str) -> dict[str, dict[str, Any]]:
    """Each network's endpoint settings the user chose (aliases, static addresses, links,
    driver options); the engine's own (this container's address, its id as an alias) go."""
    found: dict[str, dict[str, Any]] = {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for name, settings in networks.items():
        if name in ("none", "host"):
            continue
        endpoint = settings or {}
        chosen: dict[str, Any] = {}
        aliases = [a for a in endpoint.get("Aliases") or [] if a != short_id]
        if aliases:
            chosen["Aliases"] = aliases
        for key in ("IPAMConfig", "Links", "DriverOpts"):
            if endpoint.get(key):
                chosen[key] = endpoint[key]
        found[str(name)] = chosen
    return found


class DockerRecreate(ActionKind):
    type = "docker.recreate"
    backend = Backend.DOCKER
    allowed = _PARAMS
    params_doc = MappingProxyType(
        {
            **LOCATION_DOC,
            "timeout": "The stop grace period of the old container (`10s`).",
            "pull": "true: pull the image's tag first, so the new container runs the newest "
            "(default false).",
        }
    )

    def check_static(self, params: Mapping[str, Template]) -> None:
        check_location(self.type, params)
        pull = params.get("pull")
        if pull is not None and is_static(pull) and pull.source.strip().lower() not in _BOOLEANS:
            raise ValueError(f"pull {pull.source!r} is not true or false")

    def target(self, params: Mapping[str, str]) -> str:
        check_grace(params)
        try:
            spec = recreate_spec(params)
        except ValueError as exc:
            raise RenderError(f"rendered {exc}") from None
        return spec.where.describe()


DOCKER_RECREATE = DockerRecreate()
