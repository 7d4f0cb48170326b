"""How a judgement's claims, sightings, decisions and actions become the rows the decision log's
statements bind, and which per-minute counters an action adds to. Pure: no SQL and no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime

from remediator import jsontext
from remediator.core.alert import Alert
from remediator.core.dedup import Claim
from remediator.core.records import NewAction, NewDecision
from remediator.log import redact
from remediator.store.dialect import Dialect
from remediator.store.records import params_json

# Per-minute action counters (schema 8), kept with the action rows: a window count reads a
# minute's row where it would scan the minute's actions. ALL_POLICIES holds every policy's
# actions together (the global limit); each action adds to its policy's row and to that one.
ALL_POLICIES = ""


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def counter_rows(
    d: Dialect, actions: Collection[tuple[str, bool, datetime]]
) -> list[tuple[object, ...]]:
    """decisiontx.COUNT_ACTIONS rows for these (policy, dry_run, created_at): one per counter
    touched."""
    counted: Counter[tuple[str, bool, datetime]] = Counter()
    minutes: dict[datetime, datetime] = {}  # a batch's actions share one `now`
    for policy, dry_run, created in actions:
        minute = minutes.get(created)
        if minute is None:
            minute = minutes[created] = minute_of(created)
        counted[(policy, dry_run, minute)] += 1
        counted[(ALL_POLICIES, dry_run, minute)] += 1
    return [(p, dry, d.ts(m), n) for (p, dry, m), n in sorted(counted.items())]


def claim_row(key: tuple[str, str], claim: Claim) -> tuple[object, ...]:
    return (
        *key,
        claim.decision_id,
        str(claim.outcome),
        claim.provisional,
        claim.action,
        claim.target,
        claim.dedup_decision_id,
    )


def sighting_row(d: Dialect, alert: Alert, now: datetime) -> tuple[object, ...]:
    seen = d.ts(now)
    return (
        alert.episode,
        alert.source,
        alert.fingerprint,
        alert.name,
        jsontext.dumps(dict(alert.labels), sort_keys=True),
        d.ts(alert.starts_at),
        seen,
        seen if alert.status == "resolved" else None,
        seen,
        jsontext.dumps(dict(alert.annotations), sort_keys=True),
        alert.generator_url,
    )


def decision_row(d: Dialect, decision: NewDecision) -> tuple[object, ...]:
    alert = decision.alert
    return (
        d.ts(decision.time),
        decision.policy,
        alert.source,
        alert.name,
        alert.fingerprint,
        alert.episode,
        decision.action,
        decision.target,
        str(decision.outcome),
        redact(decision.reason),
        decision.approval_id,
        decision.repeats,
        decision.step,
    )


def action_row(d: Dialect, action: NewAction, owner: str) -> tuple[object, ...]:
    return (
        action.id,
        action.decision_id,
        action.policy,
        action.type,
        action.target,
        params_json(action.params, action.verify, action.ladder),
        action.dry_run,
        "dry_run" if action.dry_run else "pending",
        d.ts(action.time),
        owner,
        *d.clock(action.time),
    )
