"""`docker.recreate` on the engine: each container replaced by a new one from its current
configuration (core/kinds/docker_recreate.py builds the create request), one replica at a
time.

For each container: (pull the tag,) create the replacement under compose's temporary name,
connect its other networks, stop the old one, start the new one and verify it as a restart
is verified (running since the start, healthy if it has a check). Only then is the old one
removed and the new one given its name. If the new one does not start or does not come up
within `verify.within`, it is removed and the old one started again. Every step that fails
says what state it left: which container runs, under which name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from remediator.actions.base import ActionResult
from remediator.actions.blocking import run_blocking
from remediator.core.durations import format_duration
from remediator.core.kinds.docker import DOCKER_RESTART, Seen
from remediator.core.kinds.docker_recreate import RecreateSpec, creation, temporary_name

T = TypeVar("T")
_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


class StepFailedError(Exception):
    """A step of one container's recreation failed; `state` says what it left."""

    def __init__(self, step: str, cause: str, state: str) -> None:
        super().__init__(f"{step} failed: {cause}; {state}")
        self.reason = f"{step} failed: {cause}; {state}"


@dataclass(frozen=True, slots=True)
class Old:
    """A container to replace: its id, name and stop grace period (seconds)."""

    id: str
    name: str
    stop_timeout: int


def _text(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        return f"{str(explanation or exc).strip()} (HTTP {exc.status_code})"
    return str(exc) or type(exc).__name__


# A pull that never ends (a registry that stops answering mid-blob) must not hold the
# action, and its target, forever; docker-py pulls with no timeout of its own.
PULL_TIMEOUT = timedelta(minutes=5)


class Recreation:
    """One action's recreations on one engine client (docker-py calls run in threads)."""

    def __init__(self, client: docker.DockerClient, poll_interval: float) -> None:
        self._api = client.api
        self._poll = poll_interval

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_blocking(fn, *args, **kwargs)

    async def all(self, olds: Sequence[Old], spec: RecreateSpec, within: timedelta) -> ActionResult:
        """One replica at a time, stopping at the first that fails: the others are untouched."""
        done: list[str] = []
        facts: dict[str, str] = {}
        for old in olds:
            try:
                new_id, started = await self.one(old, spec, within)
            except StepFailedError as exc:
                before = f" (recreated before it: {', '.join(done)})" if done else ""
                untouched = [o.name for o in olds[len(done) + 1 :]]
                after = f"; not tried: {', '.join(untouched)}" if untouched else ""
                return ActionResult(
                    ok=False,
                    verified=True,
                    detail=f"recreating {old.name}: {exc.reason}{before}{after}",
                    facts=facts,
                )
            facts[f"{old.name}.old_id"] = old.id
            facts[f"{old.name}.new_id"] = new_id
            done.append(f"{old.name} ({old.id[:12]} -> {new_id[:12]}, running since {started})")
        detail = "recreated " + "; ".join(done)
        return ActionResult(ok=True, verified=True, detail=detail, facts=facts)

    async def one(self, old: Old, spec: RecreateSpec, within: timedelta) -> tuple[str, str]:
        """The new container's id and when it started; StepFailedError otherwise."""
        untouched = f"{old.name} is untouched"
        try:
            attrs = await self._call(self._api.inspect_container, old.id)
            reference = str((attrs.get("Config") or {}).get("Image") or "")
            if spec.pull:
                await self._pull(reference, untouched)
            image = await self._image(reference or str(attrs.get("Image", "")))
            plan = creation(attrs, image)
            created = await self._call(
                self._api.create_container_from_config,
                plan.body,
                temporary_name(old.id, old.name),
            )
        except StepFailedError:
            raise
        except _ENGINE_ERRORS as exc:
            raise StepFailedError("creating the replacement", _text(exc), untouched) from exc
        new_id = str(created["Id"])
        try:
            for network, endpoint in plan.more_networks.items():
                await self._call(
                    self._api.connect_container_to_network,
                    new_id,
                    network,
                    aliases=endpoint.get("Aliases"),
                    links=endpoint.get("Links"),
                    ipv4_address=(endpoint.get("IPAMConfig") or {}).get("IPv4Address"),
                    ipv6_address=(endpoint.get("IPAMConfig") or {}).get("IPv6Address"),
                    driver_opt=endpoint.get("DriverOpts"),
                )
            await self._call(self._api.stop, old.id, timeout=old.stop_timeout)
        except _ENGINE_ERRORS as exc:
            state = await self._discard(new_id, old, restart_old=False)
            raise StepFailedError("stopping the old container", _text(exc), state) from exc
        sent_at = datetime.now(UTC)
        try:
            await self._call(self._api.start, new_id)
        except _ENGINE_ERRORS as exc:
            state = await self._discard(new_id, old, restart_old=True)
            raise StepFailedError("starting the replacement", _text(exc), state) from exc
        seen = await self._verify(new_id, old.name, sent_at, within)
        if not seen.done:
            state = await self._discard(new_id, old, restart_old=True)
            window = format_duration(within)
            raise StepFailedError("the replacement", f"{seen.summary} after {window}", state)
        try:
            await self._call(self._api.remove_container, old.id, v=False, force=True)
        except _ENGINE_ERRORS as exc:
            state = (
                f"the replacement {new_id[:12]} runs as {temporary_name(old.id, old.name)}; "
                f"the old container {old.id[:12]} is stopped"
            )
            raise StepFailedError("removing the old container", _text(exc), state) from exc
        try:
            await self._call(self._api.rename, new_id, old.name)
        except _ENGINE_ERRORS as exc:
            state = (
                f"the replacement {new_id[:12]} runs as {temporary_name(old.id, old.name)}; "
                "the old container is removed"
            )
            raise StepFailedError("renaming the replacement", _text(exc), state) from exc
        return new_id, seen.started_text

    async def _pull(self, reference: str, untouched: str) -> None:
        if not reference or reference.startswith("sha256:"):
            raise StepFailedError(
                "pull", "the container was created from an image id, not a tag", untouched
            )
        repository, tag = parse_repository_tag(reference)
        try:
            async with asyncio.timeout(PULL_TIMEOUT.total_seconds()):
                error = await self._call(_pull, self._api, repository, tag or "latest")
        except TimeoutError:
            why = f"no end of the pull within {format_duration(PULL_TIMEOUT)}"
            raise StepFailedError(f"pulling {reference}", why, untouched) from None
        except _ENGINE_ERRORS as exc:
            raise StepFailedError(f"pulling {reference}", _text(exc), untouched) from exc
        if error is not None:
            raise StepFailedError(f"pulling {reference}", error, untouched)

    async def _image(self, reference: str) -> dict[str, Any] | None:
        """The image's own configuration, None when it cannot be inspected (then every
        setting is copied as the container has it)."""
        try:
            found: dict[str, Any] = await self._call(self._api.inspect_image, reference)
        except docker.errors.NotFound:
            return None
        return found

    async def _verify(self, new_id: str, name: str, sent_at: datetime, within: timedelta) -> Seen:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(within.total_seconds(), 0.0)
        while True:
            status = None
            try:
                attrs = await self._call(self._api.inspect_container, new_id)
            except _ENGINE_ERRORS as exc:
                seen = Seen(done=False, summary=f"{name} inspect failed: {_text(exc)}")
            else:
                seen = DOCKER_RESTART.verified(name, attrs, sent_at)
                status = (attrs.get("State") or {}).get("Status")
            # An exited replacement shows nothing new by waiting longer.
            if seen.done or loop.time() >= deadline or status in ("exited", "dead"):
                return seen
            await asyncio.sleep(min(self._poll, max(deadline - loop.time(), 0.0)))

    async def _discard(self, new_id: str, old: Old, *, restart_old: bool) -> str:
        """Remove the replacement and, if the old one was stopped, start it again; what
        state that left, in words."""
        parts = []
        try:
            await self._call(self._api.remove_container, new_id, v=False, force=True)
            parts.append(f"the replacement {new_id[:12]} was removed")
        except _ENGINE_ERRORS as exc:
            parts.append(f"the replacement {new_id[:12]} could not be removed: {_text(exc)}")
        if not restart_old:
            parts.append(f"{old.name} was not stopped")
            return "; ".join(parts)
        try:
            await self._call(self._api.start, old.id)
            parts.append(f"{old.name} ({old.id[:12]}) was started again")
        except _ENGINE_ERRORS as exc:
            parts.append(f"{old.name} ({old.id[:12]}) could not be started again: {_text(exc)}")
        return "; ".join(parts)


def _pull(api: docker.APIClient, repository: str, tag: str) -> str | None:
    """Pull, reading the engine's progress to its end: the engine answers 200 before it
    fetches anything and reports a failure (`unknown blob`, a full disk) as a line of that
    stream. The error it reports, or None once the pull completed."""
    for line in api.pull(repository, tag=tag, stream=True, decode=True):
        if isinstance(line, dict) and ("error" in line or "errorDetail" in line):
            detail = line.get("errorDetail") or {}
            return str(line.get("error") or detail.get("message") or line)
    return None
