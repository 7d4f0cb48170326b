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
from remediator.core.dedup import Seen, classify
from remediator.core.job import Job, Met, Stopped, build_job
from remediator.core.limits import cooldown_reason, rate_reason
from remediator.core.policy import Policy
from remediator.engine import PAUSED_FLAG, TRIPPED_PREFIX
from remediator.errors import RenderError
from remediator.pipeline import (
    Gates,
    Settings,
    decide,
    matching,
    needs_approval,
)
from remediator.store.base import Store, Transaction
from remediator.store.postgres import PostgresStore, SchemaMissingError
from remediator.store.sqlite import SqliteStore


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    guard: str
    ok: bool
    detail: str


async def _guards(
    tx: Transaction, alert: Alert, policy: Policy, now: datetime, gates: Gates, settings: Settings
) -> tuple[Job | Stopped, list[GuardVerdict]]:
    """Each guard evaluated on its own, even after one would already have stopped the job."""
    out: list[GuardVerdict] = []
    job = build_job(policy, alert, now, settings.protected_namespaces)
    if not isinstance(job, Job):
        out.append(GuardVerdict(job.outcome.value, False, job.reason))
        return job, out
    out.append(GuardVerdict("render", True, f"target {job.target}"))
    out.append(GuardVerdict("scope", True, f"{job.target} is in allow_targets"))
    claim = await tx.claim(policy.name, alert.episode)
    seen = classify(claim, gates.holding(policy.name) is not None)
    dedup_ok = seen in (Seen.NEW, Seen.REDECIDE)
    detail = (
        "new episode"
        if claim is None
        else f"episode decided by decision {claim.decision_id} ({claim.outcome})"
    )
    out.append(GuardVerdict("dedup", dedup_ok, detail))
    out.append(GuardVerdict("paused", not gates.paused, "paused" if gates.paused else "not paused"))
    tripped = policy.name in gates.tripped
    out.append(GuardVerdict("breaker", not tripped, "open (tripped)" if tripped else "closed"))
    last = await tx.last_action_at(policy.name, job.target)
    reason = cooldown_reason(last, policy.guards.cooldown, now)
    out.append(
        GuardVerdict("cooldown", reason is None, reason or "no recent action on this target")
    )
    rate = policy.guards.rate_limit
    if rate is not None:
        count = await tx.count_actions(now - rate.window, policy=policy.name, dry_run=None)
        reason = rate_reason(count, rate, "policy rate_limit")
        out.append(GuardVerdict("rate_limit", reason is None, reason or f"{count} of {rate}"))
    count = await tx.count_actions(
        now - settings.global_rate.window, policy=None, dry_run=None if gates.dry_run else False
    )
    reason = rate_reason(count, settings.global_rate, "global_rate")
    out.append(
        GuardVerdict("global_rate", reason is None, reason or f"{count} of {settings.global_rate}")
    )
    try:
        needed = needs_approval(job)
        out.append(GuardVerdict("approval", not needed, "required" if needed else "not required"))
    except RenderError as exc:
        out.append(GuardVerdict("approval", False, str(exc)))
    dry = gates.dry_run or policy.guards.dry_run
    out.append(GuardVerdict("dry_run", not dry, "dry run: would not execute" if dry else "live"))
    return job, out


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
        paused = await store.get_flag(PAUSED_FLAG) is not None
        tripped = frozenset(
            n.removeprefix(TRIPPED_PREFIX) for n, _ in await store.flags(TRIPPED_PREFIX)
        )
        gates = Gates(paused=paused, tripped=tripped, dry_run=config.dry_run)
        settings = Settings.from_config(config)
        report: list[dict[str, Any]] = []
        conditions = None
        if checker is not None:
            conditions = await evaluate_conditions(
                checker, alerts, policies, now, lambda _p, _e: False
            )
        async with store.transaction(commit=False) as tx:
            for alert in alerts:
                entry: dict[str, Any] = {
                    "alertname": alert.name,
                    "status": alert.status,
                    "fingerprint": alert.fingerprint,
                    "episode": alert.episode,
                    "labels": dict(alert.labels),
                    "policies": [],
                }
                for policy in matching(policies, alert):
                    job, guards = await _guards(tx, alert, policy, now, gates, settings)
                    entry["policies"].append(
                        {
                            "policy": policy.name,
                            "action": policy.action.type,
                            "target": job.target,
                            "params": dict(job.params) if isinstance(job, Job) else {},
                            "guards": [
                                {"guard": g.guard, "ok": g.ok, "detail": g.detail} for g in guards
                            ],
                        }
                    )
                report.append(entry)
            # The authoritative outcome, alert by alert, exactly as the daemon would decide.
            decided = await decide(alerts, policies, tx, now, gates, settings, conditions)
        outcomes = iter(decided.verdicts)
        for index, entry in enumerate(report):
            for item in entry["policies"]:
                if conditions is not None and (item["policy"], index) in conditions:
                    result = conditions[(item["policy"], index)]
                    item["guards"].insert(
                        2,
                        {
                            "guard": "condition",
                            "ok": isinstance(result, Met),
                            "detail": result.reason,
                        },
                    )
                verdict = next(outcomes)
                outcome = "executed" if verdict.outcome == "executing" else verdict.outcome
                item["outcome"] = outcome
                item["reason"] = verdict.reason
        return report
    finally:
        await store.close()


def format_report(report: list[dict[str, Any]]) -> str:
    lines = []
    for index, entry in enumerate(report, start=1):
        lines.append(
            f"alert {index}/{len(report)}: {entry['alertname'] or '(no alertname)'} "
            f"{entry['status']} fingerprint={entry['fingerprint']}"
        )
        if not entry["policies"]:
            lines.append("  no policy matches")
        for item in entry["policies"]:
            params = ", ".join(f"{k}={v}" for k, v in item["params"].items())
            lines.append(
                f"  policy {item['policy']}: {item['action']} target={item['target'] or '-'}"
                + (f" ({params})" if params else "")
            )
            for guard in item["guards"]:
                mark = "ok  " if guard["ok"] else "STOP"
                lines.append(f"    {mark} {guard['guard']:<12} {guard['detail']}")
            verb = (
                "would execute" if item["outcome"] == "executed" else f"would be {item['outcome']}"
            )
            lines.append(f"    => {verb}: {item['reason']}")
    return "\n".join(lines)
