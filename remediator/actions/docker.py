"""The `docker.restart` executor: restarts one container or every replica of a compose service
through the Docker Engine API and verifies each one came back running (and healthy).

Its params and what counts as restarted are the kind's (core/kinds/docker.py); this module
does the engine I/O only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar, cast

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from remediator.actions import docker_exec
from remediator.actions.base import ActionRequest, ActionResult
from remediator.actions.blocking import run_blocking
from remediator.actions.docker_recreate import Old, Recreation
from remediator.core.durations import format_duration
from remediator.core.kinds import KINDS
from remediator.core.kinds.docker import DOCKER_RESTART, RestartTarget, Seen, restart_target
from remediator.core.kinds.docker_exec import DOCKER_EXEC, exec_spec
from remediator.core.kinds.docker_recreate import DOCKER_RECREATE, recreate_spec
from remediator.errors import ActionError

T = TypeVar("T")

# What the engine itself uses when neither `t` nor the container's StopTimeout is set.
DEFAULT_STOP_TIMEOUT = 10
PROBE_TIMEOUT = 2.0

_LABEL_PROJECT = "com.docker.compose.project"
_LABEL_SERVICE = "com.docker.compose.service"
_LABEL_ONEOFF = "com.docker.compose.oneoff"

# Exceptions raised while opening the connection: the request bytes were never sent.
_NOT_SENT: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    FileNotFoundError,
    PermissionError,
    socket.gaierror,
    urllib3.exceptions.ConnectTimeoutError,  # also NewConnectionError, NameResolutionError
    requests.exceptions.ConnectTimeout,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,
)
_TRANSPORT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class _Found:
    """A container chosen for restart, with the grace period it will get."""

    id: str
    name: str
    stop_timeout: int


class _Failure(Enum):
    NOT_SENT = "not_sent"
    TIMEOUT = "timeout"
    TRANSPORT = "transport"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception linked to it by cause, context, args or urllib3's `reason`."""
    seen: set[int] = set()
    queue = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        queue.extend(item for item in linked if isinstance(item, BaseException))


def _transport_failure(exc: BaseException) -> _Failure | None:
    """How a docker-py call failed below HTTP, or None if it got an answer (or is not I/O)."""
    if isinstance(exc, docker.errors.APIError):
        return None
    chain = list(_chain(exc))
    if any(isinstance(item, _NOT_SENT) for item in chain):
        return _Failure.NOT_SENT
    if any(isinstance(item, _TIMEOUTS) for item in chain):
        return _Failure.TIMEOUT
    if any(isinstance(item, _TRANSPORT) for item in chain):
        return _Failure.TRANSPORT
    return None


def _short_cause(exc: BaseException) -> str:
    """The innermost OS-level reason (`Connection refused`), else the message, kept short."""
    reasons = [
        item.strerror
        for item in _chain(exc)
        if isinstance(item, OSError) and isinstance(item.strerror, str) and item.strerror
    ]
    text = reasons[-1] if reasons else (str(exc) or type(exc).__name__)
    return text if len(text) <= 200 else text[:197] + "..."


def _close_abandoned_sockets(exc: BaseException) -> None:
    # docker-py's UnixHTTPConnection.connect() drops its socket without closing it when the
    # connect fails; close it now so the fd does not linger until GC (with a ResourceWarning).
    for item in _chain(exc):
        tb = item.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            sock = frame.f_locals.get("sock")
            if frame.f_code.co_name == "connect" and isinstance(sock, socket.socket):
                sock.close()
            tb = tb.tb_next


def _explanation(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    text = str(explanation or exc).strip()
    status = exc.status_code
    return f"{text} (HTTP {status})" if status is not None else text


def _found(attrs: Mapping[str, Any], target: RestartTarget) -> _Found:
    config = attrs.get("Config") or {}
    own = config.get("StopTimeout")
    if target.stop_timeout is not None:
        stop_timeout = target.stop_timeout
    elif isinstance(own, int) and own >= 0:
        stop_timeout = own
    else:
        stop_timeout = DEFAULT_STOP_TIMEOUT
    return _Found(
        id=str(attrs["Id"]), name=str(attrs.get("Name", "")).lstrip("/"), stop_timeout=stop_timeout
    )


def _read(request: ActionRequest, reader: Callable[[Mapping[str, str]], T]) -> T:
    """The kind's one reading of the rendered params; a problem is an ActionError naming
    the action type."""
    try:
        return reader(request.params)
    except ValueError as exc:
        raise ActionError(f"{request.type}: {exc}") from exc


class DockerExecutor:
    """Executor for `docker.restart`, `docker.exec` (actions/docker_exec.py) and
    `docker.recreate` (actions/docker_recreate.py) against one Docker engine (`unix://…` or `tcp://…`).

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

    async def probe(self) -> str | None:
        try:
            answered = await run_blocking(self._ping)
        except Exception as exc:  # noqa: BLE001 - /healthz reports every failure as text
            failure = _transport_failure(exc)
            if failure is _Failure.NOT_SENT:
                return f"docker engine unreachable at {self.url}: {_short_cause(exc)}"
            if failure is _Failure.TIMEOUT:
                return f"docker engine at {self.url} did not answer within {PROBE_TIMEOUT:g}s"
            if isinstance(exc, docker.errors.APIError):
                return f"docker engine at {self.url}: {_explanation(exc)}"
            return f"docker engine at {self.url}: {_short_cause(exc)}"
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

    def _lookup(self, target: RestartTarget) -> tuple[docker.DockerClient, list[_Found]]:
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
                f"{_explanation(exc)}"
            ) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._before_restart_error(exc, client) from exc
        if not listed:
            raise ActionError(f"no containers for compose service {target.describe()}")
        return client, sorted((_found(c.attrs, target) for c in listed), key=lambda f: f.name)

    def _before_restart_error(
        self, exc: BaseException, client: docker.DockerClient | None
    ) -> ActionError:
        _close_abandoned_sockets(exc)
        failure = _transport_failure(exc)
        if failure is None:
            return ActionError(f"docker client for {self.url} failed: {_short_cause(exc)}")
        if client is not None:
            self._forget(client)
        # Only reads were sent so far, so a retry cannot restart anything twice.
        if failure is _Failure.NOT_SENT:
            return ActionError(
                f"docker engine unreachable at {self.url}: {_short_cause(exc)}", retryable=True
            )
        if failure is _Failure.TIMEOUT:
            return ActionError(
                f"docker engine at {self.url} did not answer within {self._api_timeout:g}s",
                retryable=True,
            )
        return ActionError(
            f"lost connection to docker engine at {self.url}: {_short_cause(exc)}", retryable=True
        )

    def _restart_one(self, client: docker.DockerClient, found: _Found) -> None:
        client.api.restart(found.id, timeout=found.stop_timeout)

    def _inspect(self, client: docker.DockerClient, found: _Found) -> dict[str, Any]:
        return cast(dict[str, Any], client.api.inspect_container(found.id))

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
                _close_abandoned_sockets(exc)
                if client is not None and _transport_failure(exc) is not None:
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

    # --- event-loop side ----------------------------------------------------------------

    async def _restart_all(self, client: docker.DockerClient, found: Sequence[_Found]) -> datetime:
        sent_at = datetime.now(UTC)
        outcomes = await asyncio.gather(
            *(run_blocking(self._restart_one, client, item) for item in found),
            return_exceptions=True,
        )
        restarted: list[str] = []
        errors: list[str] = []
        not_sent: list[tuple[_Found, BaseException]] = []
        for item, outcome in zip(found, outcomes, strict=True):
            if outcome is None:
                restarted.append(item.name)
            elif isinstance(outcome, docker.errors.NotFound):
                errors.append(f"container {item.name} not found")
            elif isinstance(outcome, docker.errors.APIError):
                errors.append(f"restarting {item.name} failed: {_explanation(outcome)}")
            elif isinstance(outcome, Exception) and (failure := _transport_failure(outcome)):
                _close_abandoned_sockets(outcome)
                if failure is _Failure.NOT_SENT:
                    not_sent.append((item, outcome))
                else:
                    # The request may have reached the engine, which finishes a restart even
                    # after the caller went away; verification decides what happened.
                    restarted.append(item.name)
            else:
                raise outcome
        if not_sent:
            await run_blocking(self._forget, client)
            cause = _short_cause(not_sent[0][1])
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
        self, client: docker.DockerClient, found: _Found, sent_at: datetime, budget: float
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
            return Seen(done=False, summary=f"{found.name} inspect failed: {_explanation(exc)}")
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            _close_abandoned_sockets(exc)
            return Seen(done=False, summary=f"{found.name} inspect failed: {_short_cause(exc)}")
        return DOCKER_RESTART.verified(found.name, attrs, sent_at)

    async def _verify(
        self,
        client: docker.DockerClient,
        target: RestartTarget,
        found: Sequence[_Found],
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
