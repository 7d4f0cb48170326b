"""The audit API's answers: pages of the decision log and of the operator-events journal, and
one decision in full. Handlers parse (core/audit.py), read the store and shape JSON; the
shaping is pure (`decision_json`). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from aiohttp import web

from remediator.core.approval import Approval
from remediator.core.audit import (
    AuditQueryError,
    OperatorEvent,
    parse_decision_query,
    parse_event_query,
    parse_id,
)
from remediator.store.records import ActionRecord, DecisionRecord
from remediator.store.roles.approvals import SYSTEM
from remediator.web.keys import AUDIT

# Acts whose entry is already in the decision's approval history.
_APPROVAL_ACTS = ("approve", "deny")


def _refused(exc: AuditQueryError) -> web.Response:
    return web.json_response({"error": str(exc), "param": exc.param}, status=400)


def approval_json(a: Approval) -> dict[str, object]:
    return {
        "id": a.id,
        "policy": a.policy,
        "action": a.action,
        "target": a.target,
        "state": a.state.value,
        "requested_at": a.requested_at.isoformat(),
        "expires_at": a.expires_at.isoformat(),
        "approved_by": list(a.approved_by),
        "required": a.required,
        "decided_by": a.decided_by,  # who approved last, or denied; None: nobody (yet)
    }


class _Event(NamedTuple):
    time: datetime
    who: str
    event: str
    detail: str

    def to_api(self) -> dict[str, str]:
        return {
            "time": self.time.isoformat(),
            "who": self.who,
            "event": self.event,
            "detail": self.detail,
        }


def _action_json(decision: DecisionRecord, action: ActionRecord | None) -> dict[str, object]:
    """The decision's action: what it was to do (always), and what it did (when it ran)."""
    shown: dict[str, object] = {
        "type": decision.action,
        "target": decision.target,
        "step": decision.step,
    }
    if action is None:
        keys = ("id", "params", "dry_run", "state", "reason", "result", "verify")
        times = ("created_at", "started_at", "finished_at")
        return shown | dict.fromkeys((*keys, *times))
    return shown | action.to_api() | {"type": action.type, "target": action.target}


def _first_outcome(
    decision: DecisionRecord, action: ActionRecord | None, approval: Approval | None
) -> str:
    """What the decision said when it was made (its row shows what it says now)."""
    if approval is not None:
        return "awaiting_approval"
    if action is not None:
        return "dry_run" if action.dry_run else "executing"
    return decision.outcome


def decision_json(
    decision: DecisionRecord,
    actions: Sequence[ActionRecord],
    approvals: Sequence[tuple[Approval, Sequence[Mapping[str, str]]]],
    acts: Sequence[OperatorEvent],
) -> dict[str, object]:
    """One decision with its action, its approval and that approval's history (who, when,
    what), and every event in time order: decided, each approval act, the action's start
    and end, any other operator act on it."""
    action = actions[-1] if actions else None
    approval = approvals[0][0] if approvals else None
    first = _first_outcome(decision, action, approval)
    detail = first if first != decision.outcome else f"{first}: {decision.reason}"
    events = [_Event(decision.time, SYSTEM, "decided", detail)]
    shown_approval: dict[str, object] | None = None
    for request, history in approvals[:1]:
        entries = [
            _Event(datetime.fromisoformat(h["time"]), h["who"], h["event"], h["detail"])
            for h in history
        ]
        events += entries
        shown_approval = approval_json(request) | {"history": [e.to_api() for e in entries]}
    if action is not None and action.started_at is not None:
        events.append(_Event(action.started_at, SYSTEM, "action_started", action.type))
    if action is not None and action.finished_at is not None:
        done = f"{action.state}: {action.reason}"
        events.append(_Event(action.finished_at, SYSTEM, "action_finished", done))
    events += [
        _Event(act.time, act.who, act.act, act.detail)
        for act in acts
        if act.act not in _APPROVAL_ACTS
    ]
    events.sort(key=lambda e: e.time)  # stable: equal times keep the order above
    return decision.to_api() | {
        "step": decision.step,
        "episode": decision.episode,
        "action": _action_json(decision, action),
        "approval": shown_approval,
        "events": [e.to_api() for e in events],
    }


async def decisions(request: web.Request) -> web.Response:
    """A page of the log; the last id of a page is the `before` of the next."""
    try:
        query = parse_decision_query(request.query.items())
    except AuditQueryError as exc:
        return _refused(exc)
    records = await request.app[AUDIT].decisions(query)
    return web.json_response({"decisions": [r.to_api() for r in records]})


async def decision(request: web.Request) -> web.Response:
    try:
        decision_id = parse_id(request.match_info["id"])
    except AuditQueryError:
        return web.json_response(
            {"error": "a decision id is a positive integer", "param": "id"}, status=400
        )
    store = request.app[AUDIT]
    found = await store.decision(decision_id)
    if found is None:
        return web.json_response({"error": "no such decision"}, status=404)
    approvals = [
        (request_, await store.approval_events(request_.id))
        for request_ in await store.approvals_of(decision_id)
    ]
    body = decision_json(
        found,
        await store.actions_of(decision_id),
        approvals,
        await store.operator_events_of(decision_id),
    )
    return web.json_response(body)


async def operator_events(request: web.Request) -> web.Response:
    """Who approved, denied, paused, resumed, reset or reloaded, newest first."""
    try:
        query = parse_event_query(request.query.items())
    except AuditQueryError as exc:
        return _refused(exc)
    found = await request.app[AUDIT].operator_events(query)
    return web.json_response({"events": [e.to_api() for e in found]})
