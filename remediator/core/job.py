"""Render one policy's action for one alert and check its target against the allowlist. Pure.

What a target is, whether a rendered value is well-formed for it, and which targets are in
scope is each action kind's own rule (core/kinds); this module applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

from remediator.core import fastrender
from remediator.core.alert import Alert
from remediator.core.ladder import Rung, ladder_scope
from remediator.core.outcomes import Outcome
from remediator.core.policy import ActionSpec, ApprovalWhen, Policy, VerifySpec
from remediator.core.render import render_context
from remediator.core.verify import Checks, HttpCheck, PrometheusCheck, VerifyPlan
from remediator.errors import RenderError


class Stopped(NamedTuple):
    """A stage ended the job with an outcome; `target` is what was rendered, if anything.
    `repeat_of`: the job is a repeat counted on this existing decision (no new record).
    A NamedTuple, not a frozen dataclass: as immutable, and built in a quarter of the time
    (a frozen dataclass sets each field through object.__setattr__); every repeat makes one
    per matching policy."""

    outcome: Outcome
    reason: str
    target: str = ""
    repeat_of: int | None = None


class Job(NamedTuple):
    """One (alert, policy) pair with its action rendered; passed from stage to stage.

    `alert` is None for an approved request judged again when its approval arrives (only
    the stages that need no alert run then); `error` is why rendering failed, if it did;
    `position` is the alert's place in its batch (where its condition result is kept);
    `verify`: how the action is verified, rendered with it (None when it did not render);
    `ladder`: a ladder policy's later rungs, rendered with it (core/ladder.py).
    A NamedTuple, built per (alert, matching policy): see judge_records.Verdict."""

    alert: Alert | None
    policy: Policy
    now: datetime
    action: str
    target: str
    params: Mapping[str, str]
    position: int = -1
    error: Stopped | None = None
    episode: str = ""
    verify: VerifyPlan | None = None
    ladder: tuple[Rung, ...] = ()

    @property
    def step(self) -> int | None:
        """1 for the first rung of a ladder policy, None for a policy of one action."""
        return 1 if self.policy.steps else None

    @property
    def dry_run(self) -> bool:
        return self.policy.guards.dry_run

    @property
    def key(self) -> tuple[str, str]:
        """What dedup claims: one decision per (policy, firing episode)."""
        return (self.policy.name, self.episode)

    @property
    def check(self) -> Checks | None:
        """The rendered verify checks: stored with the action and with its approval."""
        plan = self.verify
        if plan is None or (plan.prometheus is None and plan.http is None):
            return None  # most actions: no Checks built just to be found empty
        return plan.checks


@dataclass(frozen=True, slots=True)
class Met:
    """A condition that holds, with what was seen (for simulate and the audit reason)."""

    reason: str


def render_params(policy: Policy, alert: Alert) -> dict[str, str]:
    return render_action(policy.action, alert, policy.name)


def render_action(action: ActionSpec, alert: Alert, policy: str) -> dict[str, str]:
    """An action's params rendered for the alert; RenderError when one cannot be."""
    context: dict[str, object] | None = None  # built only for a param the shortcut cannot do
    rendered = {}
    for name, template in action.params.items():
        value = fastrender.quick(template, alert.labels)
        if value is None:
            if context is None:
                context = render_context(
                    alert.labels, alert.annotations, alert.template_view(), policy
                )
            value = template.render(context)
        value = value.strip()
        if not value:
            raise RenderError(f"param {name} rendered empty from {template.source!r}")
        rendered[name] = value
    return rendered


def render_ladder(policy: Policy, alert: Alert) -> tuple[Rung, ...]:
    """The rungs after the first (core/ladder.py), rendered; RenderError names the step."""
    rungs = []
    for number, step in enumerate(policy.steps[1:], start=2):
        try:
            params = render_action(step.action, alert, policy.name)
            target = step.action.kind.target(params)
            plan = render_verify(step.verify, alert, policy.name)
        except RenderError as exc:
            raise RenderError(f"step {number}: {exc}") from None
        checks = plan.checks or None
        try:
            asked = asks(step.approval, alert, policy.name)
        except RenderError as exc:
            raise RenderError(f"step {number}: approval: {exc}") from None
        ask = None
        if asked:  # the request names its step, as the first step's does
            ask = {
                **approval_context(policy, alert),
                "step": f"step {number} of {len(policy.steps)}",
            }
        rungs.append(Rung(number, step.action.type, target, params, plan.within, checks, ask))
    return tuple(rungs)


def approval_context(policy: Policy, alert: Alert) -> dict[str, object]:
    """What an approval request shows a person about the alert that asks for it."""
    annotations = alert.annotations
    return {
        "alertname": alert.name,
        "status": alert.status,
        "source": alert.source,
        "labels": dict(alert.labels),
        "summary": annotations.get("summary") or annotations.get("description", ""),
        "link": alert.generator_url,
        "description": policy.description,
    }


def secret_names(policy: Policy) -> frozenset[str]:
    """The `${secret:NAME}` names the policy's action params wrote: each must be in `secrets`."""
    return frozenset().union(
        *(t.secret_names for action in policy.actions for t in action.params.values())
    )


def scope_check(
    policy: Policy, target: str, protected: frozenset[str] = frozenset()
) -> Stopped | None:
    """None when `target` is within `policy`'s scope now, else the `out_of_scope` Stopped.

    `target` is the one `build_job` rendered (Job.target, stored with the action), so the
    approval path can call this again when an approval is granted against the policy and
    `protected` namespaces (kubernetes.protected_namespaces) of that moment. Pure.
    """
    action = policy.action
    refused = action.kind.scope(target, action.allow_targets, protected)
    if refused is None:
        return None
    return Stopped(Outcome.OUT_OF_SCOPE, refused.reason, refused.shown)


def job_scope(job: Job, protected: frozenset[str] = frozenset()) -> Stopped | None:
    """scope_check of the job's target and of every later rung of its ladder: the guards
    judge a ladder as a whole when it starts."""
    stopped = scope_check(job.policy, job.target, protected)
    if stopped is not None or not job.ladder:
        return stopped
    refused = ladder_scope(job.policy, job.ladder, protected)
    return None if refused is None else Stopped(refused[0], refused[1], job.target)


def render_job(policy: Policy, alert: Alert, now: datetime, index: int = -1) -> Job:
    """Render the policy's action for the alert (params, target, verify query). A failure is
    kept in `Job.error` for the scope stage to report, so a repeat of an episode that did
    not render is still counted by dedup first, like any other repeat."""
    try:
        params = render_params(policy, alert)
        target = policy.action.kind.target(params)
    except RenderError as exc:
        error = Stopped(Outcome.RENDER_ERROR, str(exc))
        return Job(alert, policy, now, policy.action.type, "", {}, index, error, alert.episode)
    try:  # stored with the action, so an approved action verifies too
        verify = render_verify(policy.verify, alert, policy.name)
        ladder = render_ladder(policy, alert) if policy.steps else ()
    except RenderError as exc:
        error = Stopped(Outcome.RENDER_ERROR, str(exc), target)
        return Job(alert, policy, now, policy.action.type, target, {}, index, error, alert.episode)
    return Job(
        alert,
        policy,
        now,
        policy.action.type,
        target,
        params,
        index,
        None,
        alert.episode,
        verify,
        ladder,
    )


def render_verify(spec: VerifySpec, alert: Alert, policy: str) -> VerifyPlan:
    """The policy's verify checks rendered for the alert; RenderError names the check."""
    if spec.prometheus is None and spec.http is None:
        return VerifyPlan(spec.within)
    context = render_context(alert.labels, alert.annotations, alert.template_view(), policy)
    check = None
    if spec.prometheus is not None:
        try:
            query = spec.prometheus.query.render(context)
        except RenderError as exc:
            raise RenderError(f"verify.prometheus: {exc}") from None
        check = PrometheusCheck(query, spec.prometheus.above, spec.prometheus.below)
    http = None
    if spec.http is not None:
        try:
            url = health_url(spec.http.url.render(context).strip())
        except (RenderError, ValueError) as exc:
            raise RenderError(f"verify.http: {exc}") from None
        http = HttpCheck(url, spec.http.expect_status, spec.http.contains)
    return VerifyPlan(spec.within, check, http)


def health_url(url: str) -> str:
    """A rendered verify.http URL, refused when an alert value made it something other than
    a plain http(s) URL: no userinfo (a credential or a host disguise), a host, no spaces."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"rendered URL {url!r} is not an http:// or https:// URL with a host")
    if "@" in parsed.netloc or any(c.isspace() for c in url):
        raise ValueError(f"rendered URL {url!r} has userinfo or whitespace")
    return url


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
    stopped = job_scope(job, protected)
    return job if stopped is None else stopped


def needs_approval(job: Job) -> bool:
    """Whether the policy's approval rule asks a human for this job (`when` is rendered
    against the alert); raises RenderError when `when` cannot be rendered."""
    if job.alert is None:  # an approved request: its approval is already given
        return False
    return asks(job.policy.guards.approval, job.alert, job.policy.name)


def asks(rule: str | ApprovalWhen | None, alert: Alert, policy: str) -> bool:
    """Whether an approval rule (a policy's, or a ladder step's own) asks a human for this
    alert; raises RenderError when `when` cannot be rendered."""
    if isinstance(rule, ApprovalWhen):
        context = render_context(alert.labels, alert.annotations, alert.template_view(), policy)
        return rule.when.render(context) == "true"
    return rule == "always"
