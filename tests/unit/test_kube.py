"""kubectl's algorithms as pure functions: revision choice, the undo patch, rollout status,
scale targets and label selectors, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.core.kube import (
    KubeRefusal,
    choose_revision,
    plan_rollback,
    rollout_status,
    scale_target,
    selector_string,
)

UID = "uid-web"


def rs(
    revision: str | None, image: str, *, owner: str = UID, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    notes = dict(annotations or {})
    if revision is not None:
        notes["deployment.kubernetes.io/revision"] = revision
    return {
        "metadata": {
            "name": f"web-{image}",
            "annotations": notes,
            "ownerReferences": [{"kind": "Deployment", "uid": owner, "controller": True}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": f"h{image}"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            }
        },
    }


def deployment(
    image: str, *, paused: bool = False, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "uid": UID,
            "annotations": annotations or {"deployment.kubernetes.io/revision": "3"},
        },
        "spec": {
            "paused": paused,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


HISTORY = [
    rs("1", "v1"),
    rs("3", "v3"),
    rs("2", "v2"),
    rs("9", "other", owner="someone-else"),
    rs(None, "v0"),
    rs("x", "bad"),
]


@pytest.mark.parametrize(
    ("history", "to_revision", "image"),
    [
        (HISTORY, 0, "v2"),  # the second-highest revision among owned ReplicaSets
        (HISTORY, 1, "v1"),
        (HISTORY, 3, "v3"),
        ([rs("5", "v5"), rs("4", "v4")], 0, "v4"),  # order of the list does not matter
        ([rs(None, "v0"), rs("1", "v1")], 0, "v0"),  # a missing annotation is revision 0
    ],
)
def test_choose_revision(history: list[dict[str, Any]], to_revision: int, image: str) -> None:
    chosen = choose_revision(deployment("v3"), history, to_revision)
    assert chosen["spec"]["template"]["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize(
    ("history", "to_revision", "message"),
    [
        ([rs("1", "v1")], 0, 'no rollout history found for deployment "web"'),
        ([rs("1", "v1", owner="x"), rs("2", "v2", owner="x")], 0, "no rollout history found"),
        (HISTORY, 9, "unable to find specified revision 9 in history"),  # 9 is not ours
        ([], 0, "no rollout history found"),
    ],
)
def test_choose_revision_refusals(
    history: list[dict[str, Any]], to_revision: int, message: str
) -> None:
    with pytest.raises(KubeRefusal, match=message):
        choose_revision(deployment("v3"), history, to_revision)


def test_rollback_patch_is_kubectls() -> None:
    current = deployment(
        "v3",
        annotations={
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "team": "payments",
        },
    )
    old = rs(
        "2",
        "v2",
        annotations={
            "deployment.kubernetes.io/revision-history": "1",
            "change-cause": "v2 release",
        },
    )
    plan = plan_rollback(current, [rs("3", "v3"), old])
    assert plan.revision == 2 and not plan.noop
    template_op, annotations_op = plan.patch
    assert template_op["op"] == "replace" and template_op["path"] == "/spec/template"
    assert template_op["value"]["metadata"]["labels"] == {"app": "web"}  # pod-template-hash dropped
    assert template_op["value"]["spec"]["containers"][0]["image"] == "v2"
    assert annotations_op == {
        "op": "replace",
        "path": "/metadata/annotations",
        "value": {
            "deployment.kubernetes.io/revision": "3",  # kept from the Deployment
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",  # kept from the Deployment
            "change-cause": "v2 release",  # taken from the ReplicaSet
        },
    }
    assert (
        old["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "hv2"
    )  # input untouched


def test_rollback_refuses_paused_and_skips_a_matching_template() -> None:
    with pytest.raises(KubeRefusal, match="you cannot rollback a paused deployment"):
        plan_rollback(deployment("v3", paused=True), HISTORY)
    with pytest.raises(KubeRefusal, match="no rollout history found"):  # kubectl's order
        plan_rollback(deployment("v3", paused=True), [rs("3", "v3")])
    plan = plan_rollback(deployment("v2"), [rs("3", "v3"), rs("2", "v2")])
    assert plan.noop and plan.patch == []


def status(**kw: Any) -> dict[str, Any]:
    meta = {"name": "web", "generation": kw.pop("generation", 2)}
    spec = {"replicas": kw.pop("spec_replicas", 3)}
    return {
        "metadata": meta,
        "spec": spec,
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            **kw,
        },
    }


@pytest.mark.parametrize(
    ("deploy", "done", "failed", "message"),
    [
        (status(), True, False, 'deployment "web" successfully rolled out'),
        (status(generation=3), False, False, "spec update to be observed"),
        (status(updatedReplicas=1), False, False, "1 out of 3 new replicas have been updated"),
        (status(replicas=4), False, False, "1 old replicas are pending termination"),
        (status(availableReplicas=2), False, False, "2 of 3 updated replicas are available"),
        (
            status(
                conditions=[
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            ),
            False,
            True,
            'deployment "web" exceeded its progress deadline',
        ),
        (
            status(spec_replicas=0, replicas=0, updatedReplicas=0, availableReplicas=0),
            True,
            False,
            "successfully",
        ),
    ],
)
def test_rollout_status(deploy: dict[str, Any], done: bool, failed: bool, message: str) -> None:
    verdict = rollout_status(deploy)
    assert (verdict.done, verdict.failed) == (done, failed)
    assert message in verdict.message


@pytest.mark.parametrize(
    ("current", "spec", "minimum", "maximum", "target"),
    [
        (3, "5", None, None, 5),
        (3, "+2", None, None, 5),
        (3, "-1", None, None, 2),
        (9, "+2", 1, 10, 10),
        (2, "-5", 1, 10, 1),
        (2, "-5", None, None, 0),
        (3, " 7 ", None, 5, 5),
        (0, "+1", 2, None, 2),
    ],
)
def test_scale_target(
    current: int, spec: str, minimum: int | None, maximum: int | None, target: int
) -> None:
    assert scale_target(current, spec, minimum, maximum) == target


@pytest.mark.parametrize("spec", ["", "five", "1.5", "++1", "+", "2x"])
def test_scale_target_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="replicas must be a number"):
        scale_target(1, spec, None, None)


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        ({"matchLabels": {"app": "web", "tier": "fe"}}, "app=web,tier=fe"),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
            "env in (a,b)",
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "x", "operator": "Exists"},
                    {"key": "y", "operator": "NotIn", "values": ["z"]},
                ],
            },
            "app=web,!canary,x,y notin (z)",
        ),
        ({}, ""),
    ],
)
def test_selector_string(selector: dict[str, Any], text: str) -> None:
    assert selector_string(selector) == text
