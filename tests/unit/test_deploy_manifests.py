"""deploy/kubernetes: valid against the Kubernetes OpenAPI schema, least privilege, and a
config and policies the daemon itself accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from remediator.actions.kubernetes import KUBERNETES_CALLS
from remediator.config import parse_config
from remediator.core.policy import parse_policies

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
DOCS = [
    (path.name, doc)
    for path in sorted(DEPLOY.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]


def kind(name: str) -> dict[str, Any]:
    [found] = [doc for _, doc in DOCS if doc["kind"] == name]
    manifest: dict[str, Any] = found
    return manifest


@pytest.mark.parametrize(
    ("file", "doc"), DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS]
)
def test_manifest_is_valid_for_kubernetes(file: str, doc: dict[str, Any]) -> None:
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema error


def test_the_role_grants_exactly_what_the_executors_call() -> None:
    granted = {
        (group, resource, verb)
        for rule in kind("ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == set(KUBERNETES_CALLS)


def test_bindings_never_reach_protected_namespaces() -> None:
    for _, doc in DOCS:
        if doc["kind"] == "RoleBinding":
            assert doc["metadata"]["namespace"] not in ("kube-system", "kube-public")
        assert doc["kind"] != "ClusterRoleBinding"  # a cluster-wide grant is never shipped


def test_the_pod_runs_locked_down_with_probes() -> None:
    pod = kind("Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "limits" in container["resources"]
    assert kind("Deployment")["spec"]["strategy"]["type"] == "Recreate"  # one SQLite writer


def test_the_shipped_config_and_policies_load(tmp_path: Path) -> None:
    configs = [doc for _, doc in DOCS if doc["kind"] == "ConfigMap"]
    [config_map] = [c for c in configs if c["metadata"]["name"] == "remediator-config"]
    (tmp_path / "secrets").mkdir()
    text = config_map["data"]["remediator.yaml"].replace(
        "/etc/remediator/secrets", str(tmp_path / "secrets")
    )
    for name in ("am-token", "api-token"):
        (tmp_path / "secrets" / name).write_text("s3cret-token\n")
    config = parse_config(text, "remediator.yaml", {})
    assert "kube-system" in config.kubernetes.protected_namespaces
    [policy_map] = [c for c in configs if c["metadata"]["name"] == "remediator-policies"]
    for file, body in policy_map["data"].items():
        policies, problems = parse_policies(body, file)
        assert problems == [] and policies
