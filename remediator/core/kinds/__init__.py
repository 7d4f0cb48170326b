"""The action kinds, by type: the one place that knows each action type string. Policy
loading, rendering and scope (core/policy_action.py, core/job.py), the executors built
(backends.build_executors) and the executors themselves look a kind up here. Pure.
"""

from __future__ import annotations

from types import MappingProxyType

from remediator.core.kinds.base import ActionKind, Backend, Refusal
from remediator.core.kinds.docker import DOCKER_RESTART
from remediator.core.kinds.docker_exec import DOCKER_EXEC
from remediator.core.kinds.docker_recreate import DOCKER_RECREATE
from remediator.core.kinds.http import HTTP_REQUEST
from remediator.core.kinds.kubernetes import KUBE_RESTART, KUBE_ROLLBACK, KUBE_SCALE
from remediator.core.kinds.notify import NOTIFY
from remediator.core.kinds.postgres import POSTGRES_EXECUTE

__all__ = ["KINDS", "PLANNED", "ActionKind", "Backend", "Refusal", "kind_of", "kinds_on"]

# Only implemented types are listed: a policy that names another type fails `remediator check`.
KINDS = MappingProxyType(
    {
        kind.type: kind
        for kind in (
            DOCKER_RESTART,
            DOCKER_EXEC,
            DOCKER_RECREATE,
            KUBE_SCALE,
            KUBE_RESTART,
            KUBE_ROLLBACK,
            NOTIFY,
            HTTP_REQUEST,
            POSTGRES_EXECUTE,
        )
    }
)
# Types announced but not in this version yet: `check` says so rather than "unknown".
PLANNED: frozenset[str] = frozenset()


def kind_of(type_: str) -> ActionKind:
    """The kind of a loaded policy's action type (KeyError for a type no policy can have)."""
    return KINDS[type_]


def kinds_on(backend: Backend) -> list[ActionKind]:
    """The kinds one executor backend runs."""
    return [kind for kind in KINDS.values() if kind.backend is backend]
