"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the bodies the HTTP API sends and takes.

Enumerations come from the code that produces the values (outcomes, approval states, operator
acts, alert source and status) and the webhook body from its pydantic model, so they cannot
drift; the answers' shapes are written here, closed (`additionalProperties: false`), and the
integration tests validate every real answer against them.
"""

from __future__ import annotations

from typing import Any, get_args

from remediator.core.alert import Source, Status
from remediator.core.approval import ApprovalState
from remediator.core.audit import ACTS, MAX_ID, MAX_LIMIT
from remediator.core.outcomes import Outcome
from remediator.ingest.alertmanager import AMMessage
from remediator.ingest.datadog import ALIASES

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
STRS: Schema = {"type": "array", "items": STR}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def closed(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these keys (all required but `optional`): a key the code adds
    or drops without saying so here fails the response tests."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _enum(values: Any, description: str) -> Schema:
    return {"type": "string", "enum": [str(v) for v in values], "description": description}


OUTCOME = _enum(
    Outcome,
    "A decision's outcome; `executing` is shown while its action runs, then replaced.",
)
APPROVAL_STATE = _enum(ApprovalState, "An approval's state.")
ACT = _enum(ACTS, "An operator's act.")
SOURCE = _enum(get_args(Source), "The sender of the alert.")
STATUS = _enum(get_args(Status), "The alert's status.")
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}

_DECISION: dict[str, Schema] = {
    "id": ID,
    "time": TIME,
    "policy": STR,
    "source": SOURCE,
    "alertname": STR,
    "fingerprint": STR,
    "action": {"type": "string", "description": "The action type, e.g. docker.restart."},
    "target": STR,
    "outcome": OUTCOME,
    "reason": STR,
    "approval_id": nullable(STR),
    "repeats": {"type": "integer", "minimum": 0},
}
_APPROVAL: dict[str, Schema] = {
    "id": STR,
    "policy": STR,
    "action": STR,
    "target": STR,
    "state": APPROVAL_STATE,
    "requested_at": TIME,
    "expires_at": TIME,
    "approved_by": {**STRS, "description": "Identities that approved: Slack IDs, api:NAME."},
    "required": {"type": "integer", "minimum": 1},
    "decided_by": nullable(STR),
}
_EVENT = closed({"time": TIME, "who": STR, "event": STR, "detail": STR})
_REDECIDED: dict[str, Schema] = {
    "redecided": {
        "type": "array",
        "items": ref("Verdict"),
        "description": "Held episodes this act released, decided again at once.",
    },
    "redecide_error": {
        "type": "string",
        "description": "Present when the store failed while re-deciding; the act itself holds.",
    },
}


def _action_detail() -> Schema:
    """A decision's action: what it was to do, and (null until it ran) what it did."""
    ran: dict[str, Schema] = {
        "id": nullable(INT),
        "params": nullable({"type": "object", "additionalProperties": STR}),
        "dry_run": nullable(BOOL),
        "state": nullable(STR),
        "reason": nullable(STR),
        "result": nullable({"type": "object"}),
        "verify": nullable({"type": "object"}),
        "created_at": nullable(TIME),
        "started_at": nullable(TIME),
        "finished_at": nullable(TIME),
    }
    return closed({"type": STR, "target": STR, "step": nullable(INT), **ran})


def _datadog_body() -> Schema:
    names = {
        alias: {"description": f"read as `{field}`"}
        for field, aka in ALIASES.items()
        for alias in aka
    }
    return {
        "type": "object",
        "properties": names,
        "description": "deploy/datadog-webhook-payload.json rendered by Datadog, or Datadog's "
        "default payload; a body without what a decision needs is 400 naming the fields.",
    }


def schemas() -> dict[str, Schema]:
    """Every component schema of the document, by name."""
    webhook = AMMessage.model_json_schema(ref_template=REF, mode="validation")
    found: dict[str, Schema] = webhook.pop("$defs", {})
    found |= {
        "AlertmanagerMessage": webhook,
        "DatadogBody": _datadog_body(),
        "Error": closed(
            {
                "error": STR,
                "param": {"type": "string", "description": "The query parameter at fault."},
                "problems": {**STRS, "description": "Every problem of a refused reload."},
            },
            optional=("param", "problems"),
        ),
        "Verdict": closed(
            {
                "id": ID,
                "policy": STR,
                "alertname": STR,
                "fingerprint": STR,
                "status": STATUS,
                "action": STR,
                "target": STR,
                "outcome": OUTCOME,
                "reason": STR,
                "approval_id": nullable(STR),
            }
        ),
        "WebhookAnswer": closed(
            {
                "alerts": {"type": "integer", "minimum": 0},
                "decisions": {"type": "array", "items": ref("Verdict")},
            }
        ),
        "Decision": closed(_DECISION),
        "Decisions": closed({"decisions": {"type": "array", "items": ref("Decision")}}),
        "DecisionDetail": closed(
            _DECISION
            | {
                "step": nullable(INT),
                "episode": STR,
                "action": _action_detail(),
                "approval": nullable(closed(_APPROVAL | {"history": _list(_EVENT)})),
                "events": _list(_EVENT),
            }
        ),
        "Approval": closed(_APPROVAL),
        "Approvals": closed({"approvals": {"type": "array", "items": ref("Approval")}}),
        "ApprovalDetail": closed(_APPROVAL | {"events": _list(_EVENT)}),
        "ApprovalDecided": closed(
            {"id": STR, "state": APPROVAL_STATE, "approved_by": STRS, "by": STR}
        ),
        "OperatorEvent": closed(
            {
                "id": ID,
                "time": TIME,
                "who": STR,
                "act": ACT,
                "policy": nullable(STR),
                "decision_id": nullable(ID),
                "approval_id": nullable(STR),
                "detail": STR,
            }
        ),
        "OperatorEvents": closed({"events": _list(ref("OperatorEvent"))}),
        "Paused": closed({"paused": {"const": True}, "by": STR}),
        "Resumed": closed(
            {"paused": {"const": False}, "by": STR, **_REDECIDED}, optional=("redecide_error",)
        ),
        "Reset": closed(
            {
                "policy": STR,
                "tripped": {"const": False},
                "cleared": {
                    "type": "array",
                    "items": {"enum": ["breaker", "cooldown", "rate_limit"]},
                },
                "by": STR,
                **_REDECIDED,
            },
            optional=("redecide_error",),
        ),
        "Reloaded": closed(
            {
                "status": {"const": "applied"},
                "policies": {"type": "integer", "minimum": 0},
                "added": STRS,
                "removed": STRS,
                "restart_required": {**STRS, "description": "Changed keys kept until restart."},
                "cancelled_approvals": STRS,
            }
        ),
        "Health": closed(
            {
                "status": {"const": "ok"},
                "paused": BOOL,
                "tripped": STRS,
                "running_actions": {"type": "integer", "minimum": 0},
                "backends": {"type": "object", "additionalProperties": STR},
            }
        ),
        "Ready": closed({"status": {"const": "ready"}, "policies": {"type": "integer"}}),
    }
    return found


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}
