"""What `remediator check` warns about: a config and policies that load, but will not do
what their author expects (a Kubernetes action with no cluster, no cooldown, an approval
nobody can give). Warnings, not errors: each may be intended. Reads only the config, the
policies and whether a kubeconfig exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from remediator.config import Config
from remediator.config_file import kubeconfig_source
from remediator.core.kinds import Backend
from remediator.core.policy import Policy

ANONYMOUS = "api:anonymous"  # the identity of every API caller when the API has no auth


def warnings(config: Config, policies: Sequence[Policy]) -> list[str]:
    """Every warning, one line each (without the `warning: ` that `check` prints)."""
    found = []
    kube = sorted(
        p.name for p in policies if any(a.kind.backend is Backend.KUBERNETES for a in p.actions)
    )
    if kube and kubeconfig_source(config.kubernetes.kubeconfig) is None:
        found.append(
            f"policies {', '.join(kube)} use Kubernetes actions but no cluster config "
            "was found (kubernetes.kubeconfig, in-cluster service account, ~/.kube/config)"
        )
    for policy in policies:
        if policy.guards.cooldown.total_seconds() == 0:
            found.append(
                f"policy {policy.name}: guards.cooldown: none set; every new episode "
                "may act on the same target again"
            )
    found.extend(approval_warnings(config, policies))
    return found


def _asks(policy: Policy) -> list[str]:
    """Where the policy asks for an approval (a ladder's first step's is guards.approval)."""
    where = [] if policy.guards.approval == "never" else ["guards.approval"]
    for number, step in enumerate(policy.steps[1:], start=2):
        if step.approval is not None and step.approval != "never":
            where.append(f"steps.{number - 1}.approval (step {number})")
    return where


def slack_configured(config: Config) -> bool:
    slack = config.slack
    return bool(slack.bot_token and slack.signing_secret and slack.channel)


def api_identities(config: Config) -> frozenset[str]:
    """Who can call the API's approve: each token's `api:NAME`, or anyone when it is open."""
    api = config.auth.api
    if api is None or api.allow_unauthenticated:
        return frozenset({ANONYMOUS})
    return frozenset(api.identities())


def approval_warnings(config: Config, policies: Sequence[Policy]) -> list[str]:
    """Policies that ask for an approval that nobody, or too few people, can give: no
    approvers and no API token; approvers that are Slack users while Slack is not
    configured, or `api:NAME` with no such token; fewer than `approvals_required`."""
    slack = slack_configured(config)
    identities = api_identities(config)
    open_api = ANONYMOUS in identities
    found = []
    for policy in policies:
        asks = _asks(policy)
        if not asks:
            continue
        where = f"policy {policy.name}: {', '.join(asks)}"
        required = policy.guards.approvals_required
        approvers = policy.guards.approvers
        source = "guards.approvers"
        if approvers is None:
            approvers, source = config.slack.approvers, "slack.approvers"
        if not approvers:
            # Empty: anyone with an API token approves (Slack clicks: nobody).
            if open_api:
                found.append(
                    f"{where}: no approvers (guards.approvers, slack.approvers) and no API "
                    f"tokens (auth.api.tokens): only an unauthenticated API caller "
                    f"({ANONYMOUS}) can approve"
                )
            elif len(identities) < required:
                found.append(
                    f"{where}: needs {required} approvals, but with no approvers listed only "
                    f"the {len(identities)} API token(s) of auth.api can approve"
                )
            continue
        usable, lacking = _usable(approvers, slack, identities)
        why = f": {'; '.join(lacking)}" if lacking else ""
        if not usable:
            found.append(f"{where}: nobody can approve ({source}){why}")
        elif len(usable) < required:
            found.append(
                f"{where}: needs {required} approvals but only {len(usable)} of its "
                f"approvers ({source}) can give one{why}"
            )
    return found


def _usable(
    approvers: Sequence[str], slack: bool, identities: frozenset[str]
) -> tuple[list[str], list[str]]:
    """The approvers who can approve, and why the others cannot."""
    users = [a for a in approvers if not a.startswith("api:")]
    names = [a for a in approvers if a.startswith("api:")]
    usable = [a for a in names if a in identities]
    lacking = []
    if slack:
        usable.extend(users)
    elif users:
        lacking.append(f"Slack users {', '.join(users)} while slack is not configured")
    missing = [a for a in names if a not in usable]
    if missing:
        lacking.append(f"{', '.join(missing)} without a token in auth.api.tokens")
    return usable, lacking
