"""The README's deployment instructions name only files that exist: every `deploy/...` path,
and every kustomization its `kubectl apply -k` commands apply (each one rendered by
test_kustomize.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures.kustomize import OVERLAYS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_every_deploy_path_the_readme_names_exists() -> None:
    named = set(re.findall(r"(?<![\w/.-])deploy/[\w./-]*[\w/]", README))
    assert "deploy/kubernetes/overlays/sqlite" in named  # the pattern finds what it should
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert missing == []


def test_every_kustomization_the_readme_applies_exists_and_is_rendered_by_the_tests() -> None:
    found = re.findall(r"kubectl apply -k ([\w./-]*\w)", README)
    assert len(found) == README.count("kubectl apply -k ")  # none the pattern misses
    applied = set(found)
    assert "deploy/kubernetes" in applied
    for target in sorted(applied):
        assert (REPO / target / "kustomization.yaml").is_file(), target
        assert target in {"deploy/kubernetes", *(f"deploy/kubernetes/{o}" for o in OVERLAYS)}


def test_every_file_the_readme_applies_exists() -> None:
    files = set(re.findall(r"kubectl apply -f ([\w./-]*\w)", README))  # not `-f -` (a pipe)
    assert "deploy/kubernetes/base/namespace.yaml" in files
    for path in sorted(files):
        assert (REPO / path).is_file(), path
