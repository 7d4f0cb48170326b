"""Reads policy files and folders (`*.yaml`, `*.yml`, not recursive) into validated policies."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from remediator.core.policy import Policy, check_unique, parse_policies
from remediator.errors import PolicyError


def policy_files(paths: Iterable[Path], *, must_exist: bool) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        elif must_exist:
            problems.append(f"{path}: policy ?: (file): no such file or folder")
    return files, problems


def load_policies(paths: Iterable[Path], *, must_exist: bool = True) -> list[Policy]:
    """All policies, or PolicyError listing every problem in every file.

    `must_exist=False` is for the built-in default `./policies`: absent means no policies,
    while a path an operator configured and mistyped is an error.
    """
    files, problems = policy_files(paths, must_exist=must_exist)
    located: list[tuple[str, Policy]] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: policy ?: (file): cannot read: {exc}")
            continue
        policies, found = parse_policies(text, str(file))
        problems.extend(found)
        located.extend((str(file), p) for p in policies)
    problems.extend(check_unique(located))
    if problems:
        raise PolicyError(problems)
    return [p for _, p in located]
