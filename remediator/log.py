"""structlog JSON logging with stable event names, and a last-line secret redactor.

Secrets are SecretStr in the config and never passed to a logger on purpose; the redactor
masks any that reach a log line anyway (an exception message quoting a header, say).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_secrets: tuple[str, ...] = ()


def register_secrets(values: Iterable[str]) -> None:
    global _secrets  # noqa: PLW0603  # one process-wide redaction list, set once at start
    # Very short values would mask ordinary words; config validation already rejects empties.
    _secrets = tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))


def _mask(value: str) -> str:
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, "***")
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _secrets:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = _mask(value)
    return event


def configure(level: str = "info") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached: a logger re-reads the configuration, so tests can re-point stderr.
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
