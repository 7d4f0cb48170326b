"""What every action kind declares (params, static check, target, scope, backend), and the
rules most kinds share: the params table check and the allowlist glob. Pure.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import StrEnum
from fnmatch import translate
from types import MappingProxyType
from typing import NamedTuple

from remediator.core.durations import parse_timeout
from remediator.core.render import Template, compile_param

# Thousands of policies repeat a few `timeout` texts (`1s`, `10s`): each is parsed once.
# The result (timedelta) is immutable, so sharing it is safe; failures raise each time.
parse_static_timeout = functools.lru_cache(maxsize=1024)(parse_timeout)


class Backend(StrEnum):
    """The executor a kind runs on; also its /healthz name and its target-lock group."""

    DOCKER = "docker"
    KUBERNETES = "kubernetes"
    HTTP = "http"
    NOTIFY = "notify"
    POSTGRES = "postgres"


class Refusal(NamedTuple):
    """Why a rendered target is out of scope, and the target as it may be shown."""

    reason: str
    shown: str


def list_param(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A list param (ActionKind.lists) back in order from `NAME.0`, `NAME.1`, ...; empty when
    absent; ValueError when the list has a hole or an entry is not numbered."""
    indexed: dict[int, str] = {}
    for key, value in params.items():
        if key.startswith(name + "."):
            position = key.removeprefix(name + ".")
            if not position.isdigit():
                raise ValueError(f"unknown param {key}")
            indexed[int(position)] = value
    if sorted(indexed) != list(range(len(indexed))):
        raise ValueError(f"param {name} must be a list")
    return tuple(indexed[i] for i in range(len(indexed)))


def is_static(template: Template) -> bool:
    """No template expression in it: its value is known at load."""
    return "{" not in template.source


class ActionKind(ABC):
    """One action type. A kind is the only thing that knows its type's params, what a
    target of it is, which targets are in scope, and which executor runs it."""

    type: str
    backend: Backend
    allowed: frozenset[str]
    required: frozenset[str] = frozenset()
    # Extra param names by prefix (http.request's `headers` become `header.NAME` params).
    prefixes: tuple[str, ...] = ()
    # Params written as a list in the policy (docker.exec's `command`): item i becomes the
    # param `NAME.i`, a template of its own (see prefixes).
    lists: tuple[str, ...] = ()
    # Changes something a target names: the policy must say which targets it may touch.
    scoped: bool = True
    # What each param means, by the name a policy writes (a list or `headers` by its own
    # name): docs/reference.md and `remediator schema` show it; a test keeps it complete.
    params_doc: Mapping[str, str] = MappingProxyType({})

    # --- at load ------------------------------------------------------------------------

    def compile(self, source: str) -> Template:
        """A param text of a policy, compiled: it may reference ${secret:NAME}."""
        return compile_param(source)

    def check(self, params: Mapping[str, Template], allow_targets: tuple[str, ...]) -> None:
        """Everything `remediator check` can tell without an alert; ValueError says what."""
        unknown = sorted(
            name
            for name in set(params) - self.allowed
            if not any(name.startswith(prefix) for prefix in self.prefixes)
        )
        if unknown:
            raise ValueError(
                f"unknown param(s) {', '.join(unknown)} for {self.type}; "
                f"allowed: {', '.join(sorted(self.allowed))}"
            )
        missing = sorted(self.required - set(params))
        if missing:
            raise ValueError(f"missing param(s) {', '.join(missing)} for {self.type}")
        self.check_static(params)
        self.check_targets(params, allow_targets)

    @abstractmethod
    def check_static(self, params: Mapping[str, Template]) -> None:
        """The kind's own rules over the params known at load (the rest render later)."""

    def check_targets(self, params: Mapping[str, Template], allow_targets: tuple[str, ...]) -> None:
        if self.scoped and not allow_targets:
            raise ValueError(
                "allow_targets is required: list the targets this policy may touch "
                '(globs such as "web-*"; ["*"] allows everything)'
            )

    # --- per alert ----------------------------------------------------------------------

    @abstractmethod
    def target(self, params: Mapping[str, str]) -> str:
        """The target the rendered params name; RenderError when a rendered value is not
        a well-formed value of its kind (a template must never steer the action)."""

    def scope(
        self, target: str, allow_targets: tuple[str, ...], protected: frozenset[str]
    ) -> Refusal | None:
        """None when `target` is in scope, else why not. `protected`: the Kubernetes
        namespaces no policy may touch (kubernetes.protected_namespaces)."""
        return glob_scope(target, allow_targets)

    def __repr__(self) -> str:
        return f"<action kind {self.type}>"


# A policy's allow_targets as one compiled alternation, as fnmatchcase would try each glob
# (its translation, matched from the start); built once per list, not per alert.
@functools.lru_cache(maxsize=4096)
def _any_glob(allowed: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    if not allowed:
        return lambda _: None
    return re.compile("|".join(f"(?:{translate(glob)})" for glob in allowed)).match


def glob_scope(target: str, allowed: tuple[str, ...]) -> Refusal | None:
    if _any_glob(allowed)(target) is not None:
        return None
    return Refusal(f"target {target!r} is not in allow_targets [{', '.join(allowed)}]", target)
