"""Byte-identical Alertmanager bodies parsed once: the same alerts the parser gives, refused
bodies refused every time, and bounded in count and body size."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from remediator.core.alert import Alert
from remediator.errors import IngestError
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.bodies import ParsedBodies
from tests.conftest import CORPUS

BODIES = sorted((CORPUS / "alertmanager").glob("*.json"))


class Counting:
    """parse_alertmanager, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: bytes) -> Sequence[Alert]:
        self.calls += 1
        return parse_alertmanager(body)


def _body(n: int) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": f"A{n}"},
        "startsAt": "2026-01-01T00:00:00Z",
    }
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.name)
def test_every_corpus_body_gives_what_the_parser_gives_and_is_parsed_once(path: Path) -> None:
    body = path.read_bytes()
    parse = Counting()
    bodies = ParsedBodies(parse)
    first = bodies(body)
    assert first == tuple(parse_alertmanager(body))
    # A copy of the bytes, as the next request reads them: found by value, not identity.
    again = bodies(bytes(bytearray(body)))
    assert again is first
    assert parse.calls == 1


def test_corpus_is_there() -> None:
    assert len(BODIES) >= 20


def test_a_refused_body_is_refused_every_time_and_never_held() -> None:
    parse = Counting()
    bodies = ParsedBodies(parse)
    for _ in range(3):
        with pytest.raises(IngestError) as caught:
            bodies(b'{"alerts": [{"labels": {}}]}')
        assert caught.value.status == 400
    assert parse.calls == 3


def test_a_body_over_the_size_limit_is_parsed_every_time() -> None:
    parse = Counting()
    small, large = _body(1), _body(2) + b" " * 100
    bodies = ParsedBodies(parse, max_body_bytes=len(small))
    for _ in range(3):
        assert bodies(large) == tuple(parse_alertmanager(large))
        bodies(small)
    assert parse.calls == 3 + 1


def test_distinct_bodies_keep_at_most_the_newest_entries() -> None:
    parse = Counting()
    bodies = ParsedBodies(parse, entries=4)
    for n in range(10):
        bodies(_body(n))
    assert parse.calls == 10
    for n in range(6, 10):  # the newest four are still known
        bodies(_body(n))
    assert parse.calls == 10
    bodies(_body(0))  # forgotten: parsed again
    assert parse.calls == 11
    assert len(bodies._known) == 4  # the bound itself is what is tested


def test_a_changed_body_is_parsed_again() -> None:
    """One byte differs (a new alert state): never the old body's alerts."""
    parse = Counting()
    bodies = ParsedBodies(parse)
    firing = _body(1)
    resolved = firing.replace(b'"status": "firing", "labels"', b'"status": "resolved", "labels"')
    assert bodies(firing)[0].status == "firing"
    assert bodies(resolved)[0].status == "resolved"
    assert parse.calls == 2
