"""The decision pipeline for one batch of alerts, in one function: `decide`.

match (policy index) -> render -> read the facts once -> judge (guards.STAGES, pure) ->
write the rows once. All of it runs inside one store transaction; execution and
verification happen after the commit, in runner.py. Every stage ends a job with one SPEC
outcome, which is also the log field and the metric label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from remediator.core.alert import Alert
from remediator.core.guards import Facts, Gates, Settings
from remediator.core.job import Job, Met, Stopped, render_job
from remediator.core.judge import Decided, Sighting, Verdict, judge
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex
from remediator.store.base import Transaction, WindowCount

__all__ = ["Decided", "Gates", "Settings", "Verdict", "decide", "read_facts"]


def _index(policies: Sequence[Policy] | PolicyIndex) -> PolicyIndex:
    return policies if isinstance(policies, PolicyIndex) else PolicyIndex(policies)


async def decide(
    alerts: Sequence[Alert],
    policies: Sequence[Policy] | PolicyIndex,
    tx: Transaction,
    now: datetime,
    gates: Gates,
    settings: Settings,
    conditions: Mapping[tuple[str, int], Stopped | Met] | None = None,
) -> Decided:
    """`conditions`: each (policy, alert index) condition, evaluated before the transaction
    so a slow Prometheus never holds the store. An alert no policy concerns (matching its
    source and labels in either status) leaves no state: a storm of unrelated alerts cannot
    grow the store; one some policy concerns is recorded even when resolved.

    `unmatched` of the answer: the alerts no policy takes. A resolved alert that a policy
    concerns is taken (it settles that policy's episode), even if none acts on resolved."""
    index = _index(policies)
    sightings = []
    unmatched = []
    for position, raw in enumerate(alerts):
        candidates = index.concerned(raw)
        if not candidates:
            unmatched.append(position)
            continue
        alert = raw
        if raw.cycle is not None:  # the sender gave no incident id: the store numbers cycles
            alert = replace(raw, episode=await tx.episode_cycle(raw.episode, raw.cycle), cycle=None)
        jobs = tuple(
            render_job(p, alert, now, position)
            for p in candidates
            if p.match.status == alert.status
        )
        if not jobs and alert.status == "firing":
            unmatched.append(position)
        sightings.append(Sighting(alert, position, jobs))
    if not sightings:
        return Decided(unmatched=unmatched)
    every = [job for sighting in sightings for job in sighting.jobs]
    facts = await read_facts(tx, every, now, gates, settings, conditions or {})
    resolved = [s.alert.episode for s in sightings if s.alert.status == "resolved"]
    pending = await tx.pending_for(resolved) if resolved else {}
    ids = await tx.reserve_ids(len(every), len(every))
    decided = judge(sightings, facts, ids, now, pending)
    decided.unmatched = unmatched
    await tx.write(decided, now)
    return decided


async def read_facts(
    tx: Transaction,
    jobs: Sequence[Job],
    now: datetime,
    gates: Gates,
    settings: Settings,
    conditions: Mapping[tuple[str, int], Stopped | Met],
) -> Facts:
    """What guards.STAGES need for these jobs, in one round trip whatever their number:
    claims by episode, last actions by (policy, target), window counts per policy and one
    global count, each capped at its limit."""
    facts = Facts(gates, settings, conditions=conditions)
    if not jobs:
        return facts
    keys = {job.key for job in jobs}
    # Cooldowns and limits are read for every job, in the same round trip as the claims: a
    # settled episode (a repeat) does not need them, but skipping them would cost a second
    # trip for the others, and each read is an index lookup bounded by its limit.
    cooled = {(j.policy.name, j.target) for j in jobs if j.policy.guards.cooldown and j.target}
    rates = {j.policy.name: j.policy.guards.rate_limit for j in jobs}
    limited = [(name, rate) for name, rate in rates.items() if rate is not None]
    counts = [WindowCount(now - rate.window, name, None, rate.count) for name, rate in limited]
    glob = settings.global_rate
    counts.append(
        WindowCount(now - glob.window, None, None if gates.dry_run else False, glob.count)
    )
    rows = await tx.facts(keys, cooled, counts)
    facts.claims = rows.claims
    facts.last_action = rows.last_actions
    facts.policy_counts = {name: n for (name, _), n in zip(limited, rows.counts, strict=False)}
    facts.global_count = rows.counts[-1]
    return facts
