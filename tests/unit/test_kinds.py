"""The action kinds (core/kinds), table-driven per kind: which params each accepts at load,
the target its rendered params name (or why they name none), and which targets are in scope.
Also the registry itself: one kind per type, every backend built by app.build_executors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.kinds import KINDS, ActionKind, Backend, kind_of, kinds_on
from remediator.core.kinds.base import glob_scope
from remediator.core.kinds.docker import DOCKER_RESTART, RestartTarget, restart_target
from remediator.core.kinds.http import HTTP_REQUEST, HookCall, hook_call
from remediator.core.kinds.kubernetes import KUBE_RESTART, KUBE_ROLLBACK, KUBE_SCALE
from remediator.core.kinds.notify import NOTIFY
from remediator.errors import RenderError


def check(kind: ActionKind, params: Mapping[str, str], allow: tuple[str, ...]) -> str | None:
    """What the static check says of these params (compiled as the kind compiles them)."""
    compiled = {name: kind.compile(text) for name, text in params.items()}
    try:
        kind.check(compiled, allow)
    except ValueError as exc:
        return str(exc)
    return None


ANY = ("*",)
HOOK = ("https://ci.example.com/job/*/build",)

# (kind, params, allow_targets, None when accepted else part of the problem)
CHECKS: list[tuple[ActionKind, dict[str, str], tuple[str, ...], str | None]] = [
    # docker.restart
    (DOCKER_RESTART, {"container": "web-1"}, ANY, None),
    (DOCKER_RESTART, {"container": "{{ labels.c }}", "timeout": "10s"}, ANY, None),
    (DOCKER_RESTART, {"compose_project": "shop", "compose_service": "{{ labels.s }}"}, ANY, None),
    (DOCKER_RESTART, {"container": "web-1", "timeout": "{{ labels.t }}"}, ANY, None),
    (DOCKER_RESTART, {}, ANY, "docker.restart needs either container"),
    (DOCKER_RESTART, {"container": "x", "compose_service": "y"}, ANY, "needs either container"),
    (DOCKER_RESTART, {"compose_service": "y"}, ANY, "needs both compose_project and"),
    (DOCKER_RESTART, {"container": "x", "timeout": "soon"}, ANY, "invalid duration 'soon'"),
    (DOCKER_RESTART, {"container": "x", "timeout": "0s"}, ANY, "MAX_ACTION_TIMEOUT"),
    (DOCKER_RESTART, {"container": "x", "signal": "KILL"}, ANY, "unknown param(s) signal for"),
    (DOCKER_RESTART, {"container": "x", "header.X": "y"}, ANY, "unknown param(s) header.X"),
    (DOCKER_RESTART, {"container": "x"}, (), "allow_targets is required: list the targets"),
    # kubernetes.*
    (KUBE_SCALE, {"namespace": "prod", "deployment": "web", "replicas": "+2"}, ANY, None),
    (
        KUBE_SCALE,
        {"namespace": "{{ labels.ns }}", "deployment": "web", "replicas": "{{ labels.n }}"},
        ANY,
        None,
    ),
    (KUBE_SCALE, {"namespace": "prod", "deployment": "web"}, ANY, "missing param(s) replicas"),
    (
        KUBE_SCALE,
        {"namespace": "prod", "deployment": "web", "replicas": "lots"},
        ANY,
        "replicas must be a number",
    ),
    (
        KUBE_SCALE,
        {"namespace": "prod", "deployment": "web", "replicas": "2", "min": "5", "max": "2"},
        ANY,
        "min (5) is greater than max (2)",
    ),
    (KUBE_RESTART, {"namespace": "prod", "deployment": "web"}, ANY, None),
    (KUBE_RESTART, {"namespace": "Prod_1", "deployment": "web"}, ANY, "not a valid Kubernetes"),
    (
        KUBE_RESTART,
        {"namespace": "prod", "deployment": "web", "replicas": "2"},
        ANY,
        "unknown param(s) replicas for kubernetes.restart",
    ),
    (KUBE_RESTART, {"namespace": "prod", "deployment": "web"}, (), "allow_targets is required"),
    (KUBE_ROLLBACK, {"namespace": "prod", "deployment": "web", "to_revision": "3"}, ANY, None),
    (
        KUBE_ROLLBACK,
        {"namespace": "prod", "deployment": "web", "to_revision": "0"},
        ANY,
        "to_revision must be a whole number >= 1",
    ),
    # http.request
    (HTTP_REQUEST, {"url": "https://ci.example.com/job/a/build"}, HOOK, None),
    (
        HTTP_REQUEST,
        {"url": "https://ci.example.com/job/{{ labels.j }}/build", "header.Authorization": "x"},
        HOOK,
        None,
    ),
    (HTTP_REQUEST, {}, HOOK, "missing param(s) url for http.request"),
    (HTTP_REQUEST, {"url": "ftp://ci/x"}, ANY, "url must start with http:// or https://"),
    (HTTP_REQUEST, {"url": "https://ci/x", "method": "FETCH"}, ANY, "method must be one of"),
    (HTTP_REQUEST, {"url": "https://ci/x", "expect_status": "302"}, ANY, "a 3xx is never"),
    (HTTP_REQUEST, {"url": "https://ci/x", "expect_status": "ok"}, ANY, "use e.g. 2xx"),
    (HTTP_REQUEST, {"url": "https://ci/x", "timeout": "1h"}, ANY, "MAX_ACTION_TIMEOUT"),
    (HTTP_REQUEST, {"url": "https://ci/x"}, (), "allow_targets is required: list the URLs"),
    (
        HTTP_REQUEST,
        {"url": "https://ci.example.com/deploy"},
        HOOK,
        "params.url: url 'https://ci.example.com/deploy' is not in allow_targets",
    ),
    # notify
    (NOTIFY, {"text": "{{ labels.x }} is down"}, (), None),
    (NOTIFY, {"text": "hi"}, ("slack",), None),
    (NOTIFY, {}, (), "missing param(s) text for notify"),
    (NOTIFY, {"text": "hi", "channel": "#alerts-critical"}, (), None),
    (NOTIFY, {"text": "hi", "channel": "C0123ABCD"}, (), None),
    (NOTIFY, {"text": "hi", "channel": "{{ labels.c }}"}, (), "never a template"),
    (NOTIFY, {"text": "hi", "channel": "#a b"}, (), "is not a Slack channel name or id"),
    (NOTIFY, {"text": "hi", "channel": "#ops"}, (), None),
]


@pytest.mark.parametrize(("kind", "params", "allow", "problem"), CHECKS)
def test_static_check(
    kind: ActionKind, params: dict[str, str], allow: tuple[str, ...], problem: str | None
) -> None:
    found = check(kind, params, allow)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


# (kind, rendered params, the target, or part of the render error)
TARGETS: list[tuple[ActionKind, dict[str, str], str]] = [
    (DOCKER_RESTART, {"container": "web-1"}, "web-1"),
    (DOCKER_RESTART, {"container": "web-1", "timeout": "30s"}, "web-1"),
    (DOCKER_RESTART, {"compose_project": "Shop", "compose_service": "Web"}, "shop/Web"),
    (DOCKER_RESTART, {"container": "web-1/../db"}, "! rendered container 'web-1/../db' is not"),
    (DOCKER_RESTART, {"container": "web 1"}, "! not a valid Docker container name"),
    (
        DOCKER_RESTART,
        {"compose_project": "shop", "compose_service": "../web"},
        "! rendered compose_service '../web' is not a valid Compose name",
    ),
    (DOCKER_RESTART, {"container": "web-1", "timeout": "11m"}, "! param timeout: timeout '11m'"),
    (DOCKER_RESTART, {"container": "web-1", "timeout": "soon"}, "! param timeout: invalid"),
    (KUBE_SCALE, {"namespace": "prod", "deployment": "web", "replicas": "+2"}, "prod/web"),
    (
        KUBE_SCALE,
        {"namespace": "prod", "deployment": "web", "replicas": "many"},
        "! rendered replicas must be a number",
    ),
    (KUBE_RESTART, {"namespace": "prod", "deployment": "web/../x"}, "! not a valid Kubernetes"),
    (KUBE_ROLLBACK, {"namespace": "kube-system", "deployment": "dns"}, "kube-system/dns"),
    (
        HTTP_REQUEST,
        {"url": "https://ci/job/a/build?t=${secret:t}"},
        "https://ci/job/a/build?t=${secret:t}",
    ),
    (HTTP_REQUEST, {"url": "ftp://u:pw@ci/x"}, "! rendered url 'ftp://ci/x' is not an http(s) URL"),
    (HTTP_REQUEST, {"url": "https://ci/x", "expect_status": "301"}, "! param expect_status:"),
    (HTTP_REQUEST, {"url": "https://ci/x", "timeout": "0s"}, "! param timeout: timeout '0s'"),
    (NOTIFY, {"text": "anything"}, "slack"),
]


@pytest.mark.parametrize(("kind", "params", "expected"), TARGETS)
def test_target(kind: ActionKind, params: dict[str, str], expected: str) -> None:
    if not expected.startswith("! "):
        assert kind.target(params) == expected
        return
    with pytest.raises(RenderError) as caught:
        kind.target(params)
    assert expected.removeprefix("! ") in str(caught.value)
    assert "pw" not in str(caught.value)


PROTECTED = frozenset({"kube-system"})
# (kind, target, allow_targets, None when in scope, else part of the reason, and the target shown)
SCOPES: list[tuple[ActionKind, str, tuple[str, ...], tuple[str, str] | None]] = [
    (DOCKER_RESTART, "web-1", ("web-*",), None),
    (DOCKER_RESTART, "db-1", ("web-*", "api"), ("'db-1' is not in allow_targets [web-*, api]", "db-1")),
    (DOCKER_RESTART, "shop/web", ("shop/*",), None),
    (DOCKER_RESTART, "kube-system/x", ANY, None),  # protected namespaces are Kubernetes' only
    (KUBE_SCALE, "prod/web", ("prod/*",), None),
    (KUBE_SCALE, "staging/web", ("prod/*",), ("'staging/web' is not in allow_targets", "staging/web")),
    (
        KUBE_RESTART,
        "kube-system/dns",
        ANY,
        ("namespace kube-system is protected (kubernetes.protected_namespaces)", "kube-system/dns"),
    ),
    (KUBE_ROLLBACK, "kube-system/dns", ANY, ("namespace kube-system is protected", "kube-system/dns")),
    (HTTP_REQUEST, "https://ci.example.com/job/a/build", HOOK, None),
    (
        HTTP_REQUEST,
        "https://ci.example.com/job/../build",
        HOOK,
        (". or .. path segment", "https://ci.example.com/job/../build"),
    ),
    (
        HTTP_REQUEST,
        "https://u:pw@ci.example.com/job/a/build",
        HOOK,
        ("userinfo", "https://ci.example.com/job/a/build"),  # never shown with its password
    ),
    (HTTP_REQUEST, "https://ci.example.com/job/a/build", ANY, ("", "https://ci.example.com/job/a/build")),
    (NOTIFY, "slack", (), None),  # the configured channel, with no allow_targets
    (NOTIFY, "slack", ("sl*",), None),
    (NOTIFY, "slack", ("teams",), ("'slack' is not in allow_targets [teams]", "slack")),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "target", "allow", "refused"), SCOPES)
def test_scope(
    kind: ActionKind, target: str, allow: tuple[str, ...], refused: tuple[str, str] | None
) -> None:
    found = kind.scope(target, allow, PROTECTED)
    if refused is None:
        assert found is None
    else:
        assert found is not None and refused[0] in found.reason and found.shown == refused[1]


# --- the one reading of rendered params, shared by the target and the executor -------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"container": " web-1 "}, RestartTarget("web-1", None, None, None)),
        ({"container": "web-1", "timeout": "1500ms"}, RestartTarget("web-1", None, None, 2)),
        ({"container": "web-1", "timeout": "0s"}, RestartTarget("web-1", None, None, 0)),
        (
            {"compose_project": "Shop", "compose_service": "web"},
            RestartTarget(None, "shop", "web", None),
        ),
        ({}, "missing param container"),
        ({"container": "  "}, "param container is empty"),
        ({"compose_project": "shop"}, "param compose_service is missing or empty"),
        ({"container": "a", "compose_project": "b", "compose_service": "c"}, "not both"),
        ({"container": "a", "signal": "KILL"}, "unknown param(s) signal"),
        ({"container": "a", "timeout": "soon"}, "param timeout: invalid duration 'soon'"),
    ],
)
def test_restart_target(params: dict[str, str], expected: RestartTarget | str) -> None:
    if isinstance(expected, RestartTarget):
        assert restart_target(params) == expected
        return
    with pytest.raises(ValueError, match=re.escape(expected)):
        restart_target(params)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"url": "https://ci/x"},
            HookCall("POST", "https://ci/x", timedelta(seconds=10), frozenset(range(200, 300))),
        ),
        (
            {"url": "http://ci/x", "method": "put", "timeout": "2s", "expect_status": "200,202"},
            HookCall("PUT", "http://ci/x", timedelta(seconds=2), frozenset({200, 202})),
        ),
        ({"url": "https://ci/x", "method": "FETCH"}, "method must be one of"),
        ({"url": "https://ci/x", "expect_status": "3xx"}, "param expect_status:"),
        ({"url": "ci/x"}, "is not an http(s) URL"),
    ],
)
def test_hook_call(params: dict[str, str], expected: HookCall | str) -> None:
    if isinstance(expected, HookCall):
        assert hook_call(params) == expected
        return
    with pytest.raises(ValueError, match=re.escape(expected)):
        hook_call(params)


# --- each kind's verify rule ----------------------------------------------------------------

SENT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "done", "summary"),
    [
        ({"Status": "running", "StartedAt": "2026-11-22T12:00:01.5Z"}, True, "web status=running"),
        (
            {"Status": "running", "StartedAt": "2026-11-22T12:00:01Z", "Health": {"Status": "starting"}},
            False,
            "health=starting",
        ),
        (
            {"Status": "running", "StartedAt": "2026-11-22T12:00:01Z", "Health": {"Status": "healthy"}},
            True,
            "health=healthy",
        ),
        ({"Status": "running", "StartedAt": "2026-11-22T11:59:00Z"}, False, "not after the restart"),
        ({"Status": "exited", "StartedAt": "2026-11-22T12:00:01Z"}, False, "status=exited"),
        ({"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}, False, "started_at=0001"),
    ],
)  # fmt: skip
def test_docker_restart_is_verified_by_a_fresh_running_healthy_container(
    state: dict[str, object], done: bool, summary: str
) -> None:
    seen = DOCKER_RESTART.verified("web", {"State": state}, SENT)
    assert seen.done is done and summary in seen.summary


def test_kubernetes_kinds_are_verified_by_the_rollout() -> None:
    deployment = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    for kind in (KUBE_SCALE, KUBE_RESTART, KUBE_ROLLBACK):
        assert kind.verified(deployment).done


# --- the registry ---------------------------------------------------------------------------


def test_one_kind_per_type_and_every_type_known() -> None:
    assert sorted(KINDS) == [
        "docker.exec",
        "docker.recreate",
        "docker.restart",
        "http.request",
        "kubernetes.restart",
        "kubernetes.rollback",
        "kubernetes.scale",
        "notify",
        "postgres.execute",
    ]
    for name, kind in KINDS.items():
        assert kind.type == name and kind_of(name) is kind
        assert kind.required <= kind.allowed
    with pytest.raises(KeyError):
        kind_of("docker.rm")


def test_every_backend_has_its_kinds_and_an_executor() -> None:
    from remediator.app import _EXECUTORS  # noqa: PLC0415  # this test only

    assert set(_EXECUTORS) == set(Backend)
    assert {k.type for k in kinds_on(Backend.KUBERNETES)} == {
        "kubernetes.scale",
        "kubernetes.restart",
        "kubernetes.rollback",
    }
    assert [k.type for k in kinds_on(Backend.DOCKER)] == [
        "docker.restart",
        "docker.exec",
        "docker.recreate",
    ]
    assert sum(len(kinds_on(b)) for b in Backend) == len(KINDS)


def test_only_notify_escapes_its_text_for_slack() -> None:
    assert NOTIFY.compile("{{ labels.x }}").escapes
    assert not any(k.compile("{{ labels.x }}").escapes for k in KINDS.values() if k is not NOTIFY)


def test_every_rung_of_a_ladder_gets_its_executor_and_its_secrets_checked(
    tmp_path: Path,
) -> None:
    from remediator.app import build_executors  # noqa: PLC0415  # this test only
    from remediator.config_file import parse_config  # noqa: PLC0415
    from remediator.core.job import secret_names  # noqa: PLC0415
    from remediator.core.policy import parse_policies  # noqa: PLC0415

    [ladder], problems = parse_policies(
        "name: l\n"
        "steps:\n"
        "  - action: {type: docker.restart, params: {container: web-1}, allow_targets: ['*']}\n"
        "  - action: {type: http.request, allow_targets: ['https://ci.example.com/job/*'],\n"
        "             params: {url: 'https://ci.example.com/job/rollback',\n"
        "                      headers: {Authorization: 'Bearer ${secret:CI}'}}}\n",
        "p.yaml",
    )
    assert problems == []
    config = parse_config("", "remediator.yaml", {}, tmp_path)
    executors = build_executors(config, [ladder], None)
    assert {"docker.restart", "http.request"} <= set(executors)
    assert secret_names(ladder) == {"CI"}


def test_a_missing_backend_refuses_a_first_action_but_not_a_later_step(tmp_path: Path) -> None:
    from remediator.app import build_executors  # noqa: PLC0415  # this test only
    from remediator.config_file import parse_config  # noqa: PLC0415
    from remediator.core.policy import parse_policies  # noqa: PLC0415
    from remediator.errors import ConfigError  # noqa: PLC0415

    restart = "{type: docker.restart, params: {container: web-1}, allow_targets: ['*']}"
    notify = "{type: notify, params: {text: down}}"
    config = parse_config("", "remediator.yaml", {}, tmp_path)  # no Slack
    [ladder], _ = parse_policies(
        f"name: l\nsteps:\n  - action: {restart}\n  - action: {notify}\n", "p.yaml"
    )
    assert "notify" not in build_executors(config, [ladder], None)
    [tell], _ = parse_policies(f"name: t\naction: {notify}\n", "p.yaml")
    with pytest.raises(ConfigError, match="policies t use notify, but slack is not configured"):
        build_executors(config, [tell], None)


_GLOB_TEXT = st.text(alphabet="ab-*?[]!/\n.", max_size=6)


@given(st.lists(_GLOB_TEXT, max_size=4).map(tuple), _GLOB_TEXT)
def test_allow_targets_match_exactly_as_fnmatchcase_would(
    allowed: tuple[str, ...], target: str
) -> None:
    # glob_scope compiles a list into one alternation; it must accept what fnmatchcase
    # accepts for some glob of the list, and nothing else.
    expected = any(fnmatchcase(target, glob) for glob in allowed)
    assert (glob_scope(target, allowed) is None) == expected
