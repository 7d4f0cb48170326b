"""Dependency floors stay above releases with published advisories, and the versions the
image pins (constraints.txt) satisfy every range pyproject.toml declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# The first release that fixed a published advisory in each (see pyproject.toml).
FIXED = {
    "aiohttp": "3.12.14",  # request smuggling in the pure-Python parser
    "jinja2": "3.1.6",  # sandbox escape through |attr
    "orjson": "3.9.15",  # unbounded recursion on deeply nested input
    "requests": "2.32.4",  # .netrc credentials leaked to other hosts
    "urllib3": "2.5.0",  # redirects not disabled when asked
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    return {req.name.lower(): req for req in found}


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = Version(version.strip())
    return pins


@pytest.mark.parametrize(("name", "fixed"), sorted(FIXED.items()))
def test_no_allowed_release_has_the_known_advisory(name: str, fixed: str) -> None:
    requirement = _requirements()[name]
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert floors and max(floors) >= Version(fixed), requirement


def test_the_image_pins_satisfy_every_declared_range() -> None:
    pins = _pins()
    for name, requirement in _requirements().items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert pins[name] in requirement.specifier, (name, pins[name], requirement)
