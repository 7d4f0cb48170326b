"""Every shipped kustomization (the base, components/servicemonitor, each overlay) as the
real `kubectl kustomize` renders it: valid for Kubernetes, in one namespace, granted only
where its policies act, scraped by the ServiceMonitor, and each overlay's essentials."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from remediator.addresses import ENDPOINTS
from remediator.core.policy import parse_policies
from tests.fixtures.kustomize import (
    CLUSTER_SCOPED,
    KUBE,
    OVERLAYS,
    REPO,
    base_with_component,
    config_text,
    load_config,
    render,
    the,
)

ALERTS = REPO / "deploy" / "prometheus" / "remediator-alerts.yml"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no schema in kubernetes-validate
KUSTOMIZATIONS = ("base", "base+servicemonitor", *OVERLAYS)
STATE_DIR = "/var/lib/remediator"


@pytest.fixture(scope="session")
def with_component(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return base_with_component(tmp_path_factory.mktemp("kustomize"))


def rendered(name: str, with_component: Path) -> list[dict[str, Any]]:
    if name == "base":
        return render(KUBE)
    if name == "base+servicemonitor":
        return render(with_component)
    return render(KUBE / name)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_objects_valid_for_kubernetes(name: str, with_component: Path) -> None:
    docs = rendered(name, with_component)
    assert docs
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        _validate(json.dumps(doc, sort_keys=True))


@functools.cache  # the overlays share most objects with the base: each is validated once
def _validate(doc: str) -> None:
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(json.loads(doc), version, strict=True)  # raises if invalid


def test_deploy_kubernetes_is_the_base_and_needs_no_operator() -> None:
    docs = render(KUBE)
    assert docs == render(KUBE / "base")
    assert not [doc for doc in docs if doc["kind"] in OPERATOR_KINDS]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_everything_is_in_the_installations_namespace(name: str, with_component: Path) -> None:
    """The RoleBinding excepted: it lives where remediator acts, and binds this namespace's
    ServiceAccount."""
    docs = rendered(name, with_component)
    namespace = the(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], doc["kind"]
        elif doc["kind"] != "RoleBinding":
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]
    account = the(docs, "ServiceAccount")
    assert account["metadata"]["namespace"] == namespace
    for binding in (doc for doc in docs if doc["kind"] == "RoleBinding"):
        assert binding["metadata"]["namespace"] != namespace  # its own namespace is protected
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
        ]
    pod = the(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_policies_act_only_where_a_binding_grants_it_and_never_at_home(
    name: str, with_component: Path, tmp_path: Path
) -> None:
    docs = rendered(name, with_component)
    bound = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    protected = set(load_config(docs, tmp_path).kubernetes.protected_namespaces)
    assert the(docs, "Namespace")["metadata"]["name"] in protected
    assert not bound & protected
    acting: set[str] = set()
    for file, body in the(docs, "ConfigMap", "remediator-policies")["data"].items():
        policies, problems = parse_policies(body, file)
        assert problems == [] and policies
        for policy in policies:
            for action in (policy.action, *(step.action for step in policy.steps)):
                if action.type.startswith("kubernetes."):
                    acting |= {target.split("/", 1)[0] for target in action.allow_targets}
    assert acting and acting <= bound


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_endpoint_needs_auth_on_the_pod_network(
    name: str, with_component: Path, tmp_path: Path
) -> None:
    config = load_config(rendered(name, with_component), tmp_path)
    assert config.listen.startswith("0.0.0.0:")
    for _, key in ENDPOINTS:
        block = getattr(config.auth, key)
        assert block is not None and not block.allow_unauthenticated, key


def _service_monitor_and_service(docs: list[dict[str, Any]]) -> tuple[Any, Any]:
    monitor = the(docs, "ServiceMonitor")
    assert "namespaceSelector" not in monitor["spec"]  # its own namespace: the Service's
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted
    selected = [
        doc
        for doc in docs
        if doc["kind"] == "Service"
        and doc["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        and wanted.items() <= doc["metadata"].get("labels", {}).items()
    ]
    assert len(selected) == 1, selected
    return monitor, selected[0]


@pytest.mark.parametrize("name", ["base+servicemonitor", "overlays/second-namespace"])
def test_the_service_monitor_scrapes_metrics_on_the_daemons_port(
    name: str, with_component: Path, tmp_path: Path
) -> None:
    docs = rendered(name, with_component)
    monitor, service = _service_monitor_and_service(docs)
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint.get("scheme", "http") == "http"
    port = ports[endpoint["port"]]  # a named port on the Service
    # ... which reaches the container port the daemon listens on, in the pods it selects.
    pod = the(docs, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    [target] = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    listen = load_config(docs, tmp_path).listen
    assert listen.endswith(f":{target['containerPort']}")
    # The Prometheus Operator names the job after the Service: the job the alerts watch.
    assert "jobLabel" not in monitor["spec"]
    jobs = set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))
    assert jobs == {service["metadata"]["name"]}


def test_the_prometheus_rule_carries_the_self_alerts_word_for_word(with_component: Path) -> None:
    rule = the(render(with_component), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_the_second_namespace_is_a_whole_installation_acting_in_staging(tmp_path: Path) -> None:
    docs = render(KUBE / "overlays/second-namespace")
    assert the(docs, "Namespace")["metadata"]["name"] == "remediator-staging"
    assert the(docs, "RoleBinding")["metadata"]["namespace"] == "staging"
    protected = load_config(docs, tmp_path).kubernetes.protected_namespaces
    assert "remediator-staging" in protected and "remediator" not in protected
    base = render(KUBE)
    kinds = sorted(d["kind"] for d in docs if d["kind"] not in OPERATOR_KINDS)
    assert kinds == sorted(d["kind"] for d in base)  # nothing of the base left out
    assert {d["kind"] for d in docs} >= OPERATOR_KINDS


def test_the_sqlite_variant_is_one_pod_with_its_state_on_a_volume(tmp_path: Path) -> None:
    docs = render(KUBE / "overlays/sqlite")
    spec = the(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # the old pod stops before the new starts
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]  # would block drains
    claim = the(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "remediator-state"  # the name the README's upgrade uses
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = spec["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    [container] = pod["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == STATE_DIR and not mount.get("readOnly", False)
    config = load_config(docs, tmp_path)
    assert config.state.startswith("sqlite:///")
    assert Path(config.state.removeprefix("sqlite:///")).parent == Path(STATE_DIR)


def test_overlays_change_the_bases_config_and_policies_only_where_they_mean_to() -> None:
    """The overlays carry whole copies (kustomize cannot patch inside a ConfigMap's YAML
    value): a change to the base's config must reach them too."""
    base = render(KUBE)
    config = yaml.safe_load(config_text(base))
    staging = render(KUBE / "overlays/second-namespace")
    config["kubernetes"]["protected_namespaces"][-1] = "remediator-staging"
    assert yaml.safe_load(config_text(staging)) == config
    policies = the(base, "ConfigMap", "remediator-policies")["data"]
    moved = {f: text.replace('"prod', '"staging') for f, text in policies.items()}
    assert the(staging, "ConfigMap", "remediator-policies")["data"] == moved
    config = yaml.safe_load(config_text(base))
    del config["state_file"]
    config["state"] = f"sqlite:///{STATE_DIR}/remediator.db"
    assert yaml.safe_load(config_text(render(KUBE / "overlays/sqlite"))) == config
