"""Where the daemon listens and who can reach it there (loopback, endpoints left open), and
where its state lives (the `state` URL). Config is only a type here, never imported at run
time: config.py's validators call these parsers.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from remediator.config import Config


@dataclass(frozen=True, slots=True)
class StateTarget:
    kind: Literal["sqlite", "postgresql"]
    path: str  # the SQLite file, or the PostgreSQL URL as given


def parse_state_url(url: str, base: Path) -> StateTarget:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///./x.db and sqlite:///rel.db are relative; sqlite:////abs/x.db is absolute.
        raw = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not raw:
            raise ValueError("sqlite state URL needs a file path, e.g. sqlite:///./remediator.db")
        if raw == ":memory:":
            return StateTarget("sqlite", raw)
        path = Path(raw)
        return StateTarget("sqlite", str(path if path.is_absolute() else base / path))
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError(
                "postgresql state URL needs a host, e.g. postgresql://user@db:5432/name"
            )
        return StateTarget("postgresql", url)
    raise ValueError(
        f"unsupported state URL scheme {parts.scheme!r}; use sqlite:///PATH or postgresql://..."
    )


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104  # ":9595" means all interfaces, as in Go


ENDPOINTS = (
    ("/webhook/alertmanager", "alertmanager"),
    ("/webhook/datadog", "datadog"),
    ("/api/v1 (writes) and /-/reload", "api"),
)


def open_endpoints(config: Config) -> list[tuple[str, str]]:
    """(endpoint, auth key) of every endpoint with no auth block at all."""
    return [(ep, key) for ep, key in ENDPOINTS if getattr(config.auth, key) is None]


def network_problems(config: Config) -> list[str]:
    """`auth.KEY: message` for each endpoint left open on a non-loopback listen address.

    On loopback only local processes can reach it, and `serve` warns; on any other address
    one unauthenticated POST could act, so an open endpoint must be said out loud.
    """
    host, _ = parse_listen(config.listen)
    if is_loopback(host):
        return []
    return [
        f"auth.{key}: {endpoint} has no auth while listening on {config.listen}; set "
        f"credentials, or auth.{key}: {{allow_unauthenticated: true}} to leave it open"
        for endpoint, key in open_endpoints(config)
    ]


@functools.lru_cache(maxsize=64)  # asked per request with the Host header's name
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve to anything
