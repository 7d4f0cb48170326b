"""What the store hands back and how a row of either backend becomes it; no SQL and no I/O.

Also the small rules every backend applies alike: every string of what is stored redacted,
who holds an action, and what the audit says when a lease runs out.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from remediator import jsontext
from remediator.core.approval import Approval, ApprovalState
from remediator.core.ladder import Rung, ladder_from_json, ladder_json
from remediator.core.verify import Checks, PrometheusCheck
from remediator.log import redact

# How the version before kept the verify check: as reserved string params among the others.
_LEGACY_QUERY, _LEGACY_BOUND = "_verify_query", "_verify_bound"


def redacted(value: Any) -> Any:
    """`value` (JSON-like) with log.redact applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def params_json(
    params: Mapping[str, str],
    verify: Checks | None,
    ladder: Sequence[Rung] = (),
    rung: Rung | None = None,
) -> str:
    """An action's params column: `{"params": {...}, "verify": {...} | null}`, and for a
    ladder's rung the rungs after it (`"ladder": [...]`); the verify checks and the ladder
    beside the params, never among them (no param is ever named like them). An approval
    request for a ladder's later step keeps that step too (`"rung"`: its number and
    verification)."""
    checks = verify.to_json() if verify is not None else None
    document: dict[str, Any] = {"params": dict(params), "verify": checks}
    if checks is None and not ladder and rung is None:
        return jsontext.dumps(document)  # strings only: no float for orjson to write as null
    if ladder:
        document["ladder"] = ladder_json(ladder)
    if rung is not None:
        document["rung"] = rung.to_json()
    return json.dumps(document)


def ladder_of(raw: str | None) -> tuple[Rung, ...]:
    """The rungs after this one, as params_json stored them (none for any other action)."""
    if not raw:
        return ()
    document = json.loads(raw)
    return ladder_from_json(document.get("ladder")) if isinstance(document, dict) else ()


def rung_of(raw: str | None) -> Rung | None:
    """The later step an approval request asks for, as params_json stored it; None for a
    request of a ladder's first step or of a policy of one action."""
    document = json.loads(raw) if raw else None
    if not isinstance(document, dict) or not isinstance(document.get("rung"), dict):
        return None
    return Rung.from_json(document["rung"])


def params_from_json(raw: str | None) -> tuple[dict[str, str], Checks | None]:
    """A params column as `params_json` writes it, or as the version before wrote it: the
    params flat, with the check as `_verify_query` and `_verify_bound` ("below 0.1") in them."""
    if not raw:
        return {}, None
    document = json.loads(raw)
    if isinstance(document.get("params"), dict):  # flat params are strings, never a mapping
        return dict(document["params"]), Checks.from_json(document.get("verify")) or None
    params = dict(document)
    query, bound = params.pop(_LEGACY_QUERY, None), params.pop(_LEGACY_BOUND, None)
    if query is None or bound is None:
        return params, None
    side, _, value = bound.partition(" ")
    threshold = float(value)
    if side == "above":
        return params, Checks(PrometheusCheck(query, above=threshold))
    return params, Checks(PrometheusCheck(query, below=threshold))


def stale_reason(state: str, owner: str, lease: timedelta | None) -> str:
    if lease is None:
        return f"the daemon stopped while this action was {state}; not re-run"
    holder = f"replica {owner}" if owner else "its replica"
    return (
        f"{holder} did not renew its lease for {lease.total_seconds():g}s (action_lease) "
        f"while this action was {state}; not re-run"
    )


def replica_name() -> str:
    """Who holds an action, shown in the audit when its lease runs out."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Interrupted:
    """An action recorded `interrupted`: what the metrics and the log need about it."""

    action_id: int
    policy: str
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    id: int
    time: datetime
    policy: str
    source: str
    alertname: str
    fingerprint: str
    episode: str
    action: str
    target: str
    outcome: str
    reason: str
    approval_id: str | None
    repeats: int
    step: int | None = None  # a ladder's rung (1, 2, ...); None for a policy of one action

    def to_api(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "policy": self.policy,
            "source": self.source,
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "approval_id": self.approval_id,
            "repeats": self.repeats,
        }


def decision_from_row(row: Any, when: Callable[[Any], datetime]) -> DecisionRecord:
    """A decisions row of either backend; `when` reads its time column."""
    return DecisionRecord(
        id=row["id"],
        time=when(row["time"]),
        policy=row["policy"],
        source=row["source"],
        alertname=row["alertname"],
        fingerprint=row["fingerprint"],
        episode=row["episode"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        reason=row["reason"],
        approval_id=row["approval_id"],
        repeats=row["repeats"],
        step=row["step"],
    )


def approval_from_row(row: Any, when: Callable[[Any], datetime]) -> Approval:
    """An approvals row of either backend; `when` reads its time columns."""
    return Approval(
        id=row["id"],
        decision_id=row["decision_id"],
        policy=row["policy"],
        action=row["action"],
        target=row["target"],
        state=ApprovalState(row["state"]),
        requested_at=when(row["requested_at"]),
        expires_at=when(row["expires_at"]),
        required=row["required"],
        approvers=tuple(json.loads(row["approvers"])),
        approved_by=tuple(json.loads(row["approved_by"])),
        decided_by=row["decided_by"],
    )


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action as the store keeps it: what ran, its state and times, and what its
    executor reported (`result`: docker.exec's exit codes and output tails, redacted)."""

    id: int
    decision_id: int
    policy: str
    type: str
    target: str
    params: dict[str, str]
    dry_run: bool
    state: str
    reason: str
    result: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    verify: dict[str, Any] | None = None  # the checks it was verified by (verify.to_json)

    def to_api(self) -> dict[str, object]:
        def at(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "id": self.id,
            "type": self.type,
            "target": self.target,
            "params": self.params,
            "dry_run": self.dry_run,
            "state": self.state,
            "reason": self.reason,
            "result": self.result,
            "verify": self.verify,
            "created_at": at(self.created_at),
            "started_at": at(self.started_at),
            "finished_at": at(self.finished_at),
        }


def action_from_row(row: Any, when: Callable[[Any], datetime]) -> ActionRecord:
    """An actions row of either backend; `when` reads its time columns."""
    params, checks = params_from_json(row["params"])
    return ActionRecord(
        id=row["id"],
        decision_id=row["decision_id"],
        policy=row["policy"],
        type=row["type"],
        target=row["target"],
        params={name: redact(value) for name, value in params.items()},
        dry_run=bool(row["dry_run"]),
        state=row["state"],
        reason=row["reason"],
        result=dict(json.loads(row["result"] or "{}")),
        created_at=when(row["created_at"]),
        started_at=when(row["started_at"]) if row["started_at"] is not None else None,
        finished_at=when(row["finished_at"]) if row["finished_at"] is not None else None,
        verify=redacted(checks.to_json()) if checks is not None else None,
    )
