"""The connection to one Docker engine shared by docker.restart, docker.exec and
docker.recreate: its cached clients, the /healthz probe and the lookup of the containers an
action names. It sends the engine reads only; every write is an action's (docker.py,
docker_exec.py, docker_recreate.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import docker
import docker.errors
import requests.exceptions

from remediator.actions.blocking import run_blocking
from remediator.actions.docker_failures import (
    Failure,
    api_explanation,
    close_abandoned_sockets,
    short_cause,
    transport_failure,
)
from remediator.core.kinds.docker import RestartTarget
from remediator.errors import ActionError

# What the engine itself uses when neither `t` nor the container's StopTimeout is set.
DEFAULT_STOP_TIMEOUT = 10
PROBE_TIMEOUT = 2.0

_LABEL_PROJECT = "com.docker.compose.project"
_LABEL_SERVICE = "com.docker.compose.service"
_LABEL_ONEOFF = "com.docker.compose.oneoff"


@dataclass(frozen=True, slots=True)
class Found:
    """A container chosen for restart, with the grace period it will get."""

    id: str
    name: str
    stop_timeout: int


def _found(attrs: Mapping[str, Any], target: RestartTarget) -> Found:
    config = attrs.get("Config") or {}
    own = config.get("StopTimeout")
    if target.stop_timeout is not None:
        stop_timeout = target.stop_timeout
    elif isinstance(own, int) and own >= 0:
        stop_timeout = own
    else:
        stop_timeout = DEFAULT_STOP_TIMEOUT
    return Found(
        id=str(attrs["Id"]), name=str(attrs.get("Name", "")).lstrip("/"), stop_timeout=stop_timeout
    )


class DockerEngine:
    """One Docker engine (`unix://…` or `tcp://…`): the clients, probe and lookup that
    DockerExecutor (actions/docker.py) acts through.

    docker-py blocks, so every call runs in a worker thread; each HTTP call is bounded by
    `api_timeout` (plus the stop grace period for restarts), which bounds those threads too.
    """

    def __init__(self, url: str, *, api_timeout: float = 30.0, poll_interval: float = 0.5) -> None:
        self.url = url
        self._api_timeout = api_timeout
        self._poll_interval = poll_interval
        # A threading lock, not an asyncio one: clients are built and dropped in worker threads,
        # so a cancelled caller can never leave a half-built client unowned.
        self._lock = threading.Lock()
        # Separate so a slow probe never delays an action waiting for its client.
        self._probe_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._probe_client: docker.APIClient | None = None
        self._closed = False

    async def probe(self) -> str | None:
        try:
            answered = await run_blocking(self._ping)
        except Exception as exc:  # noqa: BLE001 - /healthz reports every failure as text
            failure = transport_failure(exc)
            if failure is Failure.NOT_SENT:
                return f"docker engine unreachable at {self.url}: {short_cause(exc)}"
            if failure is Failure.TIMEOUT:
                return f"docker engine at {self.url} did not answer within {PROBE_TIMEOUT:g}s"
            if isinstance(exc, docker.errors.APIError):
                return f"docker engine at {self.url}: {api_explanation(exc)}"
            return f"docker engine at {self.url}: {short_cause(exc)}"
        return None if answered else f"docker engine at {self.url} answered ping unexpectedly"

    async def close(self) -> None:
        """Close the cached clients; later calls fail instead of reconnecting."""
        await run_blocking(self._close)

    # --- worker-thread side -------------------------------------------------------------

    def _connected(self) -> docker.DockerClient:
        with self._lock:
            if self._closed:
                raise ActionError(f"docker executor for {self.url} is closed")
            if self._client is None:
                # version="auto" asks the engine which API it speaks, so this is network I/O.
                self._client = docker.DockerClient(
                    base_url=self.url,
                    version="auto",
                    # requests takes float seconds; the stub's `int` is narrower than the API.
                    timeout=cast(int, self._api_timeout),
                )
            return self._client

    def _forget(self, client: docker.DockerClient) -> None:
        """Drop `client` after a connection failure so the next call reconnects."""
        with self._lock:
            if self._client is client:
                self._client = None
            else:
                return
        client.close()

    def _lookup(self, target: RestartTarget) -> tuple[docker.DockerClient, list[Found]]:
        client: docker.DockerClient | None = None
        try:
            client = self._connected()
            if target.container is not None:
                container = client.containers.get(target.container)
                return client, [_found(container.attrs, target)]
            filters: dict[str, str | list[str] | bool] = {
                "label": [
                    f"{_LABEL_PROJECT}={target.project}",
                    f"{_LABEL_SERVICE}={target.service}",
                    f"{_LABEL_ONEOFF}=False",
                ]
            }
            listed = client.containers.list(all=True, filters=filters, ignore_removed=True)
        except docker.errors.NotFound as exc:
            raise ActionError(f"container {target.describe()} not found") from exc
        except docker.errors.APIError as exc:
            raise ActionError(
                f"docker engine at {self.url} failed looking up {target.describe()}: "
                f"{api_explanation(exc)}"
            ) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._before_restart_error(exc, client) from exc
        if not listed:
            raise ActionError(f"no containers for compose service {target.describe()}")
        return client, sorted((_found(c.attrs, target) for c in listed), key=lambda f: f.name)

    def _before_restart_error(
        self, exc: BaseException, client: docker.DockerClient | None
    ) -> ActionError:
        close_abandoned_sockets(exc)
        failure = transport_failure(exc)
        if failure is None:
            return ActionError(f"docker client for {self.url} failed: {short_cause(exc)}")
        if client is not None:
            self._forget(client)
        # Only reads were sent so far, so a retry cannot restart anything twice.
        if failure is Failure.NOT_SENT:
            return ActionError(
                f"docker engine unreachable at {self.url}: {short_cause(exc)}", retryable=True
            )
        if failure is Failure.TIMEOUT:
            return ActionError(
                f"docker engine at {self.url} did not answer within {self._api_timeout:g}s",
                retryable=True,
            )
        return ActionError(
            f"lost connection to docker engine at {self.url}: {short_cause(exc)}", retryable=True
        )

    def _ping(self) -> bool:
        with self._probe_lock:
            if self._closed:
                raise RuntimeError("docker executor is closed")
            client = self._probe_client
            try:
                if client is None:
                    # A client of its own so the probe gets a short timeout on every request.
                    client = docker.APIClient(
                        base_url=self.url, version="auto", timeout=cast(int, PROBE_TIMEOUT)
                    )
                    self._probe_client = client
                return client.ping()
            except Exception as exc:
                close_abandoned_sockets(exc)
                if client is not None and transport_failure(exc) is not None:
                    self._probe_client = None
                    client.close()
                raise

    def _close(self) -> None:
        with self._lock, self._probe_lock:
            self._closed = True
            clients: list[docker.DockerClient | docker.APIClient | None] = [
                self._client,
                self._probe_client,
            ]
            self._client = self._probe_client = None
        for client in clients:
            if client is not None:
                client.close()
