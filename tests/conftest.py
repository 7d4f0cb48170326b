"""Shared fixtures: real components (dockerd, Alertmanager), the daemon, and leak checks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from remediator import log

pytest_plugins = [
    "tests.fixtures.docker_engine",
    "tests.fixtures.alertmanager",
    "tests.fixtures.daemon",
    "tests.fixtures.k8s_api",
    "tests.fixtures.slack_api",
    "tests.fixtures.prometheus",
    "tests.fixtures.postgres",
    "tests.fixtures.http_hook",
    "tests.fixtures.health_endpoint",
    "tests.fixtures.held_prometheus",
]


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """For a test that calls log.configure(): the root logger's handlers and level, the info
    level and structlog's defaults are put back after it (configure points them at the
    test's captured stderr)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    log.configure("info")
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


# Real webhook bodies (see corpus/SOURCES.md), kept in the repo so a fresh clone has them.
CORPUS = Path(__file__).resolve().parent / "corpus"


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fails a test that leaves a child process running (session fixtures start before this)."""
    before = _children()
    yield
    leaked = _children() - before
    assert not leaked, f"test leaked child processes: {sorted(leaked)}"
