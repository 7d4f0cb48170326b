"""Hot reload of the real daemon (a subprocess): a policy change applied under concurrent load
with no decision lost, doubled or decided by half of a rule set; SIGHUP refusing an invalid
change (logged, the old set deciding) and applying a valid one; the caller's identity and the
keys that need a restart; two replicas on one PostgreSQL store reloading each on its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.daemon import AM_TOKEN, Daemon, DaemonFactory
from tests.fixtures.postgres import Postgres
from tests.fixtures.procs import free_port, remediator_cli, wait_for

STARTS = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")


def policy(name: str) -> str:
    return f"""---
name: {name}
match: {{matchers: ['alertname="Load"']}}
action:
  type: docker.restart
  params: {{container: "{{{{ labels.container }}}}"}}
  allow_targets: ["*"]
"""


def alerts(*containers: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Load", "container": container},
                "annotations": {},
                "startsAt": STARTS,
                "endsAt": "0001-01-01T00:00:00Z",
            }
            for container in containers
        ],
    }


def write_policies(daemon: Daemon, text: str) -> None:
    (daemon.folder / "policies" / "policies.yaml").write_text(text)


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    status, raw = daemon.request("GET", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def decided(daemon: Daemon, *containers: str) -> list[tuple[str, str]]:
    status, answer = daemon.webhook(alerts(*containers))
    assert status == 200, answer
    return sorted((d["policy"], d["outcome"]) for d in answer["decisions"])


@dataclass
class Sent:
    started: float
    answered: float
    status: int
    answer: Any


def _load(daemon: Daemon, thread: int, stop: threading.Event, sent: list[Sent]) -> None:
    """Webhooks back to back: a new alert with a repeat of this thread's own one, or a repeat
    of another that always comes alone (answered from memory, without the store, while the
    rule set that matched it is in force)."""
    for i in range(100_000):
        if stop.is_set():
            return
        started = time.monotonic()
        body = alerts(f"alone-{thread}") if i % 2 else alerts(f"new-{thread}-{i}", f"{thread}")
        status, answer = daemon.webhook(body)
        sent.append(Sent(started, time.monotonic(), status, answer))


def test_a_change_under_concurrent_load_loses_doubles_and_mixes_no_decision(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory(policy("keep") + policy("v1"), dry_run=True)
    daemon.start()
    stop, sent = threading.Event(), list[Sent]()
    threads = [
        threading.Thread(target=_load, args=(daemon, n, stop, sent), daemon=True) for n in range(6)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(sent) >= 60, timeout=30, what="60 webhooks before the reload")
        write_policies(daemon, policy("keep") + policy("v2"))
        asked = time.monotonic()
        status, answer = daemon.api("POST", "/-/reload")
        applied = time.monotonic()
        assert status == 200 and (answer["added"], answer["removed"]) == (["v2"], ["v1"]), answer
        wait_for(
            lambda: sum(s.started > applied for s in sent) >= 60,
            timeout=30,
            what="60 webhooks after the reload",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert [s.status for s in sent] == [200] * len(sent)
    sets = []
    for s in sent:
        names = Counter(d["policy"] for d in s.answer["decisions"])
        n = s.answer["alerts"]
        # Each alert by `keep` and by one version: never both versions, never neither.
        assert names in (Counter(keep=n, v1=n), Counter(keep=n, v2=n)), s.answer
        sets.append(("v1" if "v1" in names else "v2", s))
    assert all(v == "v1" for v, s in sets if s.answered < asked)
    assert all(v == "v2" for v, s in sets if s.started > applied)

    verdicts = [d for s in sent for d in s.answer["decisions"]]
    new = {d["id"]: d for d in verdicts if d["outcome"] != "deduplicated"}
    repeats = Counter(d["id"] for d in verdicts if d["outcome"] == "deduplicated")
    assert len(new) == len(verdicts) - sum(repeats.values())  # every new decision once

    def audited() -> list[dict[str, Any]] | None:
        found = daemon.decisions(limit=10_000)
        counted = {d["id"]: d["repeats"] for d in found if d["outcome"] == "deduplicated"}
        return found if counted == dict(repeats) else None  # repeats flush each second

    audit = wait_for(audited, timeout=15, what="every repeat counted in the audit log")
    rows = {d["id"]: d for d in audit if d["outcome"] != "deduplicated"}
    assert rows.keys() == new.keys()  # none lost, none extra
    for decision_id, verdict in new.items():
        row = rows[decision_id]
        assert (row["policy"], row["fingerprint"], row["outcome"]) == (
            verdict["policy"],
            verdict["fingerprint"],
            verdict["outcome"],  # dry_run, or rate_limited past limits.global_rate
        )
    episodes = Counter((d["policy"], d["fingerprint"]) for d in rows.values())
    assert max(episodes.values()) == 1  # no episode decided twice by one policy


def test_sighup_refuses_an_invalid_change_and_applies_a_valid_one(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory(policy("p1"), dry_run=True)
    daemon.start()
    assert daemon.proc is not None
    assert metric(daemon, "remediator_config_last_reload_successful") == 1
    started_at = metric(daemon, "remediator_config_last_reload_success_timestamp_seconds")
    assert decided(daemon, "web-1") == [("p1", "dry_run")]

    write_policies(daemon, policy("p1") + "---\nname: Bad Name\n")
    os.kill(daemon.proc.pid, signal.SIGHUP)
    [failed] = wait_for(
        lambda: daemon.events("config.reload_failed"), timeout=10, what="the refused reload"
    )
    assert failed["by"] == "signal:SIGHUP"
    assert any("policy Bad Name" in line for line in failed["problems"]), failed
    assert daemon.proc.poll() is None  # SIGHUP no longer ends the daemon
    assert decided(daemon, "web-2") == [("p1", "dry_run")]
    assert metric(daemon, "remediator_config_last_reload_successful") == 0
    assert metric(daemon, "remediator_policies_loaded") == 1

    write_policies(daemon, policy("p1") + policy("p2"))
    os.kill(daemon.proc.pid, signal.SIGHUP)
    [applied] = wait_for(
        lambda: daemon.events("config.reloaded"), timeout=10, what="the applied reload"
    )
    assert (applied["by"], applied["added"], applied["policies"]) == ("signal:SIGHUP", ["p2"], 2)
    assert decided(daemon, "web-3") == [("p1", "dry_run"), ("p2", "dry_run")]
    assert metric(daemon, "remediator_config_last_reload_successful") == 1
    stamp = metric(daemon, "remediator_config_last_reload_success_timestamp_seconds")
    assert started_at is not None and stamp is not None and stamp > started_at
    assert metric(daemon, "remediator_policies_loaded") == 2
    assert metric(daemon, "remediator_decisions_total", policy="p2", outcome="executed") == 0
    assert daemon.stop() == 0
    assert daemon.events("daemon.stopped")


def test_the_api_reload_names_its_caller_and_the_keys_that_need_a_restart(
    daemon_factory: DaemonFactory,
) -> None:
    tokens = {"ana": "ana-token-0123456"}
    auth = {"alertmanager": {"bearer_token": AM_TOKEN}, "api": {"tokens": tokens}}
    daemon = daemon_factory(policy("p1"), dry_run=True, auth=auth)
    daemon.start()
    moved = dict(daemon.config, listen="127.0.0.1:1", dry_run=False)
    (daemon.folder / "remediator.yaml").write_text(yaml.safe_dump(moved))
    headers = {"Authorization": f"Bearer {tokens['ana']}", "Content-Type": "application/json"}

    status, answer = daemon.request("POST", "/-/reload", b"{}", headers)

    assert status == 200, answer
    assert answer["restart_required"] == ["listen"]
    [warning] = daemon.events("config.restart_required")
    assert (warning["by"], warning["keys"], warning["level"]) == ("api:ana", ["listen"], "warning")
    [applied] = daemon.events("config.reloaded")
    assert applied["by"] == "api:ana"
    assert daemon.ready()  # still on its old address
    assert decided(daemon, "web-1") == [("p1", "executing")]  # dry_run: false applied


def test_two_replicas_on_one_store_reload_each_on_its_own(
    daemon_factory: DaemonFactory, postgres: Postgres
) -> None:
    state = postgres.database()
    a, b = (daemon_factory(policy("p1"), state=state, dry_run=True) for _ in range(2))
    for replica in (a, b):
        replica.start(wait_ready=False)  # both migrate at once: one waits on the other's lock
    for replica in (a, b):
        wait_for(replica.ready, timeout=30, what=f"replica ready\n{replica.log()}")
    assert decided(a, "web-x") == [("p1", "dry_run")]

    write_policies(a, policy("p1") + policy("p2"))
    status, answer = a.api("POST", "/-/reload")
    assert status == 200 and answer["added"] == ["p2"], answer

    assert decided(a, "web-y") == [("p1", "dry_run"), ("p2", "dry_run")]
    assert decided(b, "web-z") == [("p1", "dry_run")]  # B still runs its own files
    assert decided(b, "web-x") == [("p1", "deduplicated")]  # one store: claims are shared
    assert (metric(a, "remediator_policies_loaded"), metric(b, "remediator_policies_loaded")) == (
        2,
        1,
    )

    write_policies(b, policy("p1") + policy("p2"))
    assert b.proc is not None
    os.kill(b.proc.pid, signal.SIGHUP)
    wait_for(lambda: b.events("config.reloaded"), timeout=10, what="B's reload")
    assert decided(b, "web-y") == [("p1", "deduplicated"), ("p2", "deduplicated")]
    assert decided(b, "web-x") == [("p1", "deduplicated"), ("p2", "dry_run")]
    assert not a.events("config.reloaded")[1:]  # A reloaded once, by its own caller
    assert a.decisions() == b.decisions()


def test_serve_with_an_invalid_policy_at_start_still_refuses_to_start(tmp_path: Path) -> None:
    """Only a running daemon keeps its set: at start there is none to keep, so an invalid
    policy is exit 2 before anything listens or is opened (what `check` in CI prevents)."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(policy("p1") + "---\nname: Bad Name\n")
    config = {"listen": f"127.0.0.1:{free_port()}", "state": "sqlite:///./state.db"}
    (tmp_path / "remediator.yaml").write_text(
        yaml.safe_dump({**config, "policies": ["./policies"]})
    )

    served = remediator_cli("serve", "--config", "remediator.yaml", cwd=tmp_path)

    assert served.returncode == 2, served.stderr
    assert "policy Bad Name" in served.stderr
    assert not (tmp_path / "state.db").exists()
