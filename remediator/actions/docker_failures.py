"""How a docker-py call failed: never sent, timed out, or lost below HTTP (or answered), and
the short texts that say so. It makes no engine calls and decides no retries itself.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from enum import Enum

import docker.errors
import requests.exceptions
import urllib3.exceptions

# Exceptions raised while opening the connection: the request bytes were never sent.
_NOT_SENT: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    FileNotFoundError,
    PermissionError,
    socket.gaierror,
    urllib3.exceptions.ConnectTimeoutError,  # also NewConnectionError, NameResolutionError
    requests.exceptions.ConnectTimeout,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,
)
_TRANSPORT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)


class Failure(Enum):
    NOT_SENT = "not_sent"
    TIMEOUT = "timeout"
    TRANSPORT = "transport"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception linked to it by cause, context, args or urllib3's `reason`."""
    seen: set[int] = set()
    queue = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        queue.extend(item for item in linked if isinstance(item, BaseException))


def transport_failure(exc: BaseException) -> Failure | None:
    """How a docker-py call failed below HTTP, or None if it got an answer (or is not I/O)."""
    if isinstance(exc, docker.errors.APIError):
        return None
    chain = list(_chain(exc))
    if any(isinstance(item, _NOT_SENT) for item in chain):
        return Failure.NOT_SENT
    if any(isinstance(item, _TIMEOUTS) for item in chain):
        return Failure.TIMEOUT
    if any(isinstance(item, _TRANSPORT) for item in chain):
        return Failure.TRANSPORT
    return None


def short_cause(exc: BaseException) -> str:
    """The innermost OS-level reason (`Connection refused`), else the message, kept short."""
    reasons = [
        item.strerror
        for item in _chain(exc)
        if isinstance(item, OSError) and isinstance(item.strerror, str) and item.strerror
    ]
    text = reasons[-1] if reasons else (str(exc) or type(exc).__name__)
    return text if len(text) <= 200 else text[:197] + "..."


def close_abandoned_sockets(exc: BaseException) -> None:
    # docker-py's UnixHTTPConnection.connect() drops its socket without closing it when the
    # connect fails; close it now so the fd does not linger until GC (with a ResourceWarning).
    for item in _chain(exc):
        tb = item.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            sock = frame.f_locals.get("sock")
            if frame.f_code.co_name == "connect" and isinstance(sock, socket.socket):
                sock.close()
            tb = tb.tb_next


def api_explanation(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    text = str(explanation or exc).strip()
    status = exc.status_code
    return f"{text} (HTTP {status})" if status is not None else text
