"""The OpenAPI 3.1 description of every route the daemon serves (`GET /api/v1/openapi.json`).

Built once at start from the config in force, so each operation's security says what this
daemon checks (auth is a restart-only key; the Datadog header name is configurable). Bodies
are in api_schemas.py, `/api/v1` in api_paths.py. Tests validate it with
openapi-spec-validator, compare its operations with the aiohttp router both ways, and validate
real answers against it.
"""

from __future__ import annotations

from typing import Any

from remediator import __version__
from remediator.config import Config
from remediator.web.api_paths import (
    TEXT,
    TOO_LARGE,
    Requirement,
    answer,
    api_paths,
    body,
    error,
    op,
)
from remediator.web.api_schemas import STR, Schema, ref, schemas

OPEN: Requirement = []  # no security requirement


def _security(config: Config) -> dict[str, Requirement]:
    """Each group of operations' requirement, as this daemon's `auth` block sets it."""
    am, dd, api = config.auth.alertmanager, config.auth.datadog, config.auth.api
    needs_api = api is not None and not api.allow_unauthenticated
    if am is None or am.allow_unauthenticated:
        alertmanager = OPEN
    else:
        alertmanager = [{"alertmanagerBasic" if am.basic else "alertmanagerBearer": []}]
    return {
        "alertmanager": alertmanager,
        "datadog": OPEN if dd is None or dd.allow_unauthenticated else [{"datadogToken": []}],
        "write": [{"apiToken": []}] if needs_api else OPEN,
        "read": [{"apiToken": []}] if needs_api and api is not None and api.read else OPEN,
        "slack": [{"slackSignature": []}],
    }


def _schemes(config: Config) -> dict[str, Schema]:
    datadog = config.auth.datadog
    return {
        "alertmanagerBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "auth.alertmanager.bearer_token (Alertmanager's "
            "http_config.authorization)",
        },
        "alertmanagerBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "auth.alertmanager.basic",
        },
        "datadogToken": {
            "type": "apiKey",
            "in": "header",
            "name": datadog.header if datadog else "X-Remediator-Token",
            "description": "auth.datadog.token in the webhook's custom header",
        },
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "one of auth.api.tokens: the caller acts as api:NAME",
        },
        "slackSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Slack-Signature",
            "description": "Slack's v0 signature of the raw body with X-Slack-Request-Timestamp "
            "(5-minute window)",
        },
    }


def _intake_paths(sec: dict[str, Requirement]) -> dict[str, Schema]:
    """The webhooks, Slack's clicks, reload, metrics and health."""
    webhook = {
        200: answer("WebhookAnswer", "every alert decided and durably recorded"),
        400: error("malformed body: one malformed alert rejects it whole, nothing is decided"),
        413: TOO_LARGE,
        503: error("the state store is unavailable or the daemon is shutting down; retry"),
    }
    slack_form = {"type": "object", "properties": {"payload": STR}, "required": ["payload"]}
    return {
        "/webhook/alertmanager": {
            "post": op(
                "Alertmanager webhook (v4; Grafana's version 1 too)",
                sec["alertmanager"],
                webhook,
                request=body(ref("AlertmanagerMessage"), "the webhook body", required=True),
                json_post=True,
            )
        },
        "/webhook/datadog": {
            "post": op(
                "Datadog webhook",
                sec["datadog"],
                webhook,
                request=body(ref("DatadogBody"), "the webhook body", required=True),
                json_post=True,
            )
        },
        "/slack/interactions": {
            "post": op(
                "Slack block_actions (Approve/Deny clicks), handled after the answer",
                sec["slack"],
                {
                    200: {"description": "acknowledged (a refused click is told in Slack)"},
                    400: error("not a block_actions payload"),
                    401: error("invalid Slack signature or timestamp"),
                    404: error("Slack is not configured"),
                    413: TOO_LARGE,
                },
                request=body(
                    slack_form,
                    "Slack's form",
                    required=True,
                    media="application/x-www-form-urlencoded",
                ),
            )
        },
        "/-/reload": {
            "post": op(
                "Re-read config and policies (as SIGHUP)",
                sec["write"],
                {
                    200: answer("Reloaded", "applied"),
                    400: error(
                        "invalid: `problems` lists every one and the running set stays; or "
                        "a body that is not JSON"
                    ),
                    413: TOO_LARGE,
                    503: error("shutting down: not reloading"),
                },
                request=body({}, "not used"),
                json_post=True,
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                OPEN,
                {200: {"description": "Prometheus text format", "content": TEXT}},
            )
        },
        "/healthz": {
            "get": op(
                "Liveness, with the kill switch, breakers and backends",
                OPEN,
                {200: answer("Health", "alive")},
            )
        },
        "/readyz": {
            "get": op(
                "Readiness: the state store answers and policies are loaded",
                OPEN,
                {
                    200: answer("Ready", "ready"),
                    503: error("the state store is unreachable, or shutting down"),
                },
            )
        },
    }


def document(config: Config, *, reload: bool = True) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a daemon running `config`; `reload`: whether it
    serves /-/reload (an app built without a reloader does not)."""
    security = _security(config)
    paths = _intake_paths(security) | api_paths(security["read"], security["write"])
    if not reload:
        del paths["/-/reload"]
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "remediator",
            "version": __version__,
            "description": "Alert webhooks in, guarded remediation out; the audit and control "
            "API. No input is answered 500: what the daemon cannot parse is 400.",
        },
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": _schemes(config)},
    }
