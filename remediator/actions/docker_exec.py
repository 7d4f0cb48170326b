"""`docker.exec` on the engine: the argument list run in each chosen container (as
`docker exec` does: create an exec instance, start it attached, read its output, inspect its
exit code), with the policy's user and timeout.

The command is the policy's argument list as rendered: the engine runs `Cmd` as argv,
with no shell. Each exec gets an API client of its own whose socket timeout covers the
command's, so a quiet command is not cut short by the engine client's 30 s read timeout,
and the wait is bounded on the event loop as well. The engine cannot kill an exec
instance: a command that outlives its timeout is reported as still running, with its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import docker
import docker.errors
import requests.exceptions

from remediator.actions.base import ActionResult
from remediator.actions.blocking import run_blocking
from remediator.core.durations import format_duration
from remediator.core.kinds.docker_exec import OUTPUT_KEPT, ExecSpec
from remediator.log import redact, secret_margin

# What the reason quotes of the kept output (the record keeps OUTPUT_KEPT bytes).
REASON_HEAD = 200
_HEADER = 8  # of each frame of an attached, non-tty stream
# Beyond the command's timeout: time for the engine to answer the exec calls themselves.
_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Ran:
    """One container's exec: its exit code (None: did not finish in time), the tail of its
    output (stdout and stderr as they came, secrets redacted), and the pid if still running."""

    name: str
    exit_code: int | None
    output: str
    pid: int | None = None


def _tail(chunks: Sequence[bytes]) -> str:
    """The last OUTPUT_KEPT bytes, redacted before the cut (a secret the cut would halve is
    masked whole, then cut away)."""
    text = redact(b"".join(chunks).decode("utf-8", "replace"))
    return text.encode()[-OUTPUT_KEPT:].decode("utf-8", "ignore")


def run_in(api: docker.APIClient, container_id: str, name: str, spec: ExecSpec) -> Ran:
    """Worker thread: one exec, read to its end or to the deadline."""
    created = api.exec_create(
        container_id, list(spec.command), stdout=True, stderr=True, user=spec.user or ""
    )
    exec_id = str(created["Id"])
    deadline = time.monotonic() + spec.timeout
    # Kept: the tail, plus room for the longest secret, so redaction (in _tail) sees every
    # secret whole before the cut to OUTPUT_KEPT.
    room = OUTPUT_KEPT + secret_margin()
    chunks: list[bytes] = []
    kept = 0
    finished = True
    raw = api.exec_start(exec_id, socket=True)
    try:
        for chunk in _frames(raw, deadline):
            chunks.append(chunk)
            kept += len(chunk)
            while kept - len(chunks[0]) >= room:  # only the tail is kept
                kept -= len(chunks.pop(0))
    except TimeoutError:
        finished = False
    finally:
        _close(raw)
    state: dict[str, Any] = api.exec_inspect(exec_id)
    if state.get("Running"):
        return Ran(name, None, _tail(chunks), pid=state.get("Pid") or None)
    code = state.get("ExitCode")
    if not finished and code is None:
        return Ran(name, None, _tail(chunks))
    return Ran(name, int(code) if code is not None else -1, _tail(chunks))


def _frames(raw: Any, deadline: float) -> Iterator[bytes]:
    """The payloads of the engine's multiplexed stream (8-byte header: stream, 0, 0, 0, size
    big-endian), stdout and stderr as they came. Read here rather than by docker-py, whose
    reader polls with no timeout: TimeoutError at `deadline`."""
    sock = raw if hasattr(raw, "recv") else raw._sock
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            return
        buffer += data
        while len(buffer) >= _HEADER:
            size = int.from_bytes(buffer[4:_HEADER], "big")
            if len(buffer) < _HEADER + size:
                break
            yield buffer[_HEADER : _HEADER + size]
            buffer = buffer[_HEADER + size :]


def _close(raw: Any) -> None:
    """The exec's hijacked connection: its response, the socket file and the socket."""
    for part in (getattr(raw, "_response", None), raw, getattr(raw, "_sock", None)):
        close = getattr(part, "close", None)
        if close is not None:
            with contextlib.suppress(OSError):
                close()


def exec_client(base: docker.DockerClient, url: str, spec: ExecSpec) -> docker.APIClient:
    """Worker thread: an API client for one exec, its read timeout past the command's."""
    return docker.APIClient(
        base_url=url,
        version=base.api.api_version,
        timeout=cast(int, spec.timeout + _MARGIN),
    )


def outcome(spec: ExecSpec, runs: Sequence[Ran], errors: Sequence[str]) -> ActionResult:
    """The action's result from every container's run: success only when each exited with
    `expect_exit`; the record keeps each one's exit code and output tail."""
    shown = redact(shlex.join(spec.command))
    facts: dict[str, str] = {"command": shown}
    parts: list[str] = list(errors)
    ok = not errors
    for ran in runs:
        facts[f"{ran.name}.output"] = ran.output
        if ran.exit_code is None:
            ok = False
            still = f" (still running, pid {ran.pid})" if ran.pid else ""
            facts[f"{ran.name}.exit_code"] = "timeout"
            parts.append(
                f"{ran.name}: no exit within {format_duration_s(spec.timeout)}{still}"
                + _head(ran.output)
            )
            continue
        facts[f"{ran.name}.exit_code"] = str(ran.exit_code)
        if ran.exit_code != spec.expect_exit:
            ok = False
            parts.append(
                f"{ran.name}: exit {ran.exit_code}, expected {spec.expect_exit}" + _head(ran.output)
            )
        else:
            parts.append(f"{ran.name}: exit {ran.exit_code}" + _head(ran.output))
    detail = redact(f"ran {shown}: " + "; ".join(parts))
    # A command that failed is a failed action, not evidence against the remedy: only a
    # verify check (http, prometheus) that fails trips the breaker.
    return ActionResult(ok=ok, verified=True, detail=detail, facts=facts)


def _head(output: str) -> str:
    text = " ".join(output.split())
    if not text:
        return ""
    return "; output: " + (text if len(text) <= REASON_HEAD else text[: REASON_HEAD - 3] + "...")


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


async def run_all(
    base: docker.DockerClient, url: str, found: Sequence[tuple[str, str]], spec: ExecSpec
) -> ActionResult:
    """Every chosen container (id, name) at once. Nothing here is retried: once an exec may
    have started, a retry could run the command twice."""
    api = await run_blocking(exec_client, base, url, spec)
    try:
        results = await asyncio.gather(
            *(
                asyncio.wait_for(
                    run_blocking(run_in, api, cid, name, spec), timeout=spec.timeout + _MARGIN
                )
                for cid, name in found
            ),
            return_exceptions=True,
        )
    finally:
        await run_blocking(api.close)
    runs: list[Ran] = []
    errors: list[str] = []
    for (_, name), result in zip(found, results, strict=True):
        if isinstance(result, Ran):
            runs.append(result)
        elif isinstance(result, TimeoutError):
            runs.append(Ran(name, None, ""))
        elif isinstance(result, docker.errors.NotFound):
            errors.append(f"{name}: container not found")
        elif isinstance(result, docker.errors.APIError):
            errors.append(f"{name}: {_api_text(result)}")
        elif isinstance(result, requests.exceptions.RequestException):
            errors.append(f"{name}: lost the docker engine at {url}: {type(result).__name__}")
        elif isinstance(result, Exception):
            errors.append(f"{name}: {type(result).__name__}: {result}")
        else:
            raise result
    return outcome(spec, runs, errors)


def _api_text(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return f"{str(explanation or exc).strip()} (HTTP {exc.status_code})"
