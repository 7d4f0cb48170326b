"""The log redactor: a registered secret never reaches a log line, whatever carries it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from remediator import log


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure() points the root logger at this test's captured stderr: undo it after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


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


def _last_line(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    line: dict[str, object] = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    return line


def test_standard_library_records_are_json_and_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiohttp, asyncio and the drivers log through `logging`: same shape, same redactor."""
    log.configure("info")
    log.register_secrets(["library-secret-9876"])
    try:
        logging.getLogger("aiohttp.client").error(
            "cannot reach %s with token %s", "http://u:pw@ci.example/x", "library-secret-9876"
        )
    finally:
        log.register_secrets([])
        structlog.reset_defaults()
    line = _last_line(capsys)
    assert line["level"] == "error" and line["logger"] == "aiohttp.client"
    assert line["event"] == "cannot reach http://***@ci.example/x with token ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET https://user:pw@host/x failed", "GET https://***@host/x failed"),
        ("postgresql://r:secret@db:5432/r", "postgresql://***@db:5432/r"),
        ("mail me at ops@example.com", "mail me at ops@example.com"),
        ("http://host/path?a=b@c", "http://host/path?a=b@c"),
    ],
)
def test_redact_strips_url_userinfo(text: str, expected: str) -> None:
    assert log.redact(text) == expected


def test_debug_keeps_every_line_json_and_library_debug_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--log-level debug is for our own events: the SQLite driver logs every statement at
    debug, which would flood the stream; its warnings still come through, as JSON."""
    log.configure("debug")
    try:
        assert log.enabled("debug") and log.enabled("info")
        logging.getLogger("aiosqlite").debug("executing %s", "SELECT 1")
        logging.getLogger("asyncio").debug("poll took 1ms")
        log.get("remediator.matching").debug("alert.tried", tried=1)
        logging.getLogger("aiosqlite").warning("connection closed")
    finally:
        log.configure("info")
        structlog.reset_defaults()
    assert not log.enabled("debug") and log.enabled("warning")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("alert.tried", "debug"),
        ("connection closed", "warning"),
    ]
