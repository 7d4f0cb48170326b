"""The Kubernetes executors through the real `kubernetes` client against the API stand-in;
rollbacks are compared with the real `kubectl rollout undo` on an identical copy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from remediator.actions.base import ActionRequest, ActionResult
from remediator.actions.kubernetes import KUBERNETES_CALLS, KubernetesExecutor
from remediator.core.verify import VerifyPlan
from remediator.errors import ActionError
from tests.fixtures.k8s_api import KubeAPI, kubectl

WITHIN = timedelta(seconds=5)


@pytest.fixture
async def executor(k8s_api: KubeAPI) -> AsyncIterator[KubernetesExecutor]:
    ex = KubernetesExecutor(
        str(k8s_api.kubeconfig),
        None,
        frozenset({"kube-system"}),
        poll_interval=0.05,
        retry_wait=0.01,
    )
    yield ex
    await ex.close()


async def run(
    ex: KubernetesExecutor,
    action: str,
    params: dict[str, str] | None = None,
    within: timedelta = WITHIN,
) -> ActionResult:
    request = ActionRequest(
        1,
        "p",
        f"kubernetes.{action}",
        "",
        {"namespace": "prod", "deployment": "web", **(params or {})},
        VerifyPlan(within),
    )
    return await ex.execute(request)


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def replicas(api: KubeAPI) -> int:
    return int(api.deployment("prod", "web")["spec"]["replicas"])


def image(api: KubeAPI, name: str = "web") -> str:
    return str(api.deployment("prod", name)["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.mark.parametrize(
    ("start", "params", "expected"),
    [
        (3, {"replicas": "5"}, 5),
        (3, {"replicas": "+2"}, 5),
        (3, {"replicas": "-1"}, 2),
        (9, {"replicas": "+2", "max": "10"}, 10),
        (2, {"replicas": "-5", "min": "1"}, 1),
    ],
)
async def test_scale(
    k8s_api: KubeAPI,
    executor: KubernetesExecutor,
    start: int,
    params: dict[str, str],
    expected: int,
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=start)
    result = await run(executor, "scale", params)
    assert result.ok and result.verified, result.detail
    assert replicas(k8s_api) == expected
    assert f"from {start} to {expected} replicas" in result.detail
    patches = [r for r in k8s_api.requests if r.method == "PATCH"]
    assert [(r.path, r.content_type) for r in patches] == [
        ("/apis/apps/v1/namespaces/prod/deployments/web/scale", "application/merge-patch+json")
    ]


async def test_scale_refuses_an_hpa_managed_deployment_unless_overridden(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=3)
    k8s_api.add_hpa("prod", "web-hpa", target="web")
    with pytest.raises(ActionError, match="hpa_managed: HorizontalPodAutoscaler web-hpa") as caught:
        await run(executor, "scale", {"replicas": "+2"})
    assert not caught.value.retryable
    assert replicas(k8s_api) == 3
    result = await run(executor, "scale", {"replicas": "+2", "override_hpa": "true"})
    assert result.ok and replicas(k8s_api) == 5
    assert "web-hpa manages it and may undo this" in result.detail


async def test_restart_is_kubectls_annotation_patch(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web")
    before = len(k8s_api.replicasets("prod"))
    result = await run(executor, "restart")
    assert result.ok, result.detail
    annotations = k8s_api.deployment("prod", "web")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)",
        annotations["kubectl.kubernetes.io/restartedAt"],
    )
    assert len(k8s_api.replicasets("prod")) == before + 1  # a new revision rolled out
    [patch] = [r for r in k8s_api.requests if r.method == "PATCH"]
    assert patch.content_type == "application/strategic-merge-patch+json"


async def test_restart_refuses_a_paused_deployment(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web", paused=True)
    with pytest.raises(ActionError, match="paused"):
        await run(executor, "restart")


def comparable(deploy: dict[str, Any]) -> tuple[Any, Any]:
    template = deploy["spec"]["template"]
    notes = dict(deploy["metadata"].get("annotations", {}))
    return template, notes


@pytest.mark.parametrize("to_revision", [None, "1"])
async def test_rollback_equals_kubectl_rollout_undo(
    k8s_api: KubeAPI, executor: KubernetesExecutor, to_revision: str | None
) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1", annotations={"team": "payments"})
    k8s_api.set_image("prod", "web", "web:2")
    k8s_api.set_image("prod", "web", "web:3")
    k8s_api.clone("prod", "web", "web-kubectl")
    params = {"to_revision": to_revision} if to_revision else {}
    result = await run(executor, "rollback", params)
    assert result.ok, result.detail
    args = ["rollout", "undo", "deployment/web-kubectl", "-n", "prod"]
    done = kubectl(k8s_api, *args, *([f"--to-revision={to_revision}"] if to_revision else []))
    assert done.returncode == 0, done.stderr
    assert image(k8s_api) == ("web:1" if to_revision else "web:2")
    ours, theirs = k8s_api.deployment("prod", "web"), k8s_api.deployment("prod", "web-kubectl")
    assert comparable(ours) == comparable(theirs)
    [patch] = [
        r for r in k8s_api.requests if r.method == "PATCH" and r.path.endswith("/deployments/web")
    ]
    assert patch.content_type == "application/json-patch+json"


@pytest.mark.parametrize(
    ("setup", "params", "message"),
    [
        ("paused", {}, "you cannot rollback a paused deployment"),
        ("single", {}, 'no rollout history found for deployment "web"'),
        ("history", {"to_revision": "7"}, "unable to find specified revision 7 in history"),
    ],
)
async def test_rollback_refusals(
    k8s_api: KubeAPI, executor: KubernetesExecutor, setup: str, params: dict[str, str], message: str
) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1")
    if setup != "single":
        k8s_api.set_image("prod", "web", "web:2")
    if setup == "paused":  # with history, so kubectl's history check passes first
        assert kubectl(k8s_api, "rollout", "pause", "deployment/web", "-n", "prod").returncode == 0
    before = len(k8s_api.requests)
    with pytest.raises(ActionError, match=re.escape(message)):
        await run(executor, "rollback", params)
    assert not [r for r in k8s_api.requests[before:] if r.method == "PATCH"]


@pytest.mark.parametrize(
    ("mode", "ok", "detail"),
    [
        ("complete", True, 'deployment "web" successfully rolled out'),
        ("stuck", False, "rollout not complete after 1s"),
        ("deadline", False, 'deployment "web" exceeded its progress deadline'),
        ("unobserved", False, "spec update to be observed"),
    ],
)
async def test_verification_follows_kubectl_rollout_status(
    k8s_api: KubeAPI, executor: KubernetesExecutor, mode: str, ok: bool, detail: str
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2, mode=mode)
    result = await run(executor, "scale", {"replicas": "4"}, timedelta(seconds=1))
    assert result.ok is ok and result.verified is ok
    assert detail in result.detail


async def test_a_rollout_that_completes_later_verifies(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2, mode="stuck")
    task = asyncio.create_task(run(executor, "restart", None, timedelta(seconds=10)))
    await eventually(
        lambda: any(r.method == "PATCH" for r in k8s_api.requests), "the restart patch"
    )
    k8s_api.set_mode("prod", "web", "complete")
    result = await task
    assert result.ok, result.detail


async def test_api_errors(k8s_api: KubeAPI, executor: KubernetesExecutor) -> None:
    with pytest.raises(ActionError, match="not found: deployment prod/web"):
        await run(executor, "scale", {"replicas": "3"})
    k8s_api.add_deployment("prod", "web", replicas=2)
    k8s_api.forbid("patch", "deployments/scale")
    with pytest.raises(
        ActionError, match=r'forbidden: .*cannot patch resource "deployments/scale"'
    ):
        await run(executor, "scale", {"replicas": "3"})


async def test_conflicts_and_server_errors_are_retried(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2)
    k8s_api.fail_next("PATCH", r"/deployments/web/scale$", 409)
    k8s_api.fail_next("GET", r"/horizontalpodautoscalers$", 503)
    result = await run(executor, "scale", {"replicas": "+1"})
    assert result.ok and replicas(k8s_api) == 3  # +1 once, though the PATCH was sent twice
    k8s_api.fail_next("GET", r"/deployments/web$", 500, times=10)
    with pytest.raises(ActionError, match=r"HTTP 500.*\(after 3 attempts\)"):
        await run(executor, "restart")


async def test_protected_namespaces_are_never_touched(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("kube-system", "coredns")
    request = ActionRequest(
        1,
        "p",
        "kubernetes.restart",
        "",
        {"namespace": "kube-system", "deployment": "coredns"},
        VerifyPlan(WITHIN),
    )
    with pytest.raises(ActionError, match="protected"):
        await executor.execute(request)
    assert k8s_api.requests == []


_CALL = re.compile(
    r"^/apis/(?P<group>apps|autoscaling)/v\d+/namespaces/[^/]+/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?$"
)


async def test_every_request_is_one_the_rbac_role_grants(
    k8s_api: KubeAPI, executor: KubernetesExecutor
) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1")
    k8s_api.set_image("prod", "web", "web:2")
    await run(executor, "scale", {"replicas": "+1"})
    await run(executor, "restart")
    await run(executor, "rollback")
    seen = set()
    for request in k8s_api.requests:
        found = _CALL.match(request.path)
        assert found, f"unexpected request {request.method} {request.path}"
        resource = found["resource"] + (f"/{found['sub']}" if found["sub"] else "")
        verb = {"GET": "get" if found["name"] else "list", "PATCH": "patch"}[request.method]
        seen.add((found["group"], resource, verb))
    assert seen == set(KUBERNETES_CALLS)  # all used, none beyond the Role
