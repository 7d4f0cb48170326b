"""The `docker.exec` kind: a command, as an argument list (never a shell), run in a container
or in every replica of a compose service, like `docker exec`. Its params (read once, by
`exec_spec`, for the target at render and for the executor), its static check, and what
counts as done (the expected exit code). Pure.

`command` is a list in the policy; each item is a template and becomes one argument exactly
as rendered, so a label carrying `; rm -rf /` is one literal argument to the program, never
shell syntax. The list is held as the params `command.0`, `command.1`, ... (every action's
params are a flat mapping of rendered strings: the audit log, approvals and the runner keep
them as they are).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from remediator.core.durations import parse_timeout
from remediator.core.kinds.base import ActionKind, Backend, is_static, list_param
from remediator.core.kinds.docker import (
    LOCATION,
    LOCATION_DOC,
    RestartTarget,
    check_location,
    container_location,
)
from remediator.core.render import Template, compile_param
from remediator.errors import RenderError

COMMAND = "command"
DEFAULT_TIMEOUT = "30s"
# What the action's record keeps of the output (its tail: where a failing command says why).
OUTPUT_KEPT = 4096
# `user`, `user:group`, `uid`, `uid:gid`, as `docker exec --user` takes them.
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?\Z")
_OWN = frozenset({"user", "timeout", "expect_exit"})


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """Read params: where, the argument list, the user (None: the image's), the timeout in
    seconds, and the exit code that counts as success."""

    where: RestartTarget
    command: tuple[str, ...]
    user: str | None
    timeout: float
    expect_exit: int


def command_of(params: Mapping[str, str]) -> tuple[str, ...]:
    """`command.0`, `command.1`, ... in order; ValueError when the list is missing or has a
    hole."""
    command = list_param(params, COMMAND)
    if not command:
        raise ValueError("missing param command (a list of arguments)")
    return command


def _exit_code(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 255:
        raise ValueError(f"expect_exit {text!r} is not an exit code (0-255)")
    return int(text)


def exec_spec(params: Mapping[str, str]) -> ExecSpec:
    """The one reading of rendered docker.exec params; ValueError says what is wrong."""
    unknown = sorted(
        n for n in params if n not in LOCATION | _OWN and not n.startswith(COMMAND + ".")
    )
    if unknown:
        raise ValueError(f"unknown param(s) {', '.join(unknown)}")
    command = command_of(params)
    for position, argument in enumerate(command):
        if "\x00" in argument:  # an argv entry cannot hold NUL: refuse rather than truncate
            raise ValueError(f"command[{position}] contains a NUL character")
    user = params.get("user", "").strip() or None
    if user is not None and not _USER.match(user):
        raise ValueError(f"user {user!r} is not a user or user:group name")
    try:
        timeout = parse_timeout(params.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"param timeout: {exc}") from None
    expect = _exit_code(params.get("expect_exit", "0"))
    where = container_location(params)
    return ExecSpec(where, command, user, timeout.total_seconds(), expect)


class DockerExec(ActionKind):
    type = "docker.exec"
    backend = Backend.DOCKER
    allowed = LOCATION | _OWN
    prefixes = (COMMAND + ".",)
    lists = (COMMAND,)
    params_doc = MappingProxyType(
        {
            **LOCATION_DOC,
            COMMAND: "The command as a list of arguments, each a template (never a shell; "
            "required).",
            "user": "The user to run it as (`name`, `uid`, `uid:gid`); default: the container's.",
            "timeout": f"How long the command may run (default {DEFAULT_TIMEOUT}).",
            "expect_exit": "The exit code that counts as success (default 0).",
        }
    )

    def compile(self, source: str) -> Template:
        template = compile_param(source)
        if template.secret_names:
            # argv is readable by every process in the container (/proc/N/cmdline) and is
            # shown in the audit: a secret belongs in the container's own environment.
            raise ValueError(
                "docker.exec does not fill in ${secret:...}: a command line is visible to "
                "every process in the container; give the container the secret instead"
            )
        return template

    def check_static(self, params: Mapping[str, Template]) -> None:
        check_location(self.type, params)
        command_of({name: template.source for name, template in params.items()})
        for name, check in (
            ("expect_exit", _exit_code),
            ("user", _static_user),
        ):
            template = params.get(name)
            if template is not None and is_static(template):
                check(template.source)

    def target(self, params: Mapping[str, str]) -> str:
        try:
            return exec_spec(params).where.describe()
        except ValueError as exc:
            raise RenderError(f"rendered {exc}") from None


def _static_user(text: str) -> None:
    if not _USER.match(text.strip()):
        raise ValueError(f"user {text!r} is not a user or user:group name")


DOCKER_EXEC = DockerExec()
