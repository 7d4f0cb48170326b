"""docker.exec against a real private dockerd: the argument list as rendered (never a shell),
exit codes, the output tail kept and redacted, users, timeouts, compose replicas, errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest

from remediator import log
from remediator.actions.base import ActionRequest
from remediator.actions.docker import DockerExecutor
from remediator.core.kinds.docker_exec import OUTPUT_KEPT
from remediator.core.verify import VerifyPlan
from remediator.errors import ActionError
from tests.fixtures.docker_engine import DockerEngine
from tests.integration.test_docker_executor import compose_labels

pytestmark = pytest.mark.docker


def exec_request(command: Sequence[str], **params: str) -> ActionRequest:
    flat = dict(params) | {f"command.{i}": arg for i, arg in enumerate(command)}
    return ActionRequest(
        action_id=1,
        policy="test-policy",
        type="docker.exec",
        target=params.get("container", ""),
        params=flat,
        verify=VerifyPlan(timedelta(seconds=10)),
    )


def output_of(engine: DockerEngine, container: str, *command: str) -> str:
    code, out = engine.client.containers.get(container).exec_run(list(command))
    assert code == 0, out
    assert isinstance(out, bytes)
    return out.decode()


@pytest.fixture
def engine(docker_cleanup: DockerEngine) -> DockerEngine:
    return docker_cleanup


@pytest.fixture
def secret() -> Iterator[str]:
    value = "hunter2-exec-secret"
    log.register_secrets([value])
    yield value
    log.register_secrets([])


async def test_runs_the_argument_list_and_records_exit_code_and_output(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["redis-cli", "-n", "0", "FLUSHALL"], container="cache-1")
    )
    assert result.ok, result.detail
    assert result.facts["cache-1.exit_code"] == "0"
    assert result.facts["cache-1.output"] == "OK\n"
    assert result.facts["command"] == "redis-cli -n 0 FLUSHALL"
    assert result.detail == "ran redis-cli -n 0 FLUSHALL: cache-1: exit 0; output: OK"
    # What the program received: exactly these arguments, in order.
    assert output_of(engine, "cache-1", "cat", "/tmp/redis-cli.args") == "-n\n0\nFLUSHALL\n"


@pytest.mark.parametrize(
    "hostile",
    [
        "x; touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "a && touch /tmp/pwned",
        "a | touch /tmp/pwned",
        '\'"; touch /tmp/pwned; echo "',
        "*",
        "a\nb",
    ],
)
async def test_a_shell_metacharacter_stays_one_literal_argument(
    engine: DockerEngine, docker_executor: DockerExecutor, hostile: str
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["redis-cli", "DEL", hostile], container="cache-1")
    )
    assert result.ok, result.detail
    assert output_of(engine, "cache-1", "cat", "/tmp/redis-cli.args") == f"DEL\n{hostile}\n"
    code, _ = engine.client.containers.get("cache-1").exec_run(["test", "-e", "/tmp/pwned"])
    assert code == 1, "a label value ran as shell syntax"


async def test_a_non_zero_exit_is_failed_with_its_output(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["sh", "-c", "echo cannot connect >&2; exit 3"], container="cache-1")
    )
    assert not result.ok
    assert result.facts["cache-1.exit_code"] == "3"
    assert result.facts["cache-1.output"] == "cannot connect\n"
    assert "cache-1: exit 3, expected 0; output: cannot connect" in result.detail


async def test_expect_exit_names_the_exit_code_that_counts_as_success(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.run("cache-1")
    request = exec_request(["sh", "-c", "exit 1"], container="cache-1", expect_exit="1")
    assert (await docker_executor.execute(request)).ok
    request = exec_request(["true"], container="cache-1", expect_exit="1")
    result = await docker_executor.execute(request)
    assert not result.ok
    assert "exit 0, expected 1" in result.detail


async def test_only_the_last_4_kib_of_output_is_kept_and_secrets_are_redacted(
    engine: DockerEngine, docker_executor: DockerExecutor, secret: str
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["sh", "-c", f"seq 1 3000; echo token={secret}"], container="cache-1")
    )
    assert result.ok, result.detail
    kept = result.facts["cache-1.output"]
    assert len(kept.encode()) <= OUTPUT_KEPT
    assert kept.endswith("2999\n3000\ntoken=***\n")
    assert len(kept.encode()) == OUTPUT_KEPT
    assert secret not in result.detail


async def test_the_user_param_runs_the_command_as_that_user(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["id", "-u"], container="cache-1", user="4321")
    )
    assert result.ok, result.detail
    assert result.facts["cache-1.output"] == "4321\n"
    result = await docker_executor.execute(exec_request(["id", "-u"], container="cache-1"))
    assert result.facts["cache-1.output"] == "0\n"


async def test_a_command_past_its_timeout_is_failed_and_reported_still_running(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.run("cache-1")
    result = await docker_executor.execute(
        exec_request(["sh", "-c", "echo started; sleep 30"], container="cache-1", timeout="1s")
    )
    assert not result.ok
    assert result.facts["cache-1.exit_code"] == "timeout"
    assert result.facts["cache-1.output"] == "started\n"
    assert "cache-1: no exit within 1s (still running, pid " in result.detail


async def test_a_compose_service_runs_the_command_in_every_replica(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    for number in (1, 2):
        engine.run(f"shop-cache-{number}", labels=compose_labels("shop", "cache", number))
    engine.run("other-cache-1", labels=compose_labels("other", "cache", 1))
    result = await docker_executor.execute(
        exec_request(["redis-cli", "FLUSHALL"], compose_project="shop", compose_service="cache")
    )
    assert result.ok, result.detail
    assert result.facts["shop-cache-1.exit_code"] == result.facts["shop-cache-2.exit_code"] == "0"
    assert "other-cache-1.exit_code" not in result.facts
    for name in ("shop-cache-1", "shop-cache-2"):
        assert output_of(engine, name, "cat", "/tmp/redis-cli.args") == "FLUSHALL\n"
    code, _ = engine.client.containers.get("other-cache-1").exec_run(
        ["test", "-e", "/tmp/redis-cli.args"]
    )
    assert code == 1


async def test_a_stopped_container_fails_with_the_engines_answer(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    engine.create("cache-1")
    result = await docker_executor.execute(exec_request(["true"], container="cache-1"))
    assert not result.ok
    assert "cache-1: " in result.detail and "is not running" in result.detail


async def test_a_missing_container_or_program_is_named(
    engine: DockerEngine, docker_executor: DockerExecutor
) -> None:
    with pytest.raises(ActionError, match="container nosuch not found"):
        await docker_executor.execute(exec_request(["true"], container="nosuch"))
    engine.run("cache-1")
    result = await docker_executor.execute(exec_request(["no-such-program"], container="cache-1"))
    assert not result.ok
    assert "no-such-program" in result.detail
