"""Executors for kubernetes.scale, kubernetes.restart and kubernetes.rollback, doing what
kubectl does (PROTOCOLS D) and verifying the rollout by the kinds' rule
(core/kinds/kubernetes.py). It sends every request through KubernetesApi's retried call
(actions/kubernetes_api.py), never a call of its own.

Each payload is fixed once per action, before the call that kubernetes_api.py retries: a
retry after a lost response must repeat the same absolute request (a relative `+2`
recomputed on retry would scale twice). Only calls in KUBERNETES_CALLS are made; the RBAC
Role grants exactly those.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client

from remediator.actions.base import ActionRequest, ActionResult
from remediator.actions.blocking import run_blocking
from remediator.actions.kubernetes_api import KubernetesApi
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

# (API group, resource, verb) of every request this executor makes (here and through
# actions/kubernetes_api.py): deploy/kubernetes's Role grants these and nothing else (a test
# compares the two).
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


def _restarted_at(now: datetime) -> str:
    # kubectl writes time.Now().Format(time.RFC3339): seconds, "Z" when UTC.
    text = now.astimezone().isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


class KubernetesExecutor(KubernetesApi):
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
        super().__init__(
            kubeconfig,
            context,
            api_timeout=api_timeout,
            poll_interval=poll_interval,
            attempts=attempts,
            retry_wait=retry_wait,
        )
        self._protected = protected_namespaces

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

    # --- actions --------------------------------------------------------------------------

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
