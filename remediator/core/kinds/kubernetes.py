"""The kubernetes.* kinds: scale, restart and rollback of one Deployment. Their params are
read by core/kube_params.validate_kube_params at load, at render and in the executor; what
counts as done is kubectl's `rollout status` rule (core/kube.rollout_status). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

from remediator.core.kinds.base import ActionKind, Backend, Refusal, is_static
from remediator.core.kube import RolloutStatus, rollout_status
from remediator.core.kube_params import validate_kube_params
from remediator.core.render import Template
from remediator.errors import RenderError


class KubeOp(Enum):
    """What the executor does to the Deployment."""

    SCALE = "scale"
    RESTART = "restart"
    ROLLBACK = "rollback"


class KubeAction(ActionKind):
    backend = Backend.KUBERNETES

    def __init__(self, op: KubeOp, docs: Mapping[str, str], required: frozenset[str]) -> None:
        self.op = op
        self.type = f"kubernetes.{op.value}"
        self.params_doc = MappingProxyType({**_WHERE, **docs})
        self.allowed = frozenset(self.params_doc)
        self.required = frozenset({"namespace", "deployment"}) | required

    def check_static(self, params: Mapping[str, Template]) -> None:
        """What needs no alert to render now, so `check` catches it, not the 3 a.m. alert."""
        static = {k: t.source for k, t in params.items() if is_static(t)}
        validate_kube_params(static, partial=True)

    def target(self, params: Mapping[str, str]) -> str:
        try:
            checked = validate_kube_params(params)
        except ValueError as exc:
            raise RenderError(f"rendered {exc}") from None
        assert checked is not None  # noqa: S101  # namespace and deployment are required params
        return checked.target

    def scope(
        self, target: str, allow_targets: tuple[str, ...], protected: frozenset[str]
    ) -> Refusal | None:
        namespace = target.split("/", 1)[0]
        if namespace in protected:
            return Refusal(
                f"namespace {namespace} is protected (kubernetes.protected_namespaces)", target
            )
        return super().scope(target, allow_targets, protected)

    def verified(self, deployment: Mapping[str, Any]) -> RolloutStatus:
        """Done when the rollout is complete (kubectl rollout status), failed when it cannot."""
        return rollout_status(deployment)


_WHERE = {
    "namespace": "The Deployment's namespace (never one of kubernetes.protected_namespaces).",
    "deployment": "The Deployment's name.",
}
KUBE_SCALE = KubeAction(
    KubeOp.SCALE,
    {
        "replicas": "The new count (`5`) or a change (`+2`, `-1`) from the current one.",
        "min": "The count is never set below this.",
        "max": "The count is never set above this.",
        "override_hpa": "true: scale even when a HorizontalPodAutoscaler owns the Deployment "
        "(default false: refused).",
    },
    frozenset({"replicas"}),
)
KUBE_RESTART = KubeAction(KubeOp.RESTART, {}, frozenset())
KUBE_ROLLBACK = KubeAction(
    KubeOp.ROLLBACK,
    {"to_revision": "The revision to go back to; default: the one before the current one."},
    frozenset(),
)
