"""Params of the kubernetes.* actions: validated statically at load and again after render."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from remediator.core.kube import scale_target

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # DNS-1123 label
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")  # DNS-1123 subdomain
_BOOL = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class KubeParams:
    namespace: str
    deployment: str
    replicas: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    override_hpa: bool = False
    to_revision: int = 0

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.deployment}"


def _int(params: Mapping[str, str], key: str, lowest: int) -> int | None:
    if key not in params:
        return None
    raw = params[key].strip()
    if not re.fullmatch(r"\d+", raw) or int(raw) < lowest:
        raise ValueError(f"param {key} must be a whole number >= {lowest}, got {raw!r}")
    return int(raw)


def validate_kube_params(params: Mapping[str, str], *, partial: bool = False) -> KubeParams | None:
    """Check the params given; `partial` (load time) skips the ones still to be rendered."""
    namespace, deployment = params.get("namespace"), params.get("deployment")
    if namespace is not None and (len(namespace) > 63 or not _NAMESPACE.match(namespace)):
        raise ValueError(f"namespace {namespace!r} is not a valid Kubernetes namespace name")
    if deployment is not None and (len(deployment) > 253 or not _NAME.match(deployment)):
        raise ValueError(f"deployment {deployment!r} is not a valid Kubernetes object name")
    replicas = params.get("replicas")
    if replicas is not None:
        scale_target(0, replicas, None, None)  # raises ValueError with the reason
    minimum, maximum = _int(params, "min", 0), _int(params, "max", 0)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"min ({minimum}) is greater than max ({maximum})")
    override = params.get("override_hpa", "false").strip().lower()
    if override not in _BOOL:
        raise ValueError(f"param override_hpa must be true or false, got {override!r}")
    to_revision = _int(params, "to_revision", 1)
    if partial or namespace is None or deployment is None:
        return None
    return KubeParams(
        namespace, deployment, replicas, minimum, maximum, _BOOL[override], to_revision or 0
    )
