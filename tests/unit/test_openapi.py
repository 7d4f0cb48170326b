"""The OpenAPI document as built from a config: valid OpenAPI 3.1 for every auth shape, each
operation's security following the `auth` block, and enumerations equal to the code's own."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import OpenAPIV31SpecValidator

from remediator.config_file import parse_config
from remediator.core.approval import ApprovalState
from remediator.core.audit import ACTS
from remediator.core.outcomes import Outcome
from remediator.web.openapi import document

FULL = """
auth:
  alertmanager: {bearer_token: am}
  datadog: {header: X-DD-Token, token: dd}
  api: {tokens: {alice: a}, read: true}
"""
BASIC = """
auth:
  alertmanager: {basic: {username: am, password: pw}}
  api: {bearer_token: t}
"""


def _doc(text: str) -> dict[str, Any]:
    return document(parse_config(text, "remediator.yaml", {}))


def _security(doc: dict[str, Any], path: str, method: str = "post") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["paths"][path][method]["security"]
    return found


def test_an_open_daemon_gets_a_valid_openapi_31_document() -> None:
    """With auth (the security requirements filled in) the served one is validated in
    tests/integration/test_openapi.py; one validation takes a second."""
    doc = _doc("{}")
    OpenAPIV31SpecValidator(doc).validate()
    assert doc["openapi"].startswith("3.1.")


def test_an_open_loopback_daemon_documents_no_credentials_and_no_401() -> None:
    doc = _doc("{}")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path == "/slack/interactions":  # always signed
                continue
            assert operation["security"] == [], (path, method)
            assert "401" not in operation["responses"], (path, method)


def test_security_follows_each_auth_block() -> None:
    full, basic = _doc(FULL), _doc(BASIC)
    assert _security(full, "/webhook/alertmanager") == [{"alertmanagerBearer": []}]
    assert _security(basic, "/webhook/alertmanager") == [{"alertmanagerBasic": []}]
    assert _security(full, "/webhook/datadog") == [{"datadogToken": []}]
    assert full["components"]["securitySchemes"]["datadogToken"]["name"] == "X-DD-Token"
    assert _security(basic, "/webhook/datadog") == []
    for doc in (full, basic):
        assert _security(doc, "/api/v1/pause") == [{"apiToken": []}]
        assert _security(doc, "/-/reload") == [{"apiToken": []}]
        assert "401" in doc["paths"]["/api/v1/pause"]["post"]["responses"]
    # auth.api.read: every GET /api/v1/* needs a token, the description too
    assert _security(full, "/api/v1/decisions", "get") == [{"apiToken": []}]
    assert _security(full, "/api/v1/openapi.json", "get") == [{"apiToken": []}]
    assert _security(basic, "/api/v1/decisions", "get") == []
    assert _security(full, "/healthz", "get") == []


def test_enumerations_are_the_codes_own() -> None:
    schemas = _doc("{}")["components"]["schemas"]
    decision = schemas["Decision"]["properties"]
    assert decision["outcome"]["enum"] == [o.value for o in Outcome]
    assert schemas["Verdict"]["properties"]["outcome"]["enum"] == [o.value for o in Outcome]
    assert schemas["Approval"]["properties"]["state"]["enum"] == [s.value for s in ApprovalState]
    assert schemas["OperatorEvent"]["properties"]["act"]["enum"] == list(ACTS)
    assert decision["source"]["enum"] == ["alertmanager", "datadog"]
    assert schemas["AlertmanagerMessage"]["required"] == ["alerts"]


def test_an_app_without_a_reloader_is_described_without_reload() -> None:
    config = parse_config("{}", "remediator.yaml", {})
    assert "/-/reload" in document(config)["paths"]
    assert "/-/reload" not in document(config, reload=False)["paths"]
