"""The `remediator` command as an operator runs it: check, simulate, approvals, --version."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from remediator import __version__
from remediator.store.postgres import PostgresStore, SchemaMissingError
from tests.conftest import CORPUS
from tests.fixtures.daemon import API_TOKEN, DaemonFactory
from tests.fixtures.datadog import SAMPLE, render
from tests.fixtures.postgres import Postgres
from tests.fixtures.procs import free_port, remediator_cli, require_binary

REPO = Path(__file__).resolve().parents[2]
UNHEALTHY_WEB_1 = {
    "alerts": [
        {
            "labels": {"alertname": "ContainerUnhealthy", "name": "web-1", "severity": "warning"},
            "startsAt": "2026-11-22T10:00:00Z",
        }
    ]
}


def cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return remediator_cli(*args, cwd=cwd, env=env)


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"remediator {__version__}"


def test_check_passes_the_shipped_examples_and_deploy_config() -> None:
    done = cli("check")
    assert done.returncode == 0, done.stderr
    shipped = len(list((REPO / "policies").glob("*.yaml")))  # one policy per file
    assert f"{shipped} policies" in done.stdout
    done = cli(
        "check",
        "--config",
        "deploy/remediator.yaml",
        env={"AM_TOKEN": "t0ken", "API_TOKEN": "t0ken2", "DD_TOKEN": "t0ken3"},
    )
    assert done.returncode == 0, done.stderr


def test_the_policies_that_need_slack_or_secrets_check_once_those_are_configured(
    tmp_path: Path,
) -> None:
    folders = [REPO / "policies" / "slack", REPO / "policies" / "hooks"]
    listed = ", ".join(f"'{f}'" for f in [REPO / "policies", *folders])
    base = f"policies: [{listed}]\n"
    (tmp_path / "bare.yaml").write_text(base)
    done = cli("check", "--config", "bare.yaml", cwd=tmp_path)
    assert done.returncode == 1  # what `make run`'s default would say, were they in policies/
    assert "${secret:ci_token} is not configured (config key `secrets`)" in done.stderr
    # Everything their folders' READMEs ask for: Slack, and each secret, from a file.
    secrets = {}
    for name in ("ci_token", "jira_basic_auth", "statuspage_api_key", "launchdarkly_token"):
        (tmp_path / name).write_text("s3cret-value\n")
        secrets[f"{name}_file"] = str(tmp_path / name)
    slack = {"bot_token": "xoxb-1", "signing_secret": "abc", "channel": "C0123ABC"}
    config = tmp_path / "full.yaml"
    config.write_text(base + yaml.safe_dump({"secrets": secrets, "slack": slack}))
    done = cli("check", "--config", "full.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(list(f.glob("*.yaml"))) for f in [REPO / "policies", *folders])
    assert f"{count} policies" in done.stdout
    for folder in folders:
        assert (folder / "README.md").is_file()


def test_check_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text(
        "name: restart-web\naction: {type: docker.restart, params: {container: '{{ lables.c }}'}, allow_targets: ['*']}\n"
        "---\nname: Bad\naction: {type: docker.restart, params: {container: x}}\n"
    )
    done = cli("check", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(
        "policies/bad.yaml: policy restart-web: action.params: param 'container': template names lables"
    )
    assert any(line.startswith("policies/bad.yaml: policy Bad: name: ") for line in lines)
    (tmp_path / "remediator.yaml").write_text("listn: 1\n")
    done = cli("check", cwd=tmp_path)
    assert (
        done.returncode == 1
        and "remediator.yaml: listn: Extra inputs are not permitted" in done.stderr
    )


def test_simulate_has_no_side_effects(tmp_path: Path) -> None:
    payload = tmp_path / "alert.json"
    payload.write_text(
        json.dumps(
            {
                "alerts": [
                    {
                        "labels": {
                            "alertname": "ContainerUnhealthy",
                            "name": "web-1",
                            "severity": "warning",
                        },
                        "startsAt": "2026-11-22T10:00:00Z",
                    },
                    {
                        "labels": {
                            "alertname": "ContainerUnhealthy",
                            "name": "db-1",
                            "severity": "warning",
                        },
                        "startsAt": "2026-11-22T10:00:00Z",
                    },
                    {"labels": {"alertname": "Unrelated"}, "startsAt": "2026-11-22T10:00:00Z"},
                ]
            }
        )
    )
    (tmp_path / "remediator.yaml").write_text(f"policies: ['{REPO / 'policies'}']\n")
    done = cli("simulate", str(payload), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "policy restart-unhealthy-container: docker.restart target=web-1" in done.stdout
    assert "=> would execute: all guards passed" in done.stdout
    assert "STOP out_of_scope" in done.stdout and "no policy matches" in done.stdout
    report = json.loads(cli("simulate", str(payload), "--json", cwd=tmp_path).stdout)
    assert [len(a["policies"]) for a in report] == [1, 1, 0]
    first = report[0]["policies"][0]
    assert first["outcome"] == "executed" and first["target"] == "web-1"
    assert {g["guard"] for g in first["guards"]} >= {
        "scope",
        "dedup",
        "cooldown",
        "rate_limit",
        "global_rate",
        "approval",
    }
    assert report[1]["policies"][0]["outcome"] == "out_of_scope"
    assert not (tmp_path / "remediator.db").exists()  # no state file created


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_simulate_reads_real_state_without_changing_it(
    daemon_factory: DaemonFactory, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    state = {}
    if backend == "postgresql":
        state["state"] = request.getfixturevalue("postgres").database()
    daemon = daemon_factory(
        (REPO / "policies" / "restart-unhealthy-container.yaml").read_text(), dry_run=True, **state
    )
    daemon.start()
    assert daemon.webhook(UNHEALTHY_WEB_1)[0] == 200
    payload = tmp_path / "again.json"
    payload.write_text(json.dumps(UNHEALTHY_WEB_1))
    done = cli("simulate", str(payload), "--config", "remediator.yaml", cwd=daemon.folder)
    assert done.returncode == 0, done.stderr
    assert "would be deduplicated" in done.stdout  # it read the store's claim
    assert [d["outcome"] for d in daemon.decisions()] == ["dry_run"]  # simulate wrote nothing


def test_simulate_never_creates_a_postgresql_schema(postgres: Postgres, tmp_path: Path) -> None:
    payload = tmp_path / "alert.json"
    payload.write_text(json.dumps(UNHEALTHY_WEB_1))
    # A database remediator never used: simulated against empty state, and left empty.
    empty = postgres.database()
    (tmp_path / "remediator.yaml").write_text(
        f"state: '{empty}'\npolicies: ['{REPO / 'policies'}']\n"
    )
    done = cli("simulate", str(payload), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "=> would execute: all guards passed" in done.stdout
    with pytest.raises(SchemaMissingError):
        asyncio.run(PostgresStore(empty, migrate=False).open())


def test_simulate_a_datadog_notification_from_the_shipped_template(tmp_path: Path) -> None:
    payload = tmp_path / "datadog.json"
    payload.write_bytes(
        render(
            {
                **SAMPLE,
                "EVENT_TITLE": "[Triggered on {container_name:web-1}] Container unhealthy",
                "ALERT_TITLE": "Container unhealthy",
                "TAGS": "container_name:web-1,env:prod",
            }
        )
    )
    (tmp_path / "remediator.yaml").write_text(f"policies: ['{REPO / 'policies'}']\n")
    done = cli("simulate", "--source", "datadog", str(payload), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "alert 1/1: Container unhealthy firing" in done.stdout
    assert "policy restart-unhealthy-container-datadog: docker.restart target=web-1" in done.stdout
    assert "=> would execute: all guards passed" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"text": "no transition"}')
    done = cli("simulate", "--source", "datadog", str(bad), cwd=tmp_path)
    assert done.returncode == 1 and "lacks transition" in done.stderr


def test_simulate_rejects_a_bad_payload(tmp_path: Path) -> None:
    payload = tmp_path / "bad.json"
    payload.write_text("{nope")
    done = cli("simulate", str(payload), cwd=tmp_path)
    assert done.returncode == 1 and "malformed Alertmanager webhook body" in done.stderr
    done = cli(
        "simulate",
        str(CORPUS / "alertmanager" / "02-am0321-new-alerts-added-4-alerts.json"),
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.count("no policy matches") == 4


def test_approvals_commands_against_a_running_daemon(daemon_factory: DaemonFactory) -> None:
    shipped = (REPO / "policies" / "restart-unhealthy-container.yaml").read_text()
    rule = """approval: {when: 'labels.get("env") == "prod"'}"""
    assert rule in shipped
    policy = shipped.replace(rule, "approval: always\n  dry_run: true")
    daemon = daemon_factory(policy)
    daemon.start()
    body = {
        "alerts": [
            {
                "labels": {
                    "alertname": "ContainerUnhealthy",
                    "name": "web-1",
                    "severity": "warning",
                },
                "startsAt": "2026-11-22T10:00:00Z",
            }
        ]
    }
    approval_id = daemon.webhook(body)[1]["decisions"][0]["approval_id"]
    listed = json.loads(cli("approvals", "list", "--url", daemon.url).stdout)
    assert [a["id"] for a in listed["approvals"]] == [approval_id]
    denied = cli("approvals", "approve", approval_id, "--url", daemon.url, "--token", "wrong")
    assert denied.returncode == 1 and "HTTP 401" in denied.stderr
    done = cli(
        "approvals",
        "approve",
        approval_id,
        "--url",
        daemon.url,
        "--token",
        API_TOKEN,
        "--by",
        "alice",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "approved"
    again = cli("approvals", "deny", approval_id, "--url", daemon.url, "--token", API_TOKEN)
    assert again.returncode == 1 and "HTTP 409" in again.stderr
    assert [d["outcome"] for d in daemon.decisions()] == ["dry_run"]


OPERATORS = {"alice": "alice-token-0123456789", "bob": "bob-token-9876543210"}


def test_pause_resume_and_reset_commands_against_a_running_daemon(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    shipped = (REPO / "policies" / "restart-unhealthy-container.yaml").read_text()
    auth = {"alertmanager": {"bearer_token": "am-token-0123456"}, "api": {"tokens": OPERATORS}}
    daemon = daemon_factory(shipped, auth=auth)
    daemon.start()
    url = ["--url", daemon.url]
    as_alice = {"REMEDIATOR_API_TOKEN": OPERATORS["alice"]}
    bob_file = tmp_path / "bob.token"
    bob_file.write_text(OPERATORS["bob"] + "\n")  # as a Secret mounts it: with a newline
    from_file = ["--token-file", str(bob_file)]
    done = cli("pause", *url, env=as_alice)  # the token from the environment
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"paused": True, "by": "api:alice"}
    assert daemon.request("GET", "/healthz")[1]["paused"] is True
    done = cli("resume", *url, *from_file, env={"REMEDIATOR_API_TOKEN": ""})  # from a file
    assert done.returncode == 0 and json.loads(done.stdout)["by"] == "api:bob", done.stderr
    assert daemon.request("GET", "/healthz")[1]["paused"] is False
    done = cli("reset", "restart-unhealthy-container", *url, *from_file, env=as_alice)
    assert done.returncode == 0, done.stderr  # the file wins over the environment
    assert json.loads(done.stdout)["by"] == "api:bob"
    assert cli("reset", "restart-unhealthy-container", "--limits", *url, *from_file).returncode == 0
    outputs = [done.stdout + done.stderr]
    # Refusals: each says why, with its exit code.
    unknown = cli("reset", "no-such-policy", *url, *from_file)
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr
    assert "no such policy" in unknown.stderr
    wrong = cli("pause", *url, env={"REMEDIATOR_API_TOKEN": "not-the-token-123"})
    assert (
        wrong.returncode == 1 and "HTTP 401" in wrong.stderr and "check the token" in wrong.stderr
    )
    none = cli("pause", *url, env={"REMEDIATOR_API_TOKEN": ""})
    assert none.returncode == 1 and "no API token was given" in none.stderr
    assert "REMEDIATOR_API_TOKEN or --token-file" in none.stderr
    for bad in (["--token-file", str(tmp_path / "missing")], ["--token-file", os.devnull]):
        usage = cli("pause", *url, *bad)
        assert usage.returncode == 2 and "token file" in usage.stderr, usage.stderr
    assert cli("reset", "../pause", *url, *from_file).returncode == 2
    assert cli("pause", "--url", "ftp://x", *from_file).returncode == 2
    closed = cli("pause", "--url", f"http://127.0.0.1:{free_port()}", *from_file)
    assert closed.returncode == 3 and "cannot reach" in closed.stderr
    assert "Connection refused" in closed.stderr
    outputs += [p.stdout + p.stderr for p in (unknown, wrong, none, closed)]
    # No token in any output, and the refused acts changed nothing.
    assert not any(t in out for t in OPERATORS.values() for out in outputs)
    assert daemon.request("GET", "/healthz")[1]["paused"] is False
    status, journal = daemon.request(
        "GET", "/api/v1/operator-events", headers={"Authorization": f"Bearer {OPERATORS['bob']}"}
    )
    assert status == 200
    assert [(e["who"], e["act"], e["policy"]) for e in journal["events"]] == [
        ("api:bob", "reset", "restart-unhealthy-container"),
        ("api:bob", "reset", "restart-unhealthy-container"),
        ("api:bob", "resume", None),
        ("api:alice", "pause", None),
    ]
    assert OPERATORS["alice"] not in daemon.log() and OPERATORS["bob"] not in daemon.log()


def test_approvals_take_the_token_from_a_file_too(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        (REPO / "policies" / "restart-unhealthy-container.yaml").read_text(),
        auth={"alertmanager": {"bearer_token": "am-token-0123456"}, "api": {"tokens": OPERATORS}},
    )
    daemon.start()
    token = tmp_path / "alice.token"
    token.write_text(OPERATORS["alice"])
    listed = cli("approvals", "list", "--url", daemon.url, "--token-file", str(token))
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"approvals": []}
    missing = cli("approvals", "approve", "abc123", "--url", daemon.url, "--token-file", str(token))
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_shipped_alertmanager_config_is_valid_for_alertmanager() -> None:
    amtool = require_binary("amtool", "Debian package prometheus-alertmanager")
    done = subprocess.run(
        [amtool, "check-config", str(REPO / "deploy" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_shipped_alert_rules_are_valid_for_promtool_and_routed_to_remediator() -> None:
    promtool = require_binary("promtool", "Debian package prometheus")
    rules = REPO / "deploy" / "prometheus" / "rules.yml"
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every shipped rule's remediation label is one the shipped route sends to remediator.
    route = yaml.safe_load((REPO / "deploy" / "alertmanager.yml").read_text())["route"]
    [matcher] = next(r for r in route["routes"] if r["receiver"] == "remediator")["matchers"]
    routed = re.fullmatch(r'remediation=~"(.*)"', matcher)
    assert routed is not None, matcher
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            assert re.fullmatch(routed[1], rule["labels"]["remediation"]), rule["alert"]


def test_check_warns_when_kubernetes_policies_have_no_cluster_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "KUBECONFIG": str(home / "none"), "KUBERNETES_SERVICE_HOST": ""}
    done = cli("check", env=env)
    assert done.returncode == 0
    assert "use Kubernetes actions but no cluster config was found" in done.stderr
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    (tmp_path / "remediator.yaml").write_text(
        f"policies: ['{REPO / 'policies'}']\nkubernetes: {{kubeconfig: '{tmp_path / 'kubeconfig'}'}}\n"
    )
    done = cli("check", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "no cluster config" not in done.stderr


def test_simulate_shows_a_shipped_ladder_step_by_step(tmp_path: Path) -> None:
    payload = tmp_path / "alert.json"
    labels = {
        "alertname": "ServiceDown",
        "remediation": "escalate",
        "compose_project": "pyairtable",
        "compose_service": "api-gateway",
        "instance": "api-gateway:8000",
    }
    payload.write_text(
        json.dumps({"alerts": [{"labels": labels, "startsAt": "2026-11-22T10:00:00Z"}]})
    )
    (tmp_path / "remediator.yaml").write_text(f"policies: ['{REPO / 'policies'}']\n")
    done = cli("simulate", str(payload), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        "  policy service-down-ladder: docker.restart target=pyairtable/api-gateway "
        "(compose_project=pyairtable, compose_service=api-gateway, timeout=20s)"
    ) in lines
    assert any(
        line.startswith("    then step 2: docker.recreate target=pyairtable/api-gateway ")
        and line.endswith("if step 1 fails or is not verified")
        for line in lines
    )
    assert any(line.startswith("    then step 3: notify target=slack (text=") for line in lines)
    [entry] = json.loads(cli("simulate", str(payload), "--json", cwd=tmp_path).stdout)
    [ladder] = entry["policies"]
    assert [s["step"] for s in ladder["steps"]] == [2, 3]
    assert ladder["steps"][0]["verify_within"] == "3m"


def test_serve_starts_with_every_shipped_policy_and_no_slack(daemon_factory: DaemonFactory) -> None:
    """What `make run` does: the shipped policies with no Slack, no cluster, no Prometheus.
    A ladder's last `notify` step without Slack is a warning, not a refusal to start."""
    daemon = daemon_factory("")
    daemon.config["policies"] = [str(REPO / "policies")]  # in place of its own folder
    daemon.start()
    status, ready = daemon.request("GET", "/readyz")
    assert status == 200, ready
    [missing] = daemon.events("executor.missing")
    assert missing["backend"] == "notify"
    assert missing["policies"] == ["service-down-ladder", "slow-responses-ladder"]
    shipped = len(list((REPO / "policies").glob("*.yaml")))
    status, metrics = daemon.request("GET", "/metrics")
    assert status == 200
    assert f"remediator_policies_loaded {shipped}.0" in metrics.decode().splitlines()
