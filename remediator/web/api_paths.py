"""The OpenAPI document's operations: how one is written (403 everywhere, 401 where it needs
credentials, 415 where a POST takes only JSON), and those of `/api/v1` with their parameters
and every status they answer. Bodies' schemas are in api_schemas.py; security requirements
come from openapi.py, computed from the config in force."""

from __future__ import annotations

from remediator.web.api_schemas import ACT, ID, LIMIT, OUTCOME, STR, TIME, Schema, ref

Requirement = list[dict[str, list[str]]]

STORE_DOWN = "the state store is unavailable; nothing changed, retry"
TEXT = {"text/plain": {"schema": STR}}
FORBIDDEN = (
    "a foreign Origin (browsers are refused), or on a loopback listen address a Host "
    "that is not loopback (DNS rebinding)"
)
_UNSUPPORTED = "a body whose Content-Type is not application/json (an empty body needs none)"


def answer(schema_name: str, description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }


def error(description: str) -> Schema:
    return answer("Error", description)


TOO_LARGE = error("the body is larger than max_body_bytes (chunked bodies too)")


def body(
    schema: Schema, description: str, *, required: bool = False, media: str = "application/json"
) -> Schema:
    return {
        "required": required,
        "description": description,
        "content": {media: {"schema": schema}},
    }


def op(
    summary: str,
    security: Requirement,
    responses: dict[int, Schema],
    *,
    request: Schema | None = None,
    params: tuple[Schema, ...] = (),
    json_post: bool = False,
) -> Schema:
    """One operation; `json_post`: a POST under the browser guard's JSON-only prefixes."""
    answers = dict(responses)
    if security:
        answers.setdefault(401, error("missing or wrong credentials"))
    answers.setdefault(403, error(FORBIDDEN))
    if json_post:
        answers[415] = error(_UNSUPPORTED)
    found: Schema = {
        "summary": summary,
        "security": security,
        "responses": {str(code): answers[code] for code in sorted(answers)},
    }
    if params:
        found["parameters"] = list(params)
    if request is not None:
        found["requestBody"] = request
    return found


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _path(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


# aiohttp's router matches a path parameter only without `{`, `}` or `/` (decoded), and `.` or
# `..` is a dot segment, not a value: any other value names a route it does not serve.
SEGMENT = {"type": "string", "pattern": r"^(?!\.\.?$)[^{}/]+$"}


_PAGE = (
    _query("limit", LIMIT, "entries per page"),
    _query("policy", STR, "one policy"),
    _query("since", TIME, "only entries at or after this RFC 3339 time"),
    _query("before", ID, "an id: the page after it (the last id of a page)"),
)
_BAD_QUERY = error("an unknown, repeated or malformed query parameter (`param` names it)")
_DECIDE = {
    200: answer("ApprovalDecided", "the approval after this act"),
    400: error("a body that is not JSON"),
    403: error(f"the caller is not an approver of this policy, or {FORBIDDEN}"),
    404: error("no such approval"),
    409: error(
        "no longer pending (decided, expired, cancelled), or already approved by this identity"
    ),
    413: TOO_LARGE,
    503: error(STORE_DOWN),
}
_DECIDE_BODY = body(
    {"type": "object", "properties": {"by": {**STR, "description": "a note"}}},
    "optional; the approver is the token's identity, `by` is only a note",
)
_RESET_BODY = body(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limits": {"type": "boolean", "default": False},
            "by": {**STR, "description": "a note"},
        },
    },
    "optional; limits: true also clears the policy's cooldowns and rate window",
)


def api_paths(read: Requirement, write: Requirement) -> dict[str, Schema]:
    """`/api/v1`: the audit reads (`read`: a token only with auth.api.read) and the writes."""
    approval_id = (_path("id", SEGMENT),)
    ignored = body({}, "ignored")
    return {
        "/api/v1/decisions": {
            "get": op(
                "The decision log, newest first",
                read,
                {200: answer("Decisions", "one page"), 400: _BAD_QUERY, 503: error(STORE_DOWN)},
                params=(
                    *_PAGE,
                    _query("outcome", OUTCOME, "one outcome"),
                    _query("target", STR, "one target"),
                ),
            )
        },
        "/api/v1/decisions/{id}": {
            "get": op(
                "One decision with its action, approval history and events",
                read,
                {
                    200: answer("DecisionDetail", "the decision"),
                    400: error("the id is not a positive integer"),
                    404: error("no such decision"),
                    503: error(STORE_DOWN),
                },
                params=(_path("id", ID),),
            )
        },
        "/api/v1/operator-events": {
            "get": op(
                "Who approved, denied, paused, resumed, reset or reloaded, newest first",
                read,
                {
                    200: answer("OperatorEvents", "one page"),
                    400: _BAD_QUERY,
                    503: error(STORE_DOWN),
                },
                params=(
                    *_PAGE,
                    _query("who", STR, "api:NAME or a Slack user ID"),
                    _query("act", ACT, "one act"),
                ),
            )
        },
        "/api/v1/approvals": {
            "get": op(
                "Pending approvals",
                read,
                {200: answer("Approvals", "every pending approval"), 503: error(STORE_DOWN)},
            )
        },
        "/api/v1/approvals/{id}": {
            "get": op(
                "One approval (any state) with its history",
                read,
                {
                    200: answer("ApprovalDetail", "the approval"),
                    404: error("no such approval"),
                    503: error(STORE_DOWN),
                },
                params=approval_id,
            )
        },
        "/api/v1/approvals/{id}/approve": {
            "post": op(
                "Approve as the token's identity",
                write,
                _DECIDE,
                request=_DECIDE_BODY,
                params=approval_id,
                json_post=True,
            )
        },
        "/api/v1/approvals/{id}/deny": {
            "post": op(
                "Deny as the token's identity",
                write,
                _DECIDE,
                request=_DECIDE_BODY,
                params=approval_id,
                json_post=True,
            )
        },
        "/api/v1/pause": {
            "post": op(
                "The kill switch: every decision is `paused` until resumed",
                write,
                {200: answer("Paused", "paused"), 503: error(STORE_DOWN)},
                request=ignored,
                json_post=True,
            )
        },
        "/api/v1/resume": {
            "post": op(
                "Resume; held episodes are decided again at once",
                write,
                {200: answer("Resumed", "resumed"), 503: error(STORE_DOWN)},
                request=ignored,
                json_post=True,
            )
        },
        "/api/v1/policies/{name}/reset": {
            "post": op(
                "Close the policy's circuit breaker; held episodes are decided again at once",
                write,
                {
                    200: answer("Reset", "what was cleared"),
                    400: error("a body that is not such an object"),
                    404: error("no such policy"),
                    413: TOO_LARGE,
                    503: error(STORE_DOWN),
                },
                request=_RESET_BODY,
                params=(_path("name", SEGMENT),),
                json_post=True,
            )
        },
        "/api/v1/openapi.json": {
            "get": op(
                "This document",
                read,
                {
                    200: {
                        "description": "OpenAPI 3.1",
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["openapi", "paths"]}
                            }
                        },
                    }
                },
            )
        },
    }
