"""`remediator simulate`: the real pipeline over a payload, inside a transaction that is
rolled back, plus every guard's own verdict, so an operator sees why before it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from remediator.app import build_checker
from remediator.checks.conditions import evaluate_conditions
from remediator.checks.prometheus import PrometheusChecker
from remediator.config import Config
from remediator.core.alert import Alert
from remediator.core.durations import format_duration
from remediator.core.explain import one_line, why_not
from remediator.core.guards import STAGES, Facts
from remediator.core.job import Job, render_job
from remediator.core.outcomes import Outcome
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex
from remediator.pipeline import Settings, decide, read_facts
from remediator.store.postgres import PostgresStore, SchemaMissingError
from remediator.store.roles.store import Store
from remediator.store.sqlite import SqliteStore
from remediator.switches import gates_of


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    guard: str
    ok: bool
    detail: str


def _guards(job: Job, facts: Facts, now: datetime) -> list[GuardVerdict]:
    """Each stage of guards.STAGES on its own, even after one would already have stopped
    the job (decide gives the authoritative outcome); a job that did not render or is out
    of scope shows only that."""
    if job.error is not None:
        return [GuardVerdict(job.error.outcome.value, False, job.error.reason)]
    out = [GuardVerdict("render", True, f"target {job.target}")]
    for stage in STAGES:
        stop = stage.check(job, facts, now)
        if stage.name == "scope" and stop is not None:
            return [*out, GuardVerdict(stop.outcome.value, False, stop.reason)]
        if stage.name == "condition" and job.policy.condition is None:
            continue
        shown = stage.passed(job, facts) if stop is None or stage.name == "dedup" else stop.reason
        out.append(GuardVerdict(stage.name, stop is None, shown))
    return out


def state_path(config: Config) -> str:
    """The store to read; with no state yet, an empty in-memory one rather than a new file."""
    target = config.state_target()
    if target.kind == "postgresql":
        return target.path
    return target.path if target.path == ":memory:" or Path(target.path).exists() else ":memory:"


async def _open(path: str) -> Store:
    """The real store, never migrated nor created by a simulation (an empty one if none yet)."""
    if urlsplit(path).scheme in ("postgresql", "postgres"):
        shared = PostgresStore(path, min_size=1, max_size=1, migrate=False)
        try:
            await shared.open()
        except SchemaMissingError:
            path = ":memory:"
        else:
            return shared
    store = SqliteStore(path)
    await store.open()
    return store


async def simulate(
    config: Config, policies: list[Policy], alerts: list[Alert], now: datetime, path: str
) -> list[dict[str, Any]]:
    """Run against the store at `path` in a transaction that is rolled back."""
    checker = build_checker(config, policies)
    try:
        return await _simulate(config, policies, alerts, now, path, checker)
    finally:
        if checker is not None:
            await checker.close()


async def _simulate(
    config: Config,
    policies: list[Policy],
    alerts: list[Alert],
    now: datetime,
    path: str,
    checker: PrometheusChecker | None,
) -> list[dict[str, Any]]:
    store = await _open(path)
    try:
        gates = gates_of(await store.flags(""), dry_run=config.dry_run)
        settings = Settings.from_config(config)
        report: list[dict[str, Any]] = []
        conditions = None
        if checker is not None:
            conditions = await evaluate_conditions(
                checker, alerts, policies, now, lambda _p, _e: False
            )
        async with store.transaction(commit=False) as tx:
            index = PolicyIndex(policies)
            jobs: list[list[Job]] = [
                [render_job(p, alert, now, position) for p in index.matching(alert)]
                for position, alert in enumerate(alerts)
            ]
            facts = await read_facts(
                tx, [j for row in jobs for j in row], now, gates, settings, conditions or {}
            )
            for alert, row in zip(alerts, jobs, strict=True):
                entry: dict[str, Any] = {
                    "alertname": alert.name,
                    "status": alert.status,
                    "fingerprint": alert.fingerprint,
                    "episode": alert.episode,
                    "labels": dict(alert.labels),
                    "policies": [],
                    "not_matched": _not_matched(index.policies, alert),
                }
                for job in row:
                    guards = _guards(job, facts, now)
                    entry["policies"].append(
                        {
                            "policy": job.policy.name,
                            "action": job.action,
                            "target": job.target or (job.error.target if job.error else ""),
                            "params": dict(job.params) if job.error is None else {},
                            "guards": [
                                {"guard": g.guard, "ok": g.ok, "detail": g.detail} for g in guards
                            ],
                            "steps": _ladder(job),
                        }
                    )
                report.append(entry)
            # The authoritative outcome, alert by alert, exactly as the daemon would decide.
            decided = await decide(alerts, index, tx, now, gates, settings, conditions)
        outcomes = iter(decided.verdicts)
        for entry in report:
            for item in entry["policies"]:
                verdict = next(outcomes)
                outcome = verdict.outcome
                item["outcome"] = "executed" if outcome is Outcome.EXECUTING else outcome.value
                item["reason"] = verdict.reason
        return report
    finally:
        await store.close()


def _not_matched(policies: tuple[Policy, ...], alert: Alert) -> list[dict[str, str]]:
    """Every policy that does not take the alert, with the first check that failed."""
    out = []
    for policy in policies:
        miss = why_not(policy, alert)
        if miss is not None:
            out.append({"policy": policy.name, "failed": miss.failed, "reason": str(miss)})
    return out


def _ladder(job: Job) -> list[dict[str, Any]]:
    """A ladder policy's later rungs as rendered for this alert (empty for one action)."""
    return [
        {
            "step": rung.step,
            "action": rung.action,
            "target": rung.target,
            "params": dict(rung.params),
            "verify_within": format_duration(rung.within),
            "approval": "required" if rung.ask is not None else "not required",
        }
        for rung in job.ladder
    ]


# Text output lists this many non-matching policies per alert; --json lists every one.
NOT_MATCHED_SHOWN = 50
_PARAM_CHARS = 500  # of a rendered value or reason in text output (alert values may be long)


def format_report(report: list[dict[str, Any]]) -> str:
    """One line per fact; every value that came from the alert is escaped onto its line."""
    lines = []
    for index, entry in enumerate(report, start=1):
        lines.append(
            f"alert {index}/{len(report)}: {one_line(entry['alertname']) or '(no alertname)'} "
            f"{entry['status']} fingerprint={one_line(entry['fingerprint'])}"
        )
        if not entry["policies"]:
            lines.append("  no policy matches")
        for item in entry["policies"]:
            params = ", ".join(
                f"{k}={one_line(str(v), _PARAM_CHARS)}" for k, v in item["params"].items()
            )
            target = one_line(item["target"], _PARAM_CHARS) or "-"
            lines.append(
                f"  policy {item['policy']}: {item['action']} target={target}"
                + (f" ({params})" if params else "")
            )
            for guard in item["guards"]:
                mark = "ok  " if guard["ok"] else "STOP"
                detail = one_line(guard["detail"], _PARAM_CHARS)
                lines.append(f"    {mark} {guard['guard']:<12} {detail}")
            verb = (
                "would execute" if item["outcome"] == "executed" else f"would be {item['outcome']}"
            )
            lines.append(f"    => {verb}: {one_line(item['reason'], _PARAM_CHARS)}")
            for step in item.get("steps", []):
                previous = step["step"] - 1
                shown = ", ".join(
                    f"{k}={one_line(str(v), _PARAM_CHARS)}" for k, v in step["params"].items()
                )
                lines.append(
                    f"    then step {step['step']}: {step['action']} "
                    f"target={one_line(step['target'], _PARAM_CHARS)}"
                    f" ({shown}), if step {previous} fails or is not verified"
                    + (", after approval" if step.get("approval") == "required" else "")
                )
        missed = entry.get("not_matched", [])
        for item in missed[:NOT_MATCHED_SHOWN]:
            lines.append(f"  policy {item['policy']}: not matched: {item['reason']}")
        if len(missed) > NOT_MATCHED_SHOWN:
            lines.append(
                f"  ... and {len(missed) - NOT_MATCHED_SHOWN} more policies not matched "
                "(--json lists every one)"
            )
    return "\n".join(lines)
