"""Executors for kubernetes.scale, kubernetes.restart and kubernetes.rollback, through the
official client, doing what kubectl does (PROTOCOLS D) and verifying the rollout by the
kinds' rule (core/kinds/kubernetes.py).

Every API call is retried here, with its payload fixed once per action: a retry after a lost
response must repeat the same absolute request (a relative `+2` recomputed on retry would
scale twice). Only calls in KUBERNETES_CALLS are made; the RBAC Role grants exactly those.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from remediator.actions.base import ActionRequest, ActionResult
from remediator.actions.blocking import run_blocking
from remediator.core.durations import format_duration
from remediator.core.kinds import KINDS
from remediator.core.kinds.kubernetes import KubeAction, KubeOp
from remediator.core.kube import (
    RESTARTED_AT,
    KubeRefusal,
    plan_rollback,
    scale_target,
    selector_string,
)
from remediator.core.kube_params import KubeParams, validate_kube_params
from remediator.errors import ActionError

# (API group, resource, verb) of every request this module makes: deploy/kubernetes's Role
# grants these and nothing else (a test compares the two).
KUBERNETES_CALLS = frozenset(
    {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "replicasets", "list"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
    }
)
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


def _restarted_at(now: datetime) -> str:
    # kubectl writes time.Now().Format(time.RFC3339): seconds, "Z" when UTC.
    text = now.astimezone().isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


class KubernetesExecutor:
    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        protected_namespaces: frozenset[str],
        *,
        api_timeout: float = 10.0,
        poll_interval: float = 1.0,
        attempts: int = 3,
        retry_wait: float = 0.5,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._protected = protected_namespaces
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

    # --- Executor protocol ----------------------------------------------------------------

    async def execute(self, request: ActionRequest) -> ActionResult:
        kind = KINDS.get(request.type)
        if not isinstance(kind, KubeAction):
            raise ActionError(f"KubernetesExecutor cannot run {request.type!r}")
        try:
            params = validate_kube_params(request.params)
        except ValueError as exc:
            raise ActionError(f"{request.type}: {exc}") from None
        if params is None:
            raise ActionError(f"{request.type}: namespace and deployment are required")
        if params.namespace in self._protected:
            raise ActionError(f"namespace {params.namespace} is protected; not touched")
        run = {
            KubeOp.SCALE: self._scale,
            KubeOp.RESTART: self._restart,
            KubeOp.ROLLBACK: self._rollback,
        }[kind.op]
        return await run(kind, params, request.verify.within)

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

    # --- actions --------------------------------------------------------------------------

    async def _deployment(self, apps: kubernetes.client.AppsV1Api, p: KubeParams) -> dict[str, Any]:
        found: dict[str, Any] = await self._api_call(
            f"deployment {p.target}", apps.read_namespaced_deployment, p.deployment, p.namespace
        )
        return found

    async def _hpa_for(self, p: KubeParams) -> str | None:
        auto = kubernetes.client.AutoscalingV2Api(await run_blocking(self._client))
        listed = await self._api_call(
            f"horizontalpodautoscalers in {p.namespace}",
            auto.list_namespaced_horizontal_pod_autoscaler,
            p.namespace,
        )
        for hpa in listed.get("items", []):
            ref = hpa.get("spec", {}).get("scaleTargetRef", {})
            if ref.get("kind") == "Deployment" and ref.get("name") == p.deployment:
                return str(hpa.get("metadata", {}).get("name", "?"))
        return None

    async def _scale(self, kind: KubeAction, p: KubeParams, within: timedelta) -> ActionResult:
        apps = await self._apps()
        await self._deployment(apps, p)
        hpa = await self._hpa_for(p)
        if hpa is not None and not p.override_hpa:
            raise ActionError(
                f"hpa_managed: HorizontalPodAutoscaler {hpa} scales deployment {p.target} and "
                "would undo a manual scale; set override_hpa: true to scale anyway"
            )
        scale = await self._api_call(
            f"deployments/scale {p.target}",
            apps.read_namespaced_deployment_scale,
            p.deployment,
            p.namespace,
        )
        current = int(scale.get("spec", {}).get("replicas", 0))
        assert p.replicas is not None  # noqa: S101  # a required param of kubernetes.scale
        target = scale_target(current, p.replicas, p.minimum, p.maximum)
        detail = f"scaled {p.target} from {current} to {target} replicas"
        if target == current:
            bounds = f"bounds {p.minimum}..{p.maximum}"
            detail = f"{p.target} already at {target} replicas (asked {p.replicas}, {bounds})"
        else:
            await self._api_call(
                f"deployments/scale {p.target}",
                apps.patch_namespaced_deployment_scale,
                p.deployment,
                p.namespace,
                {"spec": {"replicas": target}},
                _content_type="application/merge-patch+json",
            )
        if hpa is not None:
            detail += f"; HorizontalPodAutoscaler {hpa} manages it and may undo this"
        return await self._verify(kind, apps, p, within, detail)

    async def _restart(self, kind: KubeAction, p: KubeParams, within: timedelta) -> ActionResult:
        apps = await self._apps()
        deployment = await self._deployment(apps, p)
        if deployment.get("spec", {}).get("paused"):
            raise ActionError(
                f"deployment {p.target} is paused: can't restart paused deployment "
                "(run rollout resume first)"
            )
        stamp = _restarted_at(datetime.now(UTC))
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await self._api_call(
            f"deployment {p.target}",
            apps.patch_namespaced_deployment,
            p.deployment,
            p.namespace,
            patch,
            _content_type="application/strategic-merge-patch+json",
        )
        return await self._verify(
            kind, apps, p, within, f"restarted {p.target} ({RESTARTED_AT}={stamp})"
        )

    async def _rollback(self, kind: KubeAction, p: KubeParams, within: timedelta) -> ActionResult:
        apps = await self._apps()
        deployment = await self._deployment(apps, p)
        selector = selector_string(deployment.get("spec", {}).get("selector", {}))
        replicasets: list[dict[str, Any]] = []
        token: str | None = None
        while True:  # follow `continue` tokens, as kubectl's list does
            page = await self._api_call(
                f"replicasets in {p.namespace}",
                apps.list_namespaced_replica_set,
                p.namespace,
                label_selector=selector,
                **({"_continue": token} if token else {}),
            )
            replicasets.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue") or None
            if token is None:
                break
        try:
            plan = plan_rollback(deployment, replicasets, p.to_revision)
        except KubeRefusal as exc:
            raise ActionError(f"{p.target}: {exc}") from None
        if plan.noop:
            raise ActionError(
                f"{p.target}: nothing to roll back, the current template already matches "
                f"revision {plan.revision}"
            )
        await self._api_call(
            f"deployment {p.target}",
            apps.patch_namespaced_deployment,
            p.deployment,
            p.namespace,
            plan.patch,
            _content_type="application/json-patch+json",
        )
        return await self._verify(
            kind, apps, p, within, f"rolled back {p.target} to revision {plan.revision}"
        )

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
