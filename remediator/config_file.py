"""Loading the config: YAML text with `${ENV}` substituted and validated into a Config (pure
over text, environment and base folder), its thin file wrapper, and where the Kubernetes client
finds its own config. A failure is a ConfigError of `FILE: field: message` lines, never a log
line or an exit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from remediator.addresses import network_problems
from remediator.config import Config
from remediator.core import yamlstrict
from remediator.errors import ConfigError

DEFAULT_CONFIG = Path("remediator.yaml")
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _substitute(node: Any, path: str, env: Mapping[str, str], unset: list[str] | None) -> Any:
    if isinstance(node, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else str(k), env, unset)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, unset) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match["name"], match["default"]
            if name in env:
                return env[name]
            if default is not None:
                return default
            message = f"{path}: environment variable {name} is not set"
            if unset is None:
                raise ConfigError(message)
            unset.append(message)
            return match[0]  # kept as written: the value is checked as a placeholder

        return _ENV_REF.sub(replace, node)
    return node


def parse_config(
    text: str,
    filename: str,
    env: Mapping[str, str],
    base_dir: Path = Path("."),
    unset: list[str] | None = None,
) -> Config:
    """Config from YAML text. ConfigError lines read `FILE: field: message`.

    `unset`: for `check` and `simulate`, which need no secret values: a `${VAR}` that is not
    in `env` is not an error but a line `FILE: field: ...` added to this list, and the text
    `${VAR}` stays the value; a secret's `*_file` that cannot be read is a line too, its value
    a placeholder (`state_file`: the default state stands in). None (`serve`): both are
    ConfigErrors."""
    try:
        raw = yamlstrict.load(text)
    except Exception as exc:  # noqa: BLE001  # every YAML error becomes one ConfigError
        raise ConfigError(f"{filename}: yaml: {yamlstrict.describe(exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{filename}: (config): expected a mapping")
    notes: list[str] = []
    try:
        substituted = _substitute(raw, "", env, None if unset is None else notes)
    except ConfigError as exc:
        raise ConfigError(f"{filename}: {exc}") from None
    substituted["base_dir"] = str(base_dir)
    context: dict[str, Any] = {"base_dir": str(base_dir)}
    if unset is not None:
        context["unread"] = notes  # a `*_file` that cannot be read: a note too
    try:
        config = Config.model_validate(substituted, context=context)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(config)"
            lines.append(f"{filename}: {where}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None
    finally:
        if unset is not None:  # a union may validate a section twice: each note once
            unset.extend(f"{filename}: {line}" for line in dict.fromkeys(notes))
    problems = network_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{filename}: {line}" for line in problems))
    return config


def kubeconfig_source(kubeconfig: str | None) -> str | None:
    """Where the client would load its config from, or None when there is none."""
    if kubeconfig:
        return kubeconfig if Path(kubeconfig).expanduser().exists() else None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "in-cluster service account"
    default = Path(os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
    return str(default) if default.exists() else None


def load_config(
    path: Path | None, env: Mapping[str, str] | None = None, unset: list[str] | None = None
) -> Config:
    """`path` None: ./remediator.yaml if present, else built-in defaults. `unset`: as in
    parse_config (`check` and `simulate` pass a list; `serve` does not)."""
    environ = os.environ if env is None else env
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return Config()
        path = DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(text, str(path), environ, path.parent, unset)
