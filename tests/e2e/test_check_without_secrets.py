"""`check` and `simulate` in CI, where no secret is set: an unset `${VAR}` is a note naming
it, while `serve` still refuses to start; a `${secret:NAME}` must still be declared; and
`check` warns about an approval nobody can give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.procs import free_port, remediator_cli

REPO = Path(__file__).resolve().parents[2]
UNSET = "REMEDIATOR_TEST_NEVER_SET_TOKEN"
POLICY = """
name: restart-web
match: {matchers: ['alertname="ContainerDown"']}
action: {type: docker.restart, params: {container: "{{ labels.container }}"}, allow_targets: ["web-*"]}
guards: {cooldown: 5m, approval: always}
"""
HOOK = """
name: call-ci
match: {matchers: ['alertname="SiteDown"']}
action:
  type: http.request
  params: {url: "https://ci.example/rollback", headers: {Authorization: "Bearer ${secret:ci_token}"}}
  allow_targets: ["https://ci.example/rollback"]
guards: {cooldown: 5m}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    assert UNSET not in os.environ
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(POLICY)
    (tmp_path / "remediator.yaml").write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f'auth: {{alertmanager: {{bearer_token: "${{{UNSET}}}"}}}}\n'
        f'secrets: {{ci_token: "${{{UNSET}_CI}}"}}\n'
    )
    return tmp_path


def test_check_notes_an_unset_variable_and_passes(folder: Path) -> None:
    done = remediator_cli("check", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert (
        f"note: remediator.yaml: auth.alertmanager.bearer_token: environment variable {UNSET} "
        "is not set (checked without it; serve refuses it)"
    ) in done.stderr
    assert f"secrets.ci_token: environment variable {UNSET}_CI is not set" in done.stderr
    assert "ok: config valid, 1 policies" in done.stdout


def test_serve_still_refuses_an_unset_variable(folder: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "remediator", "serve"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert f"auth.alertmanager.bearer_token: environment variable {UNSET} is not set" in proc.stderr


def test_simulate_runs_without_the_secret(folder: Path) -> None:
    payload = folder / "alert.json"
    payload.write_text(
        json.dumps(
            {
                "alerts": [
                    {
                        "labels": {"alertname": "ContainerDown", "container": "web-1"},
                        "startsAt": "2026-11-22T10:00:00Z",
                    }
                ]
            }
        )
    )
    done = remediator_cli("simulate", str(payload), cwd=folder)
    assert done.returncode == 0, done.stderr
    assert f"environment variable {UNSET} is not set" in done.stderr
    assert "=> would be awaiting_approval" in done.stdout


def test_a_secret_reference_must_still_be_declared(folder: Path) -> None:
    (folder / "policies" / "hook.yaml").write_text(HOOK)
    assert remediator_cli("check", cwd=folder).returncode == 0  # declared, value unset: fine
    (folder / "policies" / "hook.yaml").write_text(HOOK.replace("ci_token", "cd_token"))
    done = remediator_cli("check", cwd=folder)
    assert done.returncode == 1
    assert "${secret:cd_token} is not configured (config key `secrets`)" in done.stderr


def test_check_warns_about_an_approval_nobody_can_give(folder: Path) -> None:
    done = remediator_cli("check", cwd=folder)
    assert done.returncode == 0
    assert (
        "warning: policy restart-web: guards.approval: no approvers (guards.approvers, "
        "slack.approvers) and no API tokens (auth.api.tokens)"
    ) in done.stderr
    config = folder / "remediator.yaml"
    config.write_text(config.read_text() + "slack: {approvers: [U111]}\n")
    done = remediator_cli("check", cwd=folder)
    assert done.returncode == 0
    assert (
        "warning: policy restart-web: guards.approval: nobody can approve (slack.approvers): "
        "Slack users U111 while slack is not configured"
    ) in done.stderr


def test_the_deploy_config_checks_with_no_secret_set() -> None:
    done = remediator_cli("check", "--config", "deploy/remediator.yaml", cwd=REPO)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert {line.split("environment variable ")[1].split()[0] for line in notes} >= {
        "AM_TOKEN",
        "DD_TOKEN",
        "API_TOKEN",
    }


def test_the_kubernetes_config_checks_without_its_secret_files(tmp_path: Path) -> None:
    """What a CI job runs on the ConfigMap's config: the mounted secrets are not there."""
    configmap = yaml.safe_load_all((REPO / "deploy/kubernetes/base/configmap.yaml").read_text())
    [text] = [d["data"]["remediator.yaml"] for d in configmap if "remediator.yaml" in d["data"]]
    (tmp_path / "remediator.yaml").write_text(text)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(POLICY)
    done = remediator_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 4
    assert "note: remediator.yaml: state_file: cannot read /etc/remediator/secrets/state-url" in (
        done.stderr
    )
    proc = subprocess.run(
        [sys.executable, "-m", "remediator", "serve"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "cannot read /etc/remediator/secrets/" in proc.stderr
