"""The `docker.restart` kind: its params (read once, by `restart_target`, for the target at
render and for the executor), its static check, and what counts as restarted. Pure.

A rendered name must be a well-formed Docker or Compose name: a template must never be
able to steer the restart somewhere the allowlist did not mean (e.g. `web-1/../db`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from remediator.core.durations import parse_duration, parse_timeout
from remediator.core.kinds.base import ActionKind, Backend, is_static, parse_static_timeout
from remediator.core.render import Template
from remediator.core.timestamps import GO_ZERO_TIME, parse_rfc3339_ns
from remediator.errors import RenderError

_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
_COMPOSE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
# Where a docker kind acts: one container, or every replica of a compose service.
LOCATION = frozenset({"container", "compose_project", "compose_service"})
_PARAMS = LOCATION | {"timeout"}
LOCATION_DOC = {
    "container": "The container's name or id (a template); or give compose_project and "
    "compose_service instead.",
    "compose_project": "The Compose project (`com.docker.compose.project`), with compose_service.",
    "compose_service": "The Compose service: every replica of it, one at a time.",
}


class RestartTarget(NamedTuple):
    """Read params: exactly one of `container` or (`project`, `service`); `stop_timeout`
    in whole seconds (the engine's `t`), None for the container's own. Read for every
    docker.restart job, so a NamedTuple (see judge_records.Verdict)."""

    container: str | None
    project: str | None
    service: str | None
    stop_timeout: int | None = None

    def describe(self) -> str:
        return self.container or f"{self.project}/{self.service}"


def container_location(params: Mapping[str, str]) -> RestartTarget:
    """Where rendered docker params point (their other params are the caller's); ValueError
    says what is wrong."""
    container = params.get("container", "").strip()
    project = params.get("compose_project", "").strip()
    service = params.get("compose_service", "").strip()
    if "container" in params and not container:
        raise ValueError("param container is empty")
    if container and (project or service):
        raise ValueError("give either container or compose_project+compose_service, not both")
    if container:
        if not _DOCKER_NAME.match(container):
            raise ValueError(f"container {container!r} is not a valid Docker container name")
    elif not project and not service:
        raise ValueError("missing param container (or compose_project+compose_service)")
    elif not project or not service:
        missing = "compose_project" if not project else "compose_service"
        raise ValueError(f"param {missing} is missing or empty")
    else:
        for what, value in (("compose_project", project), ("compose_service", service)):
            if not _COMPOSE_NAME.match(value.lower()):
                raise ValueError(f"{what} {value!r} is not a valid Compose name")
    return RestartTarget(container or None, project.lower() or None, service or None)


def check_location(kind: str, params: Mapping[str, Template]) -> None:
    """A docker kind's static check of where it acts, and of a static `timeout`."""
    has_container = "container" in params
    compose = {"compose_service", "compose_project"} & set(params)
    if has_container == bool(compose):
        raise ValueError(f"{kind} needs either container, or compose_project and compose_service")
    if compose and len(compose) != 2:
        raise ValueError(f"{kind} needs both compose_project and compose_service")
    timeout = params.get("timeout")
    if timeout is not None and is_static(timeout):
        parse_static_timeout(timeout.source)


def check_grace(params: Mapping[str, str]) -> None:
    """A rendered stop `timeout` is bounded here (RenderError); the executor takes any grace
    period it is given."""
    if "timeout" in params:
        try:
            parse_timeout(params["timeout"])
        except ValueError as exc:
            raise RenderError(f"param timeout: {exc}") from None


def restart_target(params: Mapping[str, str]) -> RestartTarget:
    """The one reading of rendered docker.restart params; ValueError says what is wrong."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise ValueError(
            f"unknown param(s) {', '.join(unknown)}; "
            f"expected container or compose_project+compose_service, and optionally timeout"
        )
    where = container_location(params)
    if "timeout" not in params:
        return where
    try:
        grace = parse_duration(params["timeout"])
    except ValueError as exc:
        raise ValueError(f"param timeout: {exc}") from None
    # The engine's `t` is whole seconds; rounding up never shortens the grace period. Built
    # field by field: dataclasses.replace cost more than the rest of this per alert.
    seconds = math.ceil(grace.total_seconds())
    return RestartTarget(where.container, where.project, where.service, seconds)


@dataclass(frozen=True, slots=True)
class Seen:
    """One inspection of a restarted container during verification."""

    done: bool
    summary: str
    started_at: datetime | None = None
    started_text: str = ""
    gone: bool = False


def parse_engine_time(text: str) -> datetime | None:
    """An engine timestamp (RFC 3339, up to nanoseconds) as an aware datetime, truncated to µs.

    None for Go's zero time (`0001-01-01T00:00:00Z`, "never started") and for anything unparsable.
    """
    try:
        moment, _ = parse_rfc3339_ns(text)
    except ValueError:
        return None
    return None if moment == GO_ZERO_TIME else moment


class DockerRestart(ActionKind):
    type = "docker.restart"
    backend = Backend.DOCKER
    allowed = _PARAMS
    params_doc = MappingProxyType(
        {
            **LOCATION_DOC,
            "timeout": "The stop grace period before the engine kills it (`10s`); default: "
            "the container's own.",
        }
    )

    def check_static(self, params: Mapping[str, Template]) -> None:
        check_location(self.type, params)

    def target(self, params: Mapping[str, str]) -> str:
        check_grace(params)
        try:
            return restart_target(params).describe()
        except ValueError as exc:
            raise RenderError(f"rendered {exc}") from None

    def verified(self, name: str, attrs: Mapping[str, Any], sent_at: datetime) -> Seen:
        """Restarted: started after the restart request, running, and healthy if it has a
        health check. `attrs`: the container's inspection."""
        state = attrs.get("State") or {}
        status = str(state.get("Status", "unknown"))
        health_state = state.get("Health")
        health = str(health_state.get("Status", "none")) if isinstance(health_state, dict) else None
        started_text = str(state.get("StartedAt", ""))
        started_at = parse_engine_time(started_text)
        fresh = started_at is not None and started_at > sent_at
        summary = f"{name} status={status}"
        if health is not None:
            summary += f" health={health}"
        if not fresh:
            summary += (
                f" started_at={started_text or 'unknown'}"
                f" (not after the restart request at {sent_at.isoformat()})"
            )
        done = fresh and status == "running" and health in (None, "healthy")
        return Seen(done=done, summary=summary, started_at=started_at, started_text=started_text)


DOCKER_RESTART = DockerRestart()
