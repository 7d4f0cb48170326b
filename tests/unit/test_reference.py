"""The reference stays true to the models: docs/reference.md is what the generator makes of
them today, every key has a meaning, and deploy/remediator.yaml lists every config key with
its default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from remediator.config import Config
from remediator.config_file import parse_config
from remediator.core.kinds import KINDS
from remediator.core.policy import Policy
from remediator.reference import render, rows

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "remediator.yaml"


def test_docs_reference_is_generated_from_the_models_of_today() -> None:
    written = (REPO / "docs" / "reference.md").read_text()
    assert written == render(), "docs/reference.md is out of date: run `make reference`"


def test_every_key_and_field_has_a_type_and_a_meaning() -> None:
    for model in (Config, Policy):
        for key, kind, _, meaning in rows(model):
            assert kind and meaning, f"{model.__name__}: {key} needs a docstring"


def test_every_param_of_every_action_type_has_a_meaning() -> None:
    for kind in KINDS.values():
        written = set(kind.allowed) | set(kind.lists)
        if "header." in kind.prefixes:
            written.add("headers")
        assert set(kind.params_doc) == written, kind.type
        assert all(kind.params_doc.values()), kind.type
    assert "`postgres.execute`" in render() and "| `to_revision` |" in render()


def _paths(node: Any, prefix: str = "") -> set[str]:
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            found.add(path)
            if key not in ("tokens", "secrets"):  # a mapping of names, not of keys
                found |= _paths(value, f"{path}.")
    return found


# Keys that exclude another one (exactly one credential per endpoint): shown commented out.
ALTERNATIVES = {
    "auth.alertmanager.basic",
    "auth.alertmanager.basic.username",
    "auth.alertmanager.basic.password",
    "auth.alertmanager.allow_unauthenticated",
    "auth.datadog.allow_unauthenticated",
    "auth.api.allow_unauthenticated",
    "auth.api.bearer_token",
}
# Values that are an example, not the default: where the policies are from deploy/, and the
# auth blocks (the default is none: open on loopback only).
EXAMPLES = ("policies", "auth.")


def test_the_deploy_config_lists_every_key() -> None:
    text = DEPLOY.read_text()
    present = _paths(yaml.safe_load(text))
    keys = {key.replace("[]", "") for key, *_ in rows(Config)}
    assert keys - present - ALTERNATIVES == set(), "keys missing from deploy/remediator.yaml"
    comments = "\n".join(line for line in text.splitlines() if "#" in line)
    for key in ALTERNATIVES:
        assert f"{key.rsplit('.', 1)[-1]}" in comments, f"{key} is not shown in a comment"
    assert present - keys == set()


def _get(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def test_the_deploy_config_shows_each_default() -> None:
    unset: list[str] = []
    config = parse_config(DEPLOY.read_text(), str(DEPLOY), {}, DEPLOY.parent, unset)
    defaults = Config()
    leaves = [key for key, kind, *_ in rows(Config) if "mapping" not in kind or "name" in kind]
    checked = [key for key in leaves if not key.startswith(EXAMPLES)]
    assert len(checked) > 20
    for key in checked:
        assert _get(config, key) == _get(defaults, key), key
