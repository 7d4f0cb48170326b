"""DockerExecutor against a real private dockerd: restart, compose lookup, verification, errors."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.actions.base import ActionRequest
from remediator.actions.docker import DockerExecutor
from remediator.core.durations import parse_duration
from remediator.core.verify import VerifyPlan
from remediator.errors import ActionError
from tests.fixtures.docker_engine import DockerEngine, engine_time_ns, healthcheck

pytestmark = pytest.mark.docker

NS = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def restart(params: Mapping[str, str], *, verify_within: str = "10s") -> ActionRequest:
    return ActionRequest(
        action_id=1,
        policy="test-policy",
        type="docker.restart",
        target=params.get("container", ""),
        params=dict(params),
        verify=VerifyPlan(parse_duration(verify_within)),
    )


def compose_labels(
    project: str, service: str, number: int, *, oneoff: bool = False
) -> dict[str, str]:
    return {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "True" if oneoff else "False",
        "com.docker.compose.config-hash": "0" * 64,
    }


def sent_at_ns(facts: Mapping[str, str]) -> int:
    sent = datetime.fromisoformat(facts["restart_sent_at"])
    return (sent - EPOCH) // timedelta(microseconds=1) * 1000


@pytest.fixture
def engine(docker_cleanup: DockerEngine) -> DockerEngine:
    return docker_cleanup


@pytest.fixture
async def executor(docker_engine: DockerEngine) -> AsyncIterator[DockerExecutor]:
    ex = DockerExecutor(docker_engine.url, poll_interval=0.1)
    yield ex
    await ex.close()


@pytest.fixture
async def nowhere(tmp_path: Path) -> AsyncIterator[DockerExecutor]:
    """An executor whose engine socket does not exist."""
    ex = DockerExecutor(f"unix://{tmp_path}/missing.sock", api_timeout=2.0, poll_interval=0.1)
    yield ex
    await ex.close()


class EngineProxy:
    """A unix-socket relay to the real engine that can hold restart requests back a while.

    A held restart reaches the engine only after the client's read timeout, as when an engine
    is slow to act: the client gives up while the engine still performs the restart.
    """

    def __init__(self, upstream: str, path: Path, *, hold_restart: float = 0.0) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.path = path
        self.hold_restart = hold_restart
        self.restarts_seen = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.path.unlink(missing_ok=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)

            async def to_engine(up: asyncio.StreamWriter) -> None:
                while chunk := await reader.read(65536):
                    if b"/restart" in chunk.split(b"\r\n", 1)[0]:
                        self.restarts_seen += 1
                        await asyncio.sleep(self.hold_restart)
                    up.write(chunk)
                    await up.drain()

            async def to_client() -> None:
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()

            pumps = [asyncio.create_task(to_engine(up_writer)), asyncio.create_task(to_client())]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            # Close both before awaiting either: a cancellation (stop()) during the first
            # wait_closed must not leave the other side open for the GC to warn about.
            sides = [side for side in (writer, up_writer) if side is not None]
            for side in sides:
                side.close()
            for side in sides:
                with contextlib.suppress(OSError):
                    await side.wait_closed()


async def test_restart_by_name_moves_started_at_and_verifies(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    engine.run("web-1")
    before = engine.started_at_ns("web-1")

    result = await executor.execute(restart({"container": "web-1", "timeout": "1s"}))

    after = engine.started_at("web-1")
    assert engine_time_ns(after) > before
    assert result.ok
    assert result.verified
    assert result.detail == f"restarted web-1; running since {after}"
    assert result.started_at is not None
    # Python keeps microseconds: the result must be the engine's nanoseconds, truncated.
    assert (result.started_at - EPOCH) // timedelta(microseconds=1) == engine_time_ns(after) // 1000
    assert result.facts["web-1.stop_timeout"] == "1s"
    # sleep ignores SIGTERM, so the stop lasted exactly the grace period we asked for.
    stopped_after = engine.finished_at_ns("web-1") - sent_at_ns(result.facts)
    assert 0.9 * NS <= stopped_after < 5 * NS


async def test_restart_by_id_reports_the_name(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    container = engine.run("web-2")
    assert container.id is not None
    before = engine.started_at_ns("web-2")

    result = await executor.execute(restart({"container": container.id, "timeout": "0s"}))

    assert result.ok
    assert result.verified
    assert engine.started_at_ns("web-2") > before
    assert result.detail.startswith("restarted web-2; running since ")
    assert result.facts["web-2.id"] == container.id


async def test_without_timeout_param_the_containers_stop_timeout_is_used(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    engine.run("web-3", stop_timeout=1)

    result = await executor.execute(restart({"container": "web-3"}))

    assert result.ok
    assert result.facts["web-3.stop_timeout"] == "1s"
    # docker-py's own default would send t=10 and the stop would last 10 s.
    stopped_after = engine.finished_at_ns("web-3") - sent_at_ns(result.facts)
    assert 0.9 * NS <= stopped_after < 5 * NS


async def test_compose_service_restarts_every_replica_and_nothing_else(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    engine.run("shop-checkout-1", labels=compose_labels("shop", "checkout", 1))
    replica_2 = engine.run("shop-checkout-2", labels=compose_labels("shop", "checkout", 2))
    engine.run("shop-checkout-run-1", labels=compose_labels("shop", "checkout", 1, oneoff=True))
    engine.run("shop-cart-1", labels=compose_labels("shop", "cart", 1))
    # A crashed replica is still a replica: it must be found (all=True) and started.
    replica_2.stop(timeout=0)
    assert engine.state("shop-checkout-2")["Status"] == "exited"
    before = {
        name: engine.started_at_ns(name)
        for name in ("shop-checkout-1", "shop-checkout-2", "shop-checkout-run-1", "shop-cart-1")
    }

    # Compose lower-cases project names; the policy may not.
    result = await executor.execute(
        restart({"compose_project": "Shop", "compose_service": "checkout", "timeout": "1s"})
    )

    assert result.ok
    assert result.verified
    for name in ("shop-checkout-1", "shop-checkout-2"):
        assert engine.started_at_ns(name) > before[name], name
        assert engine.state(name)["Status"] == "running"
        assert f"{name} running since {engine.started_at(name)}" in result.detail
    for name in ("shop-checkout-run-1", "shop-cart-1"):
        assert engine.started_at_ns(name) == before[name], f"{name} must not be restarted"
        assert name not in result.detail
    assert result.started_at is not None
    latest = max(engine.started_at_ns(n) for n in ("shop-checkout-1", "shop-checkout-2"))
    assert (result.started_at - EPOCH) // timedelta(microseconds=1) == latest // 1000


async def test_compose_replicas_are_restarted_concurrently(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    for number in (1, 2, 3):
        engine.run(f"api-web-{number}", labels=compose_labels("api", "web", number))

    result = await executor.execute(
        restart({"compose_project": "api", "compose_service": "web", "timeout": "1s"})
    )

    assert result.ok
    finished = [engine.finished_at_ns(f"api-web-{n}") for n in (1, 2, 3)]
    # Each stop waits the 1 s grace period; sequential restarts would end >= 1 s apart.
    assert max(finished) - min(finished) < 0.6 * NS


async def test_compose_service_without_containers_is_an_error(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    engine.run("shop-checkout-run-1", labels=compose_labels("shop", "checkout", 1, oneoff=True))

    with pytest.raises(ActionError) as caught:
        await executor.execute(restart({"compose_project": "shop", "compose_service": "checkout"}))

    assert caught.value.reason == "no containers for compose service shop/checkout"
    assert not caught.value.retryable


async def test_healthcheck_must_report_healthy_before_success(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    # The first check runs 1 s after each start, so right after the restart health is "starting".
    engine.run(
        "web-h",
        command=["/bin/sh", "-c", "touch /tmp/healthy; exec sleep 100000"],
        healthcheck=healthcheck("test -f /tmp/healthy", interval=1.0),
    )
    engine.wait_healthy("web-h")
    before = engine.started_at_ns("web-h")

    result = await executor.execute(
        restart({"container": "web-h", "timeout": "0s"}, verify_within="20s")
    )

    assert result.ok
    assert result.verified
    assert engine.started_at_ns("web-h") > before
    assert engine.health("web-h") == "healthy"


async def test_unhealthy_container_fails_verification_within_the_window(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    engine.run("web-sick", healthcheck=healthcheck("test -f /tmp/healthy", interval=0.2))
    before = engine.started_at_ns("web-sick")

    started = time.monotonic()
    result = await executor.execute(
        restart({"container": "web-sick", "timeout": "0s"}, verify_within="3s")
    )
    elapsed = time.monotonic() - started

    assert not result.ok
    assert not result.verified
    assert result.detail == "web-sick status=running health=unhealthy after 3s"
    assert engine.started_at_ns("web-sick") > before
    assert 3.0 <= elapsed < 10.0


async def test_unknown_container_is_not_found_and_not_retryable(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    with pytest.raises(ActionError) as caught:
        await executor.execute(restart({"container": "no-such-container", "timeout": "1s"}))

    assert caught.value.reason == "container no-such-container not found"
    assert not caught.value.retryable


async def test_engine_error_on_restart_is_not_retryable_and_explained(
    engine: DockerEngine, executor: DockerExecutor
) -> None:
    # Restarting a never-started container starts it; the missing binary makes the engine fail.
    engine.create("web-broken", command=["/bin/does-not-exist"])

    with pytest.raises(ActionError) as caught:
        await executor.execute(restart({"container": "web-broken", "timeout": "0s"}))

    assert not caught.value.retryable
    assert caught.value.reason.startswith("restarting web-broken failed: ")
    assert "/bin/does-not-exist" in caught.value.reason
    assert "HTTP 500" in caught.value.reason


async def test_read_timeout_on_restart_falls_through_to_verification(
    engine: DockerEngine, tmp_path: Path
) -> None:
    engine.run("web-slow")
    before = engine.started_at_ns("web-slow")
    proxy = EngineProxy(engine.url, tmp_path / "proxy.sock", hold_restart=2.5)
    await proxy.start()
    # With t=0 the HTTP timeout is api_timeout + 0 = 1 s: the client gives up before the
    # engine even sees the restart, then verification must wait for the engine to do it.
    slow = DockerExecutor(proxy.url, api_timeout=1.0, poll_interval=0.1)
    try:
        started = time.monotonic()
        result = await slow.execute(restart({"container": "web-slow", "timeout": "0s"}))
        elapsed = time.monotonic() - started
    finally:
        await slow.close()
        await proxy.stop()

    assert proxy.restarts_seen == 1
    assert result.ok
    assert result.verified
    after = engine.started_at_ns("web-slow")
    assert after > before
    # Until the held request arrives the old container is running: only a StartedAt later
    # than the request proves the restart, so success cannot come earlier than that.
    assert elapsed >= 2.5
    assert result.started_at is not None
    assert (result.started_at - EPOCH) // timedelta(microseconds=1) == after // 1000


def refusing_socket(path: Path) -> Path:
    """A socket file nobody listens on, so connecting is refused rather than not found."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    return path


@pytest.mark.parametrize(
    ("make_path", "cause"),
    [
        (lambda tmp: tmp / "missing.sock", "No such file or directory"),
        (lambda tmp: refusing_socket(tmp / "dead.sock"), "Connection refused"),
    ],
    ids=["socket-missing", "connection-refused"],
)
async def test_unreachable_engine_is_retryable(
    tmp_path: Path, make_path: Callable[[Path], Path], cause: str
) -> None:
    path = make_path(tmp_path)
    ex = DockerExecutor(f"unix://{path}", api_timeout=2.0)
    try:
        with pytest.raises(ActionError) as caught:
            await ex.execute(restart({"container": "web-1", "timeout": "1s"}))
    finally:
        await ex.close()

    assert caught.value.retryable
    assert caught.value.reason == f"docker engine unreachable at unix://{path}: {cause}"


async def test_executor_reconnects_after_the_engine_comes_back(
    engine: DockerEngine, tmp_path: Path
) -> None:
    engine.run("web-back")
    proxy = EngineProxy(engine.url, tmp_path / "flaky.sock")
    ex = DockerExecutor(proxy.url, api_timeout=2.0, poll_interval=0.1)
    try:
        await proxy.start()
        first = await ex.execute(restart({"container": "web-back", "timeout": "0s"}))
        await proxy.stop()
        with pytest.raises(ActionError) as caught:
            await ex.execute(restart({"container": "web-back", "timeout": "0s"}))
        await proxy.start()
        before = engine.started_at_ns("web-back")
        third = await ex.execute(restart({"container": "web-back", "timeout": "0s"}))
    finally:
        await ex.close()
        await proxy.stop()

    assert first.ok
    assert caught.value.retryable
    assert caught.value.reason.startswith(f"docker engine unreachable at {proxy.url}: ")
    assert third.ok
    assert engine.started_at_ns("web-back") > before


async def test_probe_answers_none_when_the_engine_is_up(executor: DockerExecutor) -> None:
    assert await executor.probe() is None


async def test_probe_names_the_problem_when_unreachable(nowhere: DockerExecutor) -> None:
    started = time.monotonic()
    reason = await nowhere.probe()

    assert reason == f"docker engine unreachable at {nowhere.url}: No such file or directory"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "missing param container"),
        ({"timeout": "1s"}, "missing param container"),
        ({"container": "  "}, "param container is empty"),
        ({"compose_project": "shop"}, "param compose_service is missing"),
        ({"compose_service": "web"}, "param compose_project is missing"),
        (
            {"container": "web-1", "compose_project": "shop", "compose_service": "web"},
            "not both",
        ),
        ({"container": "web-1", "timeout": "soon"}, "param timeout: invalid duration 'soon'"),
        ({"container": "web-1", "signal": "SIGKILL"}, "unknown param(s) signal"),
    ],
)
async def test_invalid_params_fail_before_any_engine_call(
    nowhere: DockerExecutor, params: dict[str, str], expected: str
) -> None:
    # The engine is unreachable: reaching it would raise a retryable error instead.
    with pytest.raises(ActionError) as caught:
        await nowhere.execute(restart(params))

    assert expected in caught.value.reason
    assert not caught.value.retryable


async def test_other_action_types_are_refused(nowhere: DockerExecutor) -> None:
    request = ActionRequest(
        action_id=1,
        policy="p",
        type="k8s.rollout_restart",
        target="web",
        params={"container": "web"},
        verify=VerifyPlan(timedelta(seconds=1)),
    )
    with pytest.raises(ActionError) as caught:
        await nowhere.execute(request)
    assert "k8s.rollout_restart" in caught.value.reason
    assert not caught.value.retryable
