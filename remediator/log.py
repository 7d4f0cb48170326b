"""structlog JSON logging with stable event names, and a last-line secret redactor.

Secrets are SecretStr in the config and never passed to a logger on purpose; the redactor
masks any that reach a log line anyway (an exception message quoting a header, say), and
`redact` is applied to every reason before it is stored or shown. Records of the standard
`logging` module (aiohttp, asyncio, the docker and kubernetes clients) go through the same
processors, so no library line bypasses the redactor or breaks the JSON stream.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_secrets: tuple[str, ...] = ()
# scheme://user:password@host -> scheme://***@host: a URL's userinfo is a credential.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*)@")


def register_secrets(values: Iterable[str]) -> None:
    global _secrets  # noqa: PLW0603  # one process-wide redaction list, set once at start
    # Very short values would mask ordinary words; config validation already rejects empties.
    _secrets = tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))


def secret_margin() -> int:
    """The longest registered secret's length: what a tail must keep beyond its cut so that
    redaction sees every secret in it whole."""
    return max((len(secret.encode()) for secret in _secrets), default=0)


def redact(value: str) -> str:
    """`value` with every registered secret masked and every URL's userinfo stripped."""
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, "***")
    if "@" in value:
        value = _USERINFO.sub(r"\g<scheme>***@", value)
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, list | tuple):
            event[key] = [redact(v) if isinstance(v, str) else v for v in value]
    return event


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]


_level = logging.INFO  # what configure() set: enabled() answers without building anything


def enabled(level: str) -> bool:
    """Whether events at `level` are logged: a caller checks before gathering what only a
    debug line needs."""
    return bool(logging.getLevelName(level.upper()) >= _level)


def configure(level: str = "info") -> None:
    global _level  # noqa: PLW0603  # one process-wide level, set at start
    numeric = logging.getLevelName(level.upper())
    _level = numeric
    # The standard library's records (aiohttp, asyncio, drivers) are rendered by structlog:
    # the same JSON shape and the same redactor as our own events.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *_processors(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    # Library debug lines (the SQLite driver logs every statement) are noise even at debug.
    root.setLevel(max(numeric, logging.INFO))
    structlog.configure(
        processors=[*_processors(), structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached by structlog: a logger re-reads the configuration, so tests can re-point
        # stderr. Logger (below) caches one bound logger per configuration instead.
        cache_logger_on_first_use=False,
    )
    global _generation  # noqa: PLW0603  # which configuration the Loggers' caches are of
    _generation += 1


_generation = 0


class Logger:
    """A named logger bound once per configuration: structlog's uncached proxy builds a new
    bound logger on every call (about 6 us, even for a line the level filters out), and the
    decision path logs once per decision."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._of = -1
        self._bound: structlog.typing.FilteringBoundLogger | None = None

    def _logger(self) -> structlog.typing.FilteringBoundLogger:
        if self._bound is None or self._of != _generation:
            self._bound = structlog.get_logger(self._name).bind()
            self._of = _generation
        return self._bound

    def bind(self, **values: Any) -> structlog.typing.FilteringBoundLogger:
        return self._logger().bind(**values)

    def debug(self, event: str, **values: Any) -> None:
        self._logger().debug(event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._logger().info(event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._logger().warning(event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._logger().error(event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._logger().exception(event, **values)


def get(name: str) -> Logger:
    return Logger(name)
