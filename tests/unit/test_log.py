"""The log redactor: a registered secret never reaches a log line, whatever carries it."""

from __future__ import annotations

import json

import pytest
import structlog

from remediator import log


def test_registered_secrets_are_masked_in_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info")  # inside the test: the logger binds the stderr capsys captures
    log.register_secrets(["s3cr3t-token-value", "xy"])  # too short to mask safely: ignored
    try:
        log.get("test").warning(
            "webhook.rejected", reason="Authorization: Bearer s3cr3t-token-value", who="xy"
        )
    finally:
        log.register_secrets([])
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "webhook.rejected"
    assert line["reason"] == "Authorization: Bearer ***"
    assert line["who"] == "xy"
    assert "timestamp" in line and line["level"] == "warning"
