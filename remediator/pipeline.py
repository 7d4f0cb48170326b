"""The decision pipeline for one batch of alerts, in one function: `decide`.

match (policy index) -> render -> read the facts once -> judge (guards.STAGES, pure) ->
write the rows once. All of it runs inside one store transaction; execution and
verification happen after the commit, in runner.py. Every stage ends a job with one SPEC
outcome, which is also the log field and the metric label.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from remediator.core.alert import Alert
from remediator.core.guards import Facts, Gates, Settings, reopened
from remediator.core.job import Job, Met, Stopped, render_job
from remediator.core.judge import Decided, Sighting, Verdict, judge
from remediator.core.policy import Policy
from remediator.core.policy_index import PolicyIndex
from remediator.store.roles.decisionlog import Transaction, WindowCount

__all__ = ["Adopt", "Decided", "Gates", "Settings", "Verdict", "decide", "read_facts"]

# The switches as the transaction reads them (store flags) -> the gates a decision sees.
Adopt = Callable[[Sequence[tuple[str, str]]], Gates]


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
    *,
    reopen: Collection[tuple[str, str]] | None = None,
    adopt: Adopt | None = None,
) -> Decided:
    """`conditions`: each (policy, alert index) condition, evaluated before the transaction
    so a slow Prometheus never holds the store. An alert no policy concerns (matching its
    source and labels in either status) leaves no state: a storm of unrelated alerts cannot
    grow the store; one some policy concerns is recorded even when resolved.

    `unmatched` of the answer: the alerts no policy takes. A resolved alert that a policy
    concerns is taken (it settles that policy's episode), even if none acts on resolved.

    `reopen`: not a sighting but resume or reset deciding again the episodes a gate held:
    only these (policy, episode) pairs, each only while its claim is still held by a gate
    that has lifted (guards.reopened, read here under the deciding lock, so one decided
    meanwhile by a repeat or another replica is left alone), and no sighting is noted (nor
    anything counted unmatched).

    `adopt`: the switches are read in the facts' own round trip, under the transaction's
    lock, and `adopt` makes them the gates the judgement sees; `gates` is then only the
    last known switches, for building the facts' queries (read_facts re-reads the facts in
    the rare case the fresh switches change those queries). Without it, `gates` is final."""
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
            alert = raw._replace(episode=await tx.episode_cycle(raw.episode, raw.cycle), cycle=None)
        jobs = tuple(
            render_job(p, alert, now, position)
            for p in candidates
            if p.match.status == alert.status
            and (reopen is None or (p.name, alert.episode) in reopen)
        )
        if not jobs and alert.status == "firing" and reopen is None:
            unmatched.append(position)
        sightings.append(Sighting(alert, position, jobs))
    if not sightings:
        return Decided(unmatched=unmatched if reopen is None else [])
    every = [job for sighting in sightings for job in sighting.jobs]
    facts = await read_facts(tx, every, now, gates, settings, conditions or {}, adopt=adopt)
    if reopen is not None:
        sightings = _still_held(sightings, facts, facts.gates)
        every = [job for sighting in sightings for job in sighting.jobs]
        if not every:
            return Decided()
    resolved = [s.alert.episode for s in sightings if s.alert.status == "resolved"]
    pending = await tx.pending_for(resolved) if resolved else {}
    ids = await tx.reserve_ids(len(every), len(every))
    decided = judge(sightings, facts, ids, now, pending)
    if reopen is not None:
        decided.sightings.clear()  # nothing was seen: the episode's last sighting stands
    else:
        decided.unmatched = unmatched
    await tx.write(decided, now)
    return decided


def _still_held(sightings: Sequence[Sighting], facts: Facts, gates: Gates) -> list[Sighting]:
    kept = []
    for sighting in sightings:
        jobs = tuple(
            job
            for job in sighting.jobs
            if reopened(facts.claims.get(job.key), gates, job.policy.name)
        )
        if jobs:
            kept.append(replace(sighting, jobs=jobs))
    return kept


async def read_facts(
    tx: Transaction,
    jobs: Sequence[Job],
    now: datetime,
    gates: Gates,
    settings: Settings,
    conditions: Mapping[tuple[str, int], Stopped | Met],
    *,
    adopt: Adopt | None = None,
) -> Facts:
    """What guards.STAGES need for these jobs, in one round trip whatever their number:
    claims by episode, last actions by (policy, target), window counts per policy and one
    global count, each capped at its limit; with `adopt`, the switches too (see decide)."""
    facts = Facts(gates, settings, conditions=conditions)
    if not jobs:
        if adopt is not None:
            facts.gates = adopt(await tx.flags())
        return facts
    keys = {job.key for job in jobs}
    # Cooldowns and limits are read for every job, in the same round trip as the claims: a
    # settled episode (a repeat) does not need them, but skipping them would cost a second
    # trip for the others, and each read is an index lookup bounded by its limit.
    cooled = {(j.policy.name, j.target) for j in jobs if j.policy.guards.cooldown and j.target}
    # What counts (README "What counts toward each guard"): a live policy's cooldown and
    # rate_limit count its live actions; a dry run's count dry runs and live actions alike,
    # so a dry run shows what a live run would have met. Either begins after a reset of the
    # policy's limits. Actions that never reached their target are not in the store's rows.
    policies = {j.policy.name: j.policy for j in jobs}
    dry = {name: gates.acts_dry(p) for name, p in policies.items()}
    rates = {name: p.guards.rate_limit for name, p in policies.items()}
    limited = [(name, rate) for name, rate in rates.items() if rate is not None]
    counts = [
        WindowCount(
            gates.counts_since(name, now - rate.window),
            name,
            None if dry[name] else False,
            rate.count,
        )
        for name, rate in limited
    ]
    glob = settings.global_rate
    counts.append(
        WindowCount(now - glob.window, None, None if gates.dry_run else False, glob.count)
    )
    rows = await tx.facts(keys, cooled, counts, flags=adopt is not None)
    if adopt is not None:
        fresh = adopt(rows.flags)
        if fresh.dry_run != gates.dry_run or any(
            fresh.limits_reset.get(name) != gates.limits_reset.get(name) for name, _ in limited
        ):
            # A limit reset (or dry run) this replica had not seen yet moves a window or
            # changes what counts: read the facts again, by the switches as they are.
            return await read_facts(tx, jobs, now, fresh, settings, conditions)
        facts.gates = gates = fresh
    facts.claims = rows.claims
    for policy, target in cooled:
        seen = rows.last_actions if dry[policy] else rows.last_live_actions
        last = seen.get((policy, target))
        reset = gates.limits_reset.get(policy)
        if last is not None and (reset is None or last > reset):
            facts.last_action[(policy, target)] = last
    facts.policy_counts = {name: n for (name, _), n in zip(limited, rows.counts, strict=False)}
    facts.global_count = rows.counts[-1]
    return facts
