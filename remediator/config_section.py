"""The base of every config section (unknown keys are errors, `KEY_file` reads a secret from a
file) and the secret types sections share. It reads only the files a config names, never the
environment: `${ENV}` is substituted before validation (remediator/config_file.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    model_validator,
)


class Section(BaseModel):
    """Unknown keys are errors; `KEY_file` reads KEY's secret value from a file."""

    # A field's docstring is its description in docs/reference.md and `remediator schema`,
    # read by remediator/fielddocs.py when they are made, not at every start.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        base = Path((info.context or {}).get("base_dir", "."))
        resolved = dict(data)
        for key in [k for k in data if isinstance(k, str) and k.endswith("_file")]:
            field = key.removesuffix("_file")
            if field not in cls.model_fields:
                continue  # left in place: extra="forbid" reports it by its own name
            if field in data:
                raise ValueError(f"set either {field} or {key}, not both")
            path = base / str(data[key])
            text = read_secret_file(path, key, info)
            del resolved[key]
            if text is not None:
                resolved[field] = text
            elif _holds_secret(cls.model_fields[field].annotation):
                resolved[field] = f"(unread {path})"
            # else (state_file): the key's default stands in, as the note says
        return resolved


def read_secret_file(path: Path, key: str, info: ValidationInfo) -> str | None:
    """The file's text. When it cannot be read: ValueError, or for `check` and `simulate`
    (parse_config's `unset`, passed as the context's `unread`) a note and None."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        message = f"{key}: cannot read {path}: {exc.strerror}"
        unread = (info.context or {}).get("unread")
        if unread is None:
            raise ValueError(message) from None
        unread.append(message)
        return None


def _holds_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_holds_secret(a) for a in get_args(annotation))


def _non_empty(value: SecretStr) -> SecretStr:
    # An empty credential (an unset ${VAR:-}, an empty file) would accept an empty header.
    if not value.get_secret_value():
        raise ValueError("must not be empty")
    return value


NonEmptySecret = Annotated[SecretStr, AfterValidator(_non_empty)]


def named_secrets(value: Any, info: ValidationInfo, what: str) -> Any:
    """A mapping of name -> secret where `NAME_file: PATH` reads NAME's value from a file
    (`secrets: {pg_password_file: /run/secrets/pg}` defines ${secret:pg_password})."""
    if not isinstance(value, dict):
        return value
    base = Path((info.context or {}).get("base_dir", "."))
    resolved: dict[str, Any] = {}
    for key, raw in value.items():
        name = str(key)
        if name.endswith("_file"):
            name = name.removesuffix("_file")
            path = base / str(raw)
            raw = read_secret_file(path, str(key), info)  # noqa: PLW2901
            if raw is None:
                raw = f"(unread {path})"  # noqa: PLW2901
        if name in resolved:
            raise ValueError(f"{what} {name} is set twice")
        resolved[name] = raw
    return resolved
