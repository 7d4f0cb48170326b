"""The `docker.restart` executor: restarts one container or every replica of a compose service
through the Docker Engine API and verifies each one came back running (and healthy); the
executor for `docker.exec` and `docker.recreate` too, which it hands to their modules.

Its params and what counts as restarted are the kind's (core/kinds/docker.py); this module
does the restart's engine I/O only, and opens no connection itself (actions/docker_engine.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import docker
import docker.errors
import requests.exceptions

from remediator.actions import docker_exec
from remediator.actions.base import ActionRequest, ActionResult
from remediator.actions.blocking import run_blocking
from remediator.actions.docker_engine import DockerEngine, Found
from remediator.actions.docker_failures import (
    Failure,
    api_explanation,
    close_abandoned_sockets,
    short_cause,
    transport_failure,
)
from remediator.actions.docker_recreate import Old, Recreation
from remediator.core.durations import format_duration
from remediator.core.kinds import KINDS
from remediator.core.kinds.docker import DOCKER_RESTART, RestartTarget, Seen, restart_target
from remediator.core.kinds.docker_exec import DOCKER_EXEC, exec_spec
from remediator.core.kinds.docker_recreate import DOCKER_RECREATE, recreate_spec
from remediator.errors import ActionError

T = TypeVar("T")


def _read(request: ActionRequest, reader: Callable[[Mapping[str, str]], T]) -> T:
    """The kind's one reading of the rendered params; a problem is an ActionError naming
    the action type."""
    try:
        return reader(request.params)
    except ValueError as exc:
        raise ActionError(f"{request.type}: {exc}") from exc


class DockerExecutor(DockerEngine):
    """Executor for `docker.restart`, `docker.exec` (actions/docker_exec.py) and
    `docker.recreate` (actions/docker_recreate.py) against one Docker engine
    (actions/docker_engine.py).
    """

    async def execute(self, request: ActionRequest) -> ActionResult:
        kind = KINDS.get(request.type)
        if kind is DOCKER_EXEC:
            return await self._exec(request)
        if kind is DOCKER_RECREATE:
            return await self._recreate(request)
        if kind is not DOCKER_RESTART:
            raise ActionError(f"DockerExecutor cannot run action type {request.type!r}")
        target = _read(request, restart_target)
        client, found = await run_blocking(self._lookup, target)
        sent_at = await self._restart_all(client, found)
        return await self._verify(client, target, found, sent_at, request.verify.within)

    async def _exec(self, request: ActionRequest) -> ActionResult:
        spec = _read(request, exec_spec)
        client, found = await run_blocking(self._lookup, spec.where)
        return await docker_exec.run_all(client, self.url, [(f.id, f.name) for f in found], spec)

    async def _recreate(self, request: ActionRequest) -> ActionResult:
        spec = _read(request, recreate_spec)
        client, found = await run_blocking(self._lookup, spec.where)
        olds = [Old(f.id, f.name, f.stop_timeout) for f in found]
        return await Recreation(client, self._poll_interval).all(olds, spec, request.verify.within)

    # --- worker-thread side -------------------------------------------------------------

    def _restart_one(self, client: docker.DockerClient, found: Found) -> None:
        client.api.restart(found.id, timeout=found.stop_timeout)

    def _inspect(self, client: docker.DockerClient, found: Found) -> dict[str, Any]:
        return cast(dict[str, Any], client.api.inspect_container(found.id))

    # --- event-loop side ----------------------------------------------------------------

    async def _restart_all(self, client: docker.DockerClient, found: Sequence[Found]) -> datetime:
        sent_at = datetime.now(UTC)
        outcomes = await asyncio.gather(
            *(run_blocking(self._restart_one, client, item) for item in found),
            return_exceptions=True,
        )
        restarted: list[str] = []
        errors: list[str] = []
        not_sent: list[tuple[Found, BaseException]] = []
        for item, outcome in zip(found, outcomes, strict=True):
            if outcome is None:
                restarted.append(item.name)
            elif isinstance(outcome, docker.errors.NotFound):
                errors.append(f"container {item.name} not found")
            elif isinstance(outcome, docker.errors.APIError):
                errors.append(f"restarting {item.name} failed: {api_explanation(outcome)}")
            elif isinstance(outcome, Exception) and (failure := transport_failure(outcome)):
                close_abandoned_sockets(outcome)
                if failure is Failure.NOT_SENT:
                    not_sent.append((item, outcome))
                else:
                    # The request may have reached the engine, which finishes a restart even
                    # after the caller went away; verification decides what happened.
                    restarted.append(item.name)
            else:
                raise outcome
        if not_sent:
            await run_blocking(self._forget, client)
            cause = short_cause(not_sent[0][1])
            if len(not_sent) == len(found):
                raise ActionError(
                    f"docker engine unreachable at {self.url}: {cause}", retryable=True
                )
            names = ", ".join(item.name for item, _ in not_sent)
            errors.append(f"docker engine unreachable at {self.url} for {names}: {cause}")
        if errors:
            done = f" (restart sent for {', '.join(restarted)})" if restarted else ""
            raise ActionError("; ".join(errors) + done)
        return sent_at

    async def _observe(
        self, client: docker.DockerClient, found: Found, sent_at: datetime, budget: float
    ) -> Seen:
        try:
            attrs = await asyncio.wait_for(
                run_blocking(self._inspect, client, found), timeout=budget
            )
        except TimeoutError:
            return Seen(done=False, summary=f"{found.name} inspect did not answer in time")
        except docker.errors.NotFound:
            return Seen(done=False, summary=f"{found.name} no longer exists", gone=True)
        except docker.errors.APIError as exc:
            return Seen(done=False, summary=f"{found.name} inspect failed: {api_explanation(exc)}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            close_abandoned_sockets(exc)
            return Seen(done=False, summary=f"{found.name} inspect failed: {short_cause(exc)}")
        return DOCKER_RESTART.verified(found.name, attrs, sent_at)

    async def _verify(
        self,
        client: docker.DockerClient,
        target: RestartTarget,
        found: Sequence[Found],
        sent_at: datetime,
        verify_within: timedelta,
    ) -> ActionResult:
        loop = asyncio.get_running_loop()
        # The window starts when the restart calls return: stopping may legitimately take the
        # whole grace period, which verify_within is not meant to include.
        deadline = loop.time() + max(verify_within.total_seconds(), 0.0)
        facts: dict[str, str] = {"restart_sent_at": sent_at.isoformat()}
        for item in found:
            facts[f"{item.name}.id"] = item.id
            facts[f"{item.name}.stop_timeout"] = f"{item.stop_timeout}s"
        verified: dict[str, Seen] = {}
        while True:
            pending = [item for item in found if item.name not in verified]
            budget = max(deadline - loop.time(), 1.0)
            seen = await asyncio.gather(
                *(self._observe(client, item, sent_at, budget) for item in pending)
            )
            for item, observation in zip(pending, seen, strict=True):
                if observation.done:
                    verified[item.name] = observation
            unverified = [obs for obs in seen if not obs.done]
            if not unverified:
                break
            remaining = deadline - loop.time()
            if remaining <= 0 or any(obs.gone for obs in unverified):
                window = format_duration(verify_within)
                return ActionResult(
                    ok=False,
                    verified=False,
                    detail="; ".join(obs.summary for obs in unverified) + f" after {window}",
                    facts=facts,
                )
            await asyncio.sleep(min(self._poll_interval, remaining))
        for name, observation in verified.items():
            facts[f"{name}.started_at"] = observation.started_text
        started = [obs.started_at for obs in verified.values() if obs.started_at is not None]
        if target.container is not None:
            only = verified[found[0].name]
            detail = f"restarted {found[0].name}; running since {only.started_text}"
        else:
            detail = f"restarted {target.describe()}: " + "; ".join(
                f"{item.name} running since {verified[item.name].started_text}" for item in found
            )
        return ActionResult(
            ok=True, verified=True, detail=detail, started_at=max(started), facts=facts
        )
