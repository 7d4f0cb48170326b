"""The Kubernetes API client the executor acts through: config loading, one classified call,
its retries, reading a deployment and watching its rollout. It computes no payload and
decides no action: those are actions/kubernetes.py's.

Every API call is retried here, with its payload fixed once per action by the caller: a retry
after a lost response must repeat the same absolute request (a relative `+2` recomputed on
retry would scale twice).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from remediator.actions.base import ActionResult
from remediator.actions.blocking import run_blocking
from remediator.core.durations import format_duration
from remediator.core.kinds.kubernetes import KubeAction
from remediator.core.kube_params import KubeParams
from remediator.errors import ActionError

_RETRY_STATUS = frozenset({409, 429, 500, 502, 503, 504})


class _Transient(Exception):  # noqa: N818  # internal signal for tenacity
    def __init__(self, reason: str, *, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent  # False: the connection was never made, the request never left


def _never_sent(exc: BaseException) -> bool:
    """The call failed while connecting (refused, no route, name not found, connect timeout):
    urllib3 raises these before a byte of the request is written."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return isinstance(
        exc, urllib3.exceptions.ConnectTimeoutError | ConnectionRefusedError | FileNotFoundError
    )


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or b"{}")
        message = body.get("message") if isinstance(body, dict) else None
    except (ValueError, TypeError):
        message = None
    return str(message or exc.reason or f"HTTP {exc.status}")


class KubernetesApi:
    """One cluster's API client, for KubernetesExecutor (actions/kubernetes.py)."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        *,
        api_timeout: float,
        poll_interval: float,
        attempts: int,
        retry_wait: float,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._timeout = api_timeout
        self._poll = poll_interval
        self._attempts = attempts
        self._wait = retry_wait
        self._lock = threading.Lock()
        self._api: kubernetes.client.ApiClient | None = None

    # --- client ---------------------------------------------------------------------------

    def _client(self) -> kubernetes.client.ApiClient:
        with self._lock:
            if self._api is None:
                cfg = kubernetes.client.Configuration()
                try:
                    if self._kubeconfig:
                        kubernetes.config.load_kube_config(
                            config_file=str(Path(self._kubeconfig).expanduser()),
                            context=self._context,
                            client_configuration=cfg,
                        )
                    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                        kubernetes.config.load_incluster_config(client_configuration=cfg)
                    else:
                        kubernetes.config.load_kube_config(
                            context=self._context, client_configuration=cfg
                        )
                except (ConfigException, OSError) as exc:
                    raise ActionError(f"no usable Kubernetes config: {exc}") from None
                self._api = kubernetes.client.ApiClient(cfg)
            return self._api

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call in a worker thread: JSON in, JSON out, errors classified."""
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            message = _status_message(exc)
            if exc.status == 404:
                raise ActionError(f"not found: {what}: {message}") from None
            if exc.status == 403:
                raise ActionError(f"forbidden: {message}") from None
            if exc.status in _RETRY_STATUS:
                raise _Transient(f"{what}: HTTP {exc.status}: {message}") from None
            raise ActionError(
                f"{what} rejected by the API server (HTTP {exc.status}): {message}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(
                f"{what}: Kubernetes API unreachable: {exc}", sent=not _never_sent(exc)
            ) from None
        return json.loads(response.data or b"{}")

    async def _api_call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`_call` with tenacity: conflicts, 5xx and timeouts retried, then `failed`. When no
        attempt's request ever left (each connection refused), nothing can have changed:
        the action before its write (the one write each action makes) never reached its
        target (`reached=False`; _verify, after the write, says otherwise)."""
        sent = False
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._wait, max=5),
                reraise=True,
            ):
                with attempt:
                    try:
                        return await run_blocking(self._call, what, fn, *args, **kwargs)
                    except _Transient as exc:
                        sent = sent or exc.sent
                        raise
        except _Transient as exc:
            raise ActionError(
                f"{exc.reason} (after {self._attempts} attempts)", reached=sent
            ) from None
        raise AssertionError("unreachable: AsyncRetrying returns or raises")  # pragma: no cover

    async def _apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(await run_blocking(self._client))

    async def probe(self) -> str | None:
        try:
            api = await run_blocking(self._client)
            await run_blocking(
                self._call, "GET /version", kubernetes.client.VersionApi(api).get_code
            )
        except (ActionError, _Transient) as exc:
            return str(exc)
        return None

    async def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            await run_blocking(api.close)

    # --- reading and watching a deployment ------------------------------------------------

    async def _deployment(self, apps: kubernetes.client.AppsV1Api, p: KubeParams) -> dict[str, Any]:
        found: dict[str, Any] = await self._api_call(
            f"deployment {p.target}", apps.read_namespaced_deployment, p.deployment, p.namespace
        )
        return found

    async def _verify(
        self,
        kind: KubeAction,
        apps: kubernetes.client.AppsV1Api,
        p: KubeParams,
        within: timedelta,
        did: str,
    ) -> ActionResult:
        """The kind's rule (kubectl rollout status), polled until `within` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within.total_seconds()
        while True:
            try:
                found = await self._deployment(apps, p)
            except ActionError as exc:  # after the write: it may well have reached its target
                raise ActionError(f"{did}; {exc.reason}") from None
            status = kind.verified(found)
            if status.done:
                return ActionResult(ok=True, detail=f"{did}; {status.message}")
            if status.failed:
                return ActionResult(ok=False, verified=False, detail=f"{did}; {status.message}")
            if loop.time() >= deadline:
                return ActionResult(
                    ok=False,
                    verified=False,
                    detail=f"{did}; rollout not complete after {format_duration(within)}: "
                    f"{status.message}",
                )
            await asyncio.sleep(min(self._poll, max(deadline - loop.time(), 0.05)))
