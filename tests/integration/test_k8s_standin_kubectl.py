"""The real kubectl and the real kubernetes client against the Kubernetes API stand-in: if they
work against it as against a cluster, the stand-in speaks the API, not our guess of it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest
from kubernetes.client.exceptions import ApiException

from tests.fixtures.k8s_api import (
    HASH_LABEL,
    REVISION,
    REVISION_HISTORY,
    KubeAPI,
    kubectl,
    kubectl_command,
    kubectl_env,
)
from tests.fixtures.procs import wait_for

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def ok(api: KubeAPI, *args: str) -> str:
    done = kubectl(api, *args)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def failed(api: KubeAPI, *args: str, timeout: float = 30) -> str:
    done = kubectl(api, *args, timeout=timeout)
    assert done.returncode != 0, f"kubectl {' '.join(args)} succeeded: {done.stdout}"
    return done.stderr


def image(api: KubeAPI, name: str = "web") -> str:
    return str(api.deployment("prod", name)["spec"]["template"]["spec"]["containers"][0]["image"])


def revisions(api: KubeAPI, name: str = "web") -> dict[str, tuple[str, str | None, int]]:
    """revision -> (image, revision-history, spec.replicas) of the Deployment's ReplicaSets."""
    uid = api.deployment("prod", name)["metadata"]["uid"]
    found = {}
    for rs in api.replicasets("prod"):
        if rs["metadata"]["ownerReferences"][0]["uid"] != uid:
            continue
        annotations = rs["metadata"]["annotations"]
        found[annotations[REVISION]] = (
            rs["spec"]["template"]["spec"]["containers"][0]["image"],
            annotations.get(REVISION_HISTORY),
            rs["spec"]["replicas"],
        )
    return found


def patches(api: KubeAPI) -> list[tuple[str, str, Any]]:
    return [(r.path, r.content_type, r.json()) for r in api.requests if r.method == "PATCH"]


# --- kubectl ---------------------------------------------------------------------------------


def test_get_deploy_as_json_and_table(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", replicas=3, image="web:1")
    listed = json.loads(ok(k8s_api, "get", "deploy", "-n", "prod", "-o", "json"))
    [item] = listed["items"]
    assert item["kind"] == "Deployment" and item["metadata"]["name"] == "web"
    assert item["metadata"]["annotations"][REVISION] == "1"
    assert item["spec"]["replicas"] == 3
    assert item["status"]["availableReplicas"] == 3
    assert item["status"]["observedGeneration"] == item["metadata"]["generation"] == 1
    # Human-readable output is the server's Table, for a list and for one object.
    table = ok(k8s_api, "get", "deploy", "-n", "prod").splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "3/3", "3", "3"]
    assert ok(k8s_api, "get", "deployment", "web", "-n", "prod").splitlines()[1].startswith("web")
    assert "web" in ok(k8s_api, "get", "deploy", "--all-namespaces")
    [rs_line] = ok(k8s_api, "get", "rs", "-n", "prod", "-l", "app=web").splitlines()[1:]
    assert rs_line.split()[1:4] == ["3", "3", "3"]
    assert {"/version", "/api", "/apis", "/apis/apps/v1"} <= {r.path for r in k8s_api.requests}


def test_scale_patches_the_scale_subresource(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2)
    assert ok(k8s_api, "scale", "deployment/web", "--replicas=5", "-n", "prod").strip() == (
        "deployment.apps/web scaled"
    )
    deployment = k8s_api.deployment("prod", "web")
    assert deployment["spec"]["replicas"] == 5
    assert deployment["status"]["replicas"] == deployment["status"]["availableReplicas"] == 5
    assert deployment["metadata"]["annotations"][REVISION] == "1"  # scaling is no new revision
    assert patches(k8s_api) == [
        (
            "/apis/apps/v1/namespaces/prod/deployments/web/scale",
            "application/merge-patch+json",
            {"spec": {"replicas": 5}},
        )
    ]
    # With a precondition kubectl reads the Scale and PUTs it back (optimistic concurrency).
    ok(k8s_api, "scale", "deployment/web", "--current-replicas=5", "--replicas=6", "-n", "prod")
    assert k8s_api.deployment("prod", "web")["spec"]["replicas"] == 6
    assert [r.method for r in k8s_api.requests if r.path.endswith("/web/scale")][-2:] == [
        "GET",
        "PUT",
    ]
    stderr = failed(
        k8s_api, "scale", "deploy/web", "--current-replicas=2", "--replicas=3", "-n", "prod"
    )
    assert "Expected replicas to be 2, was 6" in stderr


def test_rollout_restart_is_a_new_revision(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2)
    assert "deployment.apps/web restarted" in ok(
        k8s_api, "rollout", "restart", "deployment/web", "-n", "prod"
    )
    deployment = k8s_api.deployment("prod", "web")
    restarted_at = deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    [(path, content_type, body)] = patches(k8s_api)
    assert path == "/apis/apps/v1/namespaces/prod/deployments/web"
    assert content_type == "application/strategic-merge-patch+json"
    assert body == {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}
    }
    assert deployment["metadata"]["generation"] == 2
    assert deployment["metadata"]["annotations"][REVISION] == "2"
    assert revisions(k8s_api) == {"1": ("web:1", None, 0), "2": ("web:1", None, 2)}
    new_rs = next(rs for rs in k8s_api.replicasets("prod") if rs["spec"]["replicas"])
    assert new_rs["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == restarted_at
    assert new_rs["metadata"]["name"] == f"web-{new_rs['metadata']['labels'][HASH_LABEL]}"


def test_rollout_undo_swaps_the_last_two_revisions(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1")
    k8s_api.set_image("prod", "web", "web:2")
    k8s_api.set_image("prod", "web", "web:3")
    assert ok(k8s_api, "rollout", "undo", "deployment/web", "-n", "prod").strip() == (
        "deployment.apps/web rolled back"
    )
    assert image(k8s_api) == "web:2"
    # The controller re-adopts the web:2 ReplicaSet as revision 4 and remembers it was 2.
    assert revisions(k8s_api) == {
        "1": ("web:1", None, 0),
        "3": ("web:3", None, 0),
        "4": ("web:2", "2", 2),
    }
    assert k8s_api.deployment("prod", "web")["metadata"]["annotations"][REVISION] == "4"
    [(_, content_type, ops)] = patches(k8s_api)
    assert content_type == "application/json-patch+json"
    assert [(op["op"], op["path"]) for op in ops] == [
        ("replace", "/spec/template"),
        ("replace", "/metadata/annotations"),
    ]
    ok(k8s_api, "rollout", "undo", "deployment/web", "-n", "prod")
    assert image(k8s_api) == "web:3"
    assert revisions(k8s_api) == {
        "1": ("web:1", None, 0),
        "4": ("web:2", "2", 0),
        "5": ("web:3", "3", 2),
    }
    history = ok(k8s_api, "rollout", "history", "deployment/web", "-n", "prod")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "4", "5"]


def test_rollout_undo_to_revision(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1", annotations={"team": "payments"})
    k8s_api.set_image("prod", "web", "web:2")
    k8s_api.set_image("prod", "web", "web:3")
    ok(k8s_api, "rollout", "undo", "deployment/web", "-n", "prod", "--to-revision=1")
    assert image(k8s_api) == "web:1"
    assert revisions(k8s_api)["4"] == ("web:1", "1", 2)
    # The annotations come back from the ReplicaSet, which the controller copied them to.
    assert k8s_api.deployment("prod", "web")["metadata"]["annotations"] == {
        "team": "payments",
        REVISION: "4",
    }
    stderr = failed(k8s_api, "rollout", "undo", "deploy/web", "-n", "prod", "--to-revision=9")
    assert "unable to find specified revision 9 in history" in stderr


def test_rollout_undo_refuses_a_paused_deployment(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1")
    k8s_api.set_image("prod", "web", "web:2")
    ok(k8s_api, "rollout", "pause", "deployment/web", "-n", "prod")
    assert k8s_api.deployment("prod", "web")["spec"]["paused"] is True
    stderr = failed(k8s_api, "rollout", "undo", "deployment/web", "-n", "prod")
    assert "you cannot rollback a paused deployment" in stderr
    stderr = failed(k8s_api, "rollout", "restart", "deployment/web", "-n", "prod")
    assert "can't restart paused deployment" in stderr
    # While paused, a template change makes no new ReplicaSet.
    k8s_api.set_image("prod", "web", "web:3")
    assert set(revisions(k8s_api)) == {"1", "2"}
    assert k8s_api.deployment("prod", "web")["status"].get("updatedReplicas", 0) == 0
    ok(k8s_api, "rollout", "resume", "deployment/web", "-n", "prod")
    assert revisions(k8s_api)["3"] == ("web:3", None, 2)


def test_rollout_undo_without_history(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web")
    stderr = failed(k8s_api, "rollout", "undo", "deployment/web", "-n", "prod")
    assert 'no rollout history found for deployment "web"' in stderr
    assert patches(k8s_api) == []


@pytest.mark.parametrize(
    ("mode", "timeout", "code", "expected"),
    [
        ("complete", "5s", 0, 'deployment "web" successfully rolled out'),
        ("stuck", "5s", 1, "timed out waiting for the condition"),
        ("deadline", "5s", 1, 'deployment "web" exceeded its progress deadline'),
        ("unobserved", "2s", 1, "timed out waiting for the condition"),
    ],
)
def test_rollout_status(
    k8s_api: KubeAPI, mode: str, timeout: str, code: int, expected: str
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2)
    k8s_api.set_mode("prod", "web", mode)
    k8s_api.set_image("prod", "web", "web:2")
    done = kubectl(
        k8s_api, "rollout", "status", "deployment/web", "-n", "prod", f"--timeout={timeout}"
    )
    assert done.returncode == code, done.stderr
    assert expected in done.stdout + done.stderr
    if mode == "stuck":
        assert "0 out of 2 new replicas have been updated" in done.stdout
    if mode == "unobserved":
        assert "Waiting for deployment spec update to be observed" in done.stdout


def test_rollout_status_follows_the_watch(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", replicas=2)
    k8s_api.set_mode("prod", "web", "stuck")
    k8s_api.set_image("prod", "web", "web:2")
    argv = kubectl_command(
        k8s_api, "rollout", "status", "deploy/web", "-n", "prod", "--timeout=20s"
    )
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl_env()
    ) as proc:
        try:
            wait_for(
                lambda: any(
                    r.query.get("watch") == "true"
                    and r.query.get("fieldSelector") == "metadata.name=web"
                    for r in k8s_api.requests
                ),
                timeout=15,
                what="kubectl to watch the deployment",
            )
            k8s_api.set_mode("prod", "web", "complete")
            stdout, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert 'Waiting for deployment "web" rollout to finish' in stdout
    assert stdout.rstrip().endswith('deployment "web" successfully rolled out')


def test_injected_failures_read_as_the_real_servers(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web")
    k8s_api.fail_next("GET", r"/deployments/web$", 404)
    stderr = failed(k8s_api, "get", "deploy", "web", "-n", "prod")
    assert stderr.strip() == 'Error from server (NotFound): deployments.apps "web" not found'
    ok(k8s_api, "get", "deploy", "web", "-n", "prod")  # only the next request failed
    k8s_api.fail_next("GET", r"/deployments/web$", 500, message="etcdserver: request timed out")
    stderr = failed(k8s_api, "get", "deploy", "web", "-n", "prod")
    assert stderr.strip() == "Error from server (InternalError): etcdserver: request timed out"
    k8s_api.forbid("patch", "deployments/scale")
    stderr = failed(k8s_api, "scale", "deployment/web", "--replicas=5", "-n", "prod")
    assert stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User '
        '"system:serviceaccount:ops:remediator" cannot patch resource "deployments/scale" '
        'in API group "apps" in the namespace "prod"'
    )
    stderr = failed(k8s_api, "get", "deploy", "nope", "-n", "prod")
    assert stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'
    stderr = failed(
        k8s_api,
        "patch",
        "deploy/web",
        "-n",
        "prod",
        "--type=json",
        "-p",
        '[{"op": "test", "path": "/spec/replicas", "value": 9}]',
    )
    assert stderr.strip() == (
        "The request is invalid: the server rejected our request due to an error in our request"
    )
    stderr = failed(k8s_api, "patch", "deploy/web", "-n", "prod", "-p", '{"spec":{"replicas":-1}}')
    assert stderr.strip() == (
        'The Deployment "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert k8s_api.deployment("prod", "web")["spec"]["replicas"] == 2


# --- the kubernetes client -------------------------------------------------------------------


@pytest.fixture
def api_client(k8s_api: KubeAPI) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(k8s_api.kubeconfig))
    with client:
        yield client


def test_client_scale_patch(k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web", replicas=2)
    scale = apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 4}})
    assert scale.kind == "Scale" and scale.spec.replicas == 4
    assert scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale(
        "web", "prod", {"spec": {"replicas": 3}}, _content_type="application/merge-patch+json"
    )
    assert [content_type for _, content_type, _ in patches(k8s_api)] == [
        "application/strategic-merge-patch+json",  # a dict body, rewritten by rest.py
        "application/merge-patch+json",
    ]
    status = apps.read_namespaced_deployment_status("web", "prod")
    assert status.spec.replicas == status.status.available_replicas == 3
    assert status.status.observed_generation == status.metadata.generation
    # A Scale with a stale resourceVersion is refused, as optimistic concurrency demands.
    scale = apps.read_namespaced_deployment_scale("web", "prod")
    k8s_api.set_image("prod", "web", "web:2")
    scale.spec.replicas = 9
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment_scale("web", "prod", scale)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    assert k8s_api.deployment("prod", "web")["spec"]["replicas"] == 3


def test_client_json_patch_of_the_template(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web", image="web:1")
    template = api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment("web", "prod").spec.template
    )
    template["spec"]["containers"][0]["image"] = "web:2"
    done = apps.patch_namespaced_deployment(
        "web", "prod", [{"op": "replace", "path": "/spec/template", "value": template}]
    )
    assert done.spec.template.spec.containers[0].image == "web:2"
    assert done.metadata.annotations[REVISION] == "2"
    assert patches(k8s_api)[0][1] == "application/json-patch+json"
    with pytest.raises(ApiException) as invalid:
        apps.patch_namespaced_deployment(
            "web", "prod", [{"op": "test", "path": "/spec/replicas", "value": 7}]
        )
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }


def test_client_patch_flavours(k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web", image="web:1", annotations={"team": "payments"})
    env = [{"name": "MODE", "value": "fast"}]
    # Strategic merge: containers merge by name (the image stays), null deletes a key.
    done = apps.patch_namespaced_deployment(
        "web",
        "prod",
        {
            "metadata": {"annotations": {"team": None}},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "env": env}]}}},
        },
    )
    [container] = done.spec.template.spec.containers
    assert (container.image, container.env[0].value) == ("web:1", "fast")
    assert "team" not in done.metadata.annotations
    assert done.metadata.annotations[REVISION] == "2"
    # Merge patch (RFC 7386): the list is replaced whole, so the container loses its image.
    with pytest.raises(ApiException) as invalid:
        apps.patch_namespaced_deployment(
            "web",
            "prod",
            {"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}},
            _content_type="application/merge-patch+json",
        )
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["message"] == (
        'Deployment.apps "web" is invalid: spec.template.spec.containers[0].image: Required value'
    )
    assert image(k8s_api) == "web:1"


def test_client_lists_replicasets_by_label(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web")
    k8s_api.set_image("prod", "web", "web:2")
    k8s_api.add_deployment("prod", "api")
    k8s_api.add_deployment("staging", "web")
    web = apps.list_namespaced_replica_set("prod", label_selector="app=web")
    assert sorted(rs.metadata.annotations[REVISION] for rs in web.items) == ["1", "2"]
    uid = k8s_api.deployment("prod", "web")["metadata"]["uid"]
    assert {rs.metadata.owner_references[0].uid for rs in web.items} == {uid}
    newest = next(rs for rs in web.items if rs.metadata.annotations[REVISION] == "2")
    selector = f"app=web,{HASH_LABEL}={newest.metadata.labels[HASH_LABEL]}"
    [one] = apps.list_namespaced_replica_set("prod", label_selector=selector).items
    assert one.metadata.name == newest.metadata.name
    both = apps.list_namespaced_replica_set("prod", label_selector="app in (web,api)")
    assert len(both.items) == 3
    assert apps.list_namespaced_replica_set("prod", label_selector="app=nope").items == []
    assert apps.read_namespaced_replica_set(one.metadata.name, "prod").spec.replicas == 2


def test_client_errors_are_status_objects(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("x", "prod")
    assert json.loads(missing.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    k8s_api.add_deployment("prod", "web")
    stale = apps.read_namespaced_deployment("web", "prod")
    k8s_api.set_image("prod", "web", "web:2")
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("web", "prod", stale)
    assert conflict.value.status == 409
    current = apps.read_namespaced_deployment("web", "prod")
    current.spec.replicas = 7
    assert apps.replace_namespaced_deployment("web", "prod", current).spec.replicas == 7
    k8s_api.forbid("list", "horizontalpodautoscalers")
    with pytest.raises(ApiException) as forbidden:
        kubernetes.client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler(
            "prod"
        )
    assert json.loads(forbidden.value.body)["message"] == (
        'horizontalpodautoscalers.autoscaling is forbidden: User "system:serviceaccount:ops:'
        'remediator" cannot list resource "horizontalpodautoscalers" in API group "autoscaling" '
        'in the namespace "prod"'
    )


def test_unsupported_patch_type_is_415(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web")
    request = urllib.request.Request(
        f"{k8s_api.url}/apis/apps/v1/namespaces/prod/deployments/web",
        data=b'{"spec": {"replicas": 3}}',
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    with refused.value as response:
        assert response.status == 415
        assert json.loads(response.read())["reason"] == "UnsupportedMediaType"


def test_client_sees_hpas_and_watch_events(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    k8s_api.add_deployment("prod", "web", replicas=3)
    k8s_api.add_hpa("prod", "web", target="web", max_replicas=6)
    [hpa] = (
        kubernetes.client.AutoscalingV2Api(api_client)
        .list_namespaced_horizontal_pod_autoscaler("prod")
        .items
    )
    assert (hpa.spec.scale_target_ref.kind, hpa.spec.scale_target_ref.name) == ("Deployment", "web")
    assert hpa.spec.max_replicas == 6
    v1 = kubernetes.client.AutoscalingV1Api(api_client)
    assert v1.read_namespaced_horizontal_pod_autoscaler("web", "prod").spec.max_replicas == 6
    apps = kubernetes.client.AppsV1Api(api_client)
    since = apps.list_namespaced_deployment("prod").metadata.resource_version
    k8s_api.set_image("prod", "web", "web:2")
    watch = kubernetes.watch.Watch()
    seen = [
        (event["type"], event["object"].metadata.annotations[REVISION])
        for event in watch.stream(
            apps.list_namespaced_deployment, "prod", resource_version=since, timeout_seconds=1
        )
    ]
    assert seen == [("MODIFIED", "2")]


# --- the controller --------------------------------------------------------------------------


def test_revision_history_limit_deletes_the_oldest(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web", image="web:1")
    apps.patch_namespaced_deployment("web", "prod", {"spec": {"revisionHistoryLimit": 2}})
    for n in range(2, 6):
        k8s_api.set_image("prod", "web", f"web:{n}")
    assert revisions(k8s_api) == {
        "3": ("web:3", None, 0),
        "4": ("web:4", None, 0),
        "5": ("web:5", None, 2),
    }


def test_clone_is_an_identical_copy(k8s_api: KubeAPI) -> None:
    k8s_api.add_deployment("prod", "web", image="web:1")
    k8s_api.set_image("prod", "web", "web:2")
    k8s_api.clone("prod", "web", "twin")
    web, twin = k8s_api.deployment("prod", "web"), k8s_api.deployment("prod", "twin")
    assert web["spec"] == twin["spec"]
    assert web["status"]["conditions"][1]["message"].startswith('ReplicaSet "web-')
    assert twin["status"]["conditions"][1]["message"].startswith('ReplicaSet "twin-')
    web["status"]["conditions"][1].pop("message")
    twin["status"]["conditions"][1].pop("message")
    assert web["status"] == twin["status"]
    assert web["metadata"]["annotations"] == twin["metadata"]["annotations"]
    assert web["metadata"]["uid"] != twin["metadata"]["uid"]
    assert revisions(k8s_api, "twin") == revisions(k8s_api, "web")
    twin_rs = [rs["metadata"]["name"] for rs in k8s_api.replicasets("prod")]
    assert sorted(n for n in twin_rs if n.startswith("twin-")) == sorted(
        n.replace("web-", "twin-", 1) for n in twin_rs if n.startswith("web-")
    )


def test_metadata_only_change_keeps_generation_and_reset_empties(
    k8s_api: KubeAPI, api_client: kubernetes.client.ApiClient
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    k8s_api.add_deployment("prod", "web")
    before = k8s_api.deployment("prod", "web")
    apps.patch_namespaced_deployment("web", "prod", {"metadata": {"labels": {"tier": "front"}}})
    after = k8s_api.deployment("prod", "web")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["metadata"]["labels"] == {"app": "web", "tier": "front"}
    k8s_api.reset()
    assert k8s_api.requests == [] and k8s_api.replicasets("prod") == []
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web", "prod")
    assert gone.value.status == 404
