"""A name checked with `^...$` and re.match passes with a trailing newline (`$` also matches
before a final "\\n"): a policy named "restart\\n" would have broken the /metrics page, and a
rendered namespace or deployment with one would have reached the API. Each check anchors at
the very end; each case here is one that used to pass."""

from __future__ import annotations

import pytest

from remediator.core.kube_params import validate_kube_params
from remediator.core.policy import parse_policies

POLICY = """
name: {name}
match: {{matchers: ['alertname="X"']}}
action: {{type: docker.restart, params: {{container: web-1}}, allow_targets: ["web-*"]}}
"""


@pytest.mark.parametrize("name", ['"restart\\n"', '"restart-web\\n"'])
def test_a_policy_name_with_a_trailing_newline_is_refused(name: str) -> None:
    policies, problems = parse_policies(POLICY.format(name=name), "p.yaml")
    assert policies == []
    assert any("name must match" in problem for problem in map(str, problems)), problems


def test_the_same_policy_with_a_clean_name_loads() -> None:  # the case above can fail
    policies, problems = parse_policies(POLICY.format(name="restart-web"), "p.yaml")
    assert problems == [] and [p.name for p in policies] == ["restart-web"]


@pytest.mark.parametrize(
    "params",
    [
        {"namespace": "prod\n"},
        {"deployment": "checkout\n"},
        {"namespace": "prod", "deployment": "a\n"},
    ],
)
def test_kubernetes_names_with_a_trailing_newline_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not a valid Kubernetes"):
        validate_kube_params(params, partial=True)


def test_kubernetes_names_without_it_pass() -> None:
    validate_kube_params({"namespace": "prod", "deployment": "checkout"}, partial=True)
