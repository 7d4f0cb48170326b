"""deploy/kubernetes, as `kubectl kustomize deploy/kubernetes` renders it: least privilege,
and a config and policies the daemon itself accepts. (Schema validation of this and every
overlay: test_kustomize.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from remediator.actions.kubernetes import KUBERNETES_CALLS
from remediator.core.policy import parse_policies
from tests.fixtures.kustomize import KUBE, config_text, load_config, render, the

SECRETS = "/etc/remediator/secrets"


def docs() -> list[dict[str, Any]]:
    return render(KUBE)


def kind(name: str) -> dict[str, Any]:
    return the(docs(), name)


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
    for doc in docs():
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


def test_two_replicas_roll_one_at_a_time_on_separate_nodes() -> None:
    spec = kind("Deployment")["spec"]
    assert spec["replicas"] == 2  # PostgreSQL serializes decisions across replicas
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = spec["template"]["metadata"]["labels"]
    [spread] = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"  # never blocks scheduling
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()


def test_a_disruption_budget_keeps_one_replica() -> None:
    deployment = kind("Deployment")
    pdb = kind("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # store down: drains work


def test_the_state_url_comes_from_the_mounted_secret() -> None:
    config = yaml.safe_load(config_text(docs()))
    assert "state" not in config
    assert config["state_file"] == f"{SECRETS}/state-url"
    pod = kind("Deployment")["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == SECRETS]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "remediator-secrets"
    assert "postgresql://" not in config_text(docs()) and "postgres://" not in config_text(docs())
    for path in KUBE.rglob("*.yaml"):  # no credentials in any URL of any manifest or overlay
        assert not re.search(r"postgres(ql)?://[^/\s@]*:[^/\s@]*@", path.read_text()), path


def test_no_persistent_volume_is_shipped() -> None:
    assert all(doc["kind"] != "PersistentVolumeClaim" for doc in docs())
    volumes = kind("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert all("persistentVolumeClaim" not in volume for volume in volumes)


def test_the_shipped_config_and_policies_load(tmp_path: Path) -> None:
    config = load_config(docs(), tmp_path)
    assert config.state == "postgresql://remediator:pw@db:5432/remediator"
    assert "kube-system" in config.kubernetes.protected_namespaces
    policy_map = the(docs(), "ConfigMap", "remediator-policies")
    for file, body in policy_map["data"].items():
        policies, problems = parse_policies(body, file)
        assert problems == [] and policies
