"""kubectl's client-side algorithms as pure functions over API JSON (dicts): which revision
`rollout undo` returns to and the patch it sends, `rollout status`'s verdict, scale targets.

Sources: kubectl pkg/polymorphichelpers/rollback.go and rollout_status.go (PROTOCOLS D).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Deployment annotations `rollout undo` keeps from the Deployment, not from the ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
_REPLICAS = re.compile(r"^\s*([+-]?)(\d+)\s*$")


class KubeRefusal(Exception):  # noqa: N818  # a verdict on the object, not a failure of ours
    """The object does not allow the action; the message is kubectl's (or says why)."""


def revision_of(obj: Mapping[str, Any]) -> int | None:
    """The revision annotation; missing counts as 0, unparsable is skipped (as kubectl)."""
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION)
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        return None


def owned_by(rs: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    uid = deployment.get("metadata", {}).get("uid")
    return any(
        ref.get("controller") is True and ref.get("uid") == uid
        for ref in rs.get("metadata", {}).get("ownerReferences") or []
    )


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(dict(template))
    labels = clean.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return clean


def choose_revision(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]], to_revision: int
) -> Mapping[str, Any]:
    """The ReplicaSet `kubectl rollout undo [--to-revision=N]` rolls back to."""
    name = deployment.get("metadata", {}).get("name", "")
    latest: tuple[int, Mapping[str, Any] | None] = (-1, None)
    previous: tuple[int, Mapping[str, Any] | None] = (-1, None)
    for rs in replicasets:
        if not owned_by(rs, deployment):
            continue
        revision = revision_of(rs)
        if revision is None:
            continue
        if to_revision > 0:
            if revision == to_revision:
                return rs
        elif revision > latest[0]:
            previous, latest = latest, (revision, rs)
        elif revision > previous[0]:
            previous = (revision, rs)
    if to_revision > 0:
        raise KubeRefusal(f"unable to find specified revision {to_revision} in history")
    if previous[1] is None:
        raise KubeRefusal(f'no rollout history found for deployment "{name}"')
    return previous[1]


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    revision: int
    patch: list[dict[str, Any]]  # RFC 6902, sent as application/json-patch+json
    noop: bool  # the current template already matches that revision


def plan_rollback(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]], to_revision: int = 0
) -> RollbackPlan:
    """kubectl's DeploymentRollbacker.Rollback, minus the API calls.

    kubectl (1.32, checked against the real binary) looks for the revision first: a paused
    Deployment without history says "no rollout history", one with history "paused".
    """
    target = choose_revision(deployment, replicasets, to_revision)
    if deployment.get("spec", {}).get("paused"):
        raise KubeRefusal(
            "you cannot rollback a paused deployment; resume it first with "
            "'kubectl rollout resume' and try again"
        )
    revision = revision_of(target) or 0
    template = _without_hash(target.get("spec", {}).get("template", {}))
    if template == _without_hash(deployment.get("spec", {}).get("template", {})):
        return RollbackPlan(revision, [], noop=True)
    current = deployment.get("metadata", {}).get("annotations") or {}
    annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP}
    for key, value in (target.get("metadata", {}).get("annotations") or {}).items():
        if key not in ANNOTATIONS_TO_SKIP:
            annotations[key] = value
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    return RollbackPlan(revision, patch, noop=False)


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    done: bool
    failed: bool
    message: str


def rollout_status(deployment: Mapping[str, Any]) -> RolloutStatus:
    """kubectl's DeploymentStatusViewer.Status: done, failed (deadline exceeded) or waiting."""
    meta, spec = deployment.get("metadata", {}), deployment.get("spec", {})
    status = deployment.get("status", {})
    name = meta.get("name", "")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutStatus(False, False, "Waiting for deployment spec update to be observed...")
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return RolloutStatus(False, True, f'deployment "{name}" exceeded its progress deadline')
    replicas = spec.get("replicas")
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if replicas is not None and updated < replicas:
        return RolloutStatus(
            False, False, f"{updated} out of {replicas} new replicas have been updated..."
        )
    if total > updated:
        return RolloutStatus(
            False, False, f"{total - updated} old replicas are pending termination..."
        )
    if available < updated:
        return RolloutStatus(
            False, False, f"{available} of {updated} updated replicas are available..."
        )
    return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')


def scale_target(current: int, spec: str, minimum: int | None, maximum: int | None) -> int:
    """`5` is absolute, `+2`/`-1` relative to `current`; the result is clamped to [min, max]
    and never below 0."""
    found = _REPLICAS.match(spec)
    if found is None:
        raise ValueError(f"replicas must be a number such as 5, +2 or -1, got {spec!r}")
    sign, amount = found[1], int(found[2])
    wanted = current + amount if sign == "+" else current - amount if sign == "-" else amount
    if minimum is not None:
        wanted = max(wanted, minimum)
    if maximum is not None:
        wanted = min(wanted, maximum)
    return max(wanted, 0)


def selector_string(selector: Mapping[str, Any]) -> str:
    """A LabelSelector as the `labelSelector` query string the API accepts."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
