"""Render one policy's action for one alert and check its target against the allowlist. Pure.

A rendered target must also be a well-formed name for its backend: a template must never
be able to steer a request somewhere the allowlist did not mean (e.g. `web-1/../db`); an
http.request URL is scoped by `urlscope`, never by a glob over the raw URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from remediator.core import fastrender, urlscope
from remediator.core.alert import Alert
from remediator.core.durations import parse_timeout
from remediator.core.kube_params import validate_kube_params
from remediator.core.outcomes import Outcome
from remediator.core.policy import ApprovalWhen, Policy, hook_statuses
from remediator.core.render import render_context
from remediator.errors import RenderError

# Reserved params: the runner takes them out before the executor sees the rest.
VERIFY_QUERY = "_verify_query"
VERIFY_BOUND = "_verify_bound"
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_COMPOSE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Stopped:
    """A stage ended the job with an outcome; `target` is what was rendered, if anything.
    `repeat_of`: the job is a repeat counted on this existing decision (no new record)."""

    outcome: Outcome
    reason: str
    target: str = ""
    repeat_of: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One (alert, policy) pair with its action rendered; passed from stage to stage.

    `alert` is None for an approved request judged again when its approval arrives (only
    the stages that need no alert run then); `error` is why rendering failed, if it did;
    `index` is the alert's position in its batch (where its condition result is kept)."""

    alert: Alert | None
    policy: Policy
    now: datetime
    action: str
    target: str
    params: Mapping[str, str]
    index: int = -1
    error: Stopped | None = None
    episode: str = ""

    @property
    def dry_run(self) -> bool:
        return self.policy.guards.dry_run

    @property
    def key(self) -> tuple[str, str]:
        """What dedup claims: one decision per (policy, firing episode)."""
        return (self.policy.name, self.episode)


@dataclass(frozen=True, slots=True)
class Met:
    """A condition that holds, with what was seen (for simulate and the audit reason)."""

    reason: str


def render_params(policy: Policy, alert: Alert) -> dict[str, str]:
    context: dict[str, object] | None = None  # built only for a param the shortcut cannot do
    rendered = {}
    for name, template in policy.action.params.items():
        value = fastrender.quick(template, alert.labels)
        if value is None:
            if context is None:
                context = render_context(
                    alert.labels, alert.annotations, alert.template_view(), policy.name
                )
            value = template.render(context)
        value = value.strip()
        if not value:
            raise RenderError(f"param {name} rendered empty from {template.source!r}")
        rendered[name] = value
    return rendered


def secret_names(policy: Policy) -> frozenset[str]:
    """The `${secret:NAME}` names the policy's action params wrote: each must be in `secrets`."""
    return frozenset().union(*(t.secret_names for t in policy.action.params.values()))


def _docker_target(params: Mapping[str, str]) -> str:
    if "timeout" in params:
        try:
            parse_timeout(params["timeout"])
        except ValueError as exc:
            raise RenderError(f"param timeout: {exc}") from None
    if "container" in params:
        name = params["container"]
        if not _DOCKER_NAME.match(name):
            raise RenderError(f"rendered container {name!r} is not a valid Docker container name")
        return name
    project, service = params["compose_project"], params["compose_service"]
    for what, value in (("compose_project", project), ("compose_service", service)):
        if not _COMPOSE_NAME.match(value.lower()):
            raise RenderError(f"rendered {what} {value!r} is not a valid Compose name")
    return f"{project.lower()}/{service}"


def _http_target(params: Mapping[str, str]) -> str:
    url = params["url"]
    if not url.lower().startswith(("http://", "https://")):
        shown = urlscope.without_userinfo(url)
        raise RenderError(f"rendered url {shown!r} is not an http(s) URL")
    for name in ("expect_status", "timeout"):
        if name in params:
            try:
                (hook_statuses if name == "expect_status" else parse_timeout)(params[name])
            except ValueError as exc:
                raise RenderError(f"param {name}: {exc}") from None
    # The URL as rendered, `${secret:NAME}` unexpanded: what scope_check, the audit log and
    # Slack see. Its scope is checked by `scope_check` (urlscope), not here.
    return url


def _kube_target(params: Mapping[str, str]) -> str:
    try:
        checked = validate_kube_params(params)
    except ValueError as exc:
        raise RenderError(f"rendered {exc}") from None
    assert checked is not None  # noqa: S101  # namespace and deployment are required params
    return checked.target


def scope_check(
    policy: Policy, target: str, protected: frozenset[str] = frozenset()
) -> Stopped | None:
    """None when `target` is within `policy`'s scope now, else the `out_of_scope` Stopped.

    `target` is the one `build_job` rendered (Job.target, stored with the action), so the
    approval path can call this again when an approval is granted against the policy and
    `protected` namespaces (kubernetes.protected_namespaces) of that moment. Pure.
    """
    kind = policy.action.type
    allowed = policy.action.allow_targets
    if kind == "http.request":
        reason = urlscope.out_of_scope(target, allowed)
        if reason is None:
            return None
        return Stopped(Outcome.OUT_OF_SCOPE, reason, urlscope.without_userinfo(target))
    namespace = target.split("/", 1)[0]
    if kind.startswith("kubernetes.") and namespace in protected:
        return Stopped(
            Outcome.OUT_OF_SCOPE,
            f"namespace {namespace} is protected (kubernetes.protected_namespaces)",
            target,
        )
    if not any(fnmatchcase(target, glob) for glob in allowed or ("slack",)):
        return Stopped(
            Outcome.OUT_OF_SCOPE,
            f"target {target!r} is not in allow_targets [{', '.join(allowed)}]",
            target,
        )
    return None


def render_job(policy: Policy, alert: Alert, now: datetime, index: int = -1) -> Job:
    """Render the policy's action for the alert (params, target, verify query). A failure is
    kept in `Job.error` for the scope stage to report, so a repeat of an episode that did
    not render is still counted by dedup first, like any other repeat."""
    try:
        params = render_params(policy, alert)
        if policy.action.type == "docker.restart":
            target = _docker_target(params)
        elif policy.action.type == "notify":
            target = "slack"  # the configured channel; a message changes nothing else
        elif policy.action.type == "http.request":
            target = _http_target(params)
        else:
            target = _kube_target(params)
    except RenderError as exc:
        error = Stopped(Outcome.RENDER_ERROR, str(exc))
        return Job(alert, policy, now, policy.action.type, "", {}, index, error, alert.episode)
    check = policy.verify.prometheus
    if check is not None:  # stored with the action, so an approved action verifies too
        try:
            context = render_context(
                alert.labels, alert.annotations, alert.template_view(), policy.name
            )
            params[VERIFY_QUERY] = check.query.render(context)
        except RenderError as exc:
            error = Stopped(Outcome.RENDER_ERROR, f"verify.prometheus: {exc}", target)
            return Job(
                alert, policy, now, policy.action.type, target, {}, index, error, alert.episode
            )
        params[VERIFY_BOUND] = (
            f"above {check.above}" if check.above is not None else f"below {check.below}"
        )
    return Job(alert, policy, now, policy.action.type, target, params, index, None, alert.episode)


def build_job(
    policy: Policy, alert: Alert, now: datetime, protected: frozenset[str] = frozenset()
) -> Job | Stopped:
    """Render + scope check: a Job ready for the guards, or the outcome that stopped it.

    `protected` namespaces (kubernetes.protected_namespaces) are out of scope whatever a
    policy's allow_targets say.
    """
    job = render_job(policy, alert, now)
    if job.error is not None:
        return job.error
    stopped = scope_check(policy, job.target, protected)
    return job if stopped is None else stopped


def needs_approval(job: Job) -> bool:
    """Whether the policy's approval rule asks a human for this job (`when` is rendered
    against the alert); raises RenderError when `when` cannot be rendered."""
    rule = job.policy.guards.approval
    if isinstance(rule, ApprovalWhen):
        if job.alert is None:  # an approved request: its approval is already given
            return False
        alert = job.alert
        context = render_context(
            alert.labels, alert.annotations, alert.template_view(), job.policy.name
        )
        return rule.when.render(context) == "true"
    return rule == "always"
