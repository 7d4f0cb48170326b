"""Alertmanager and Grafana webhook bodies -> Alerts: the real corpus, old senders, bad shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.timestamps import parse_rfc3339_ns
from remediator.errors import IngestError
from remediator.ingest.alertmanager import parse_alertmanager
from remediator.ingest.fingerprint import label_fingerprint
from tests.conftest import CORPUS

# file prefix -> (alerts, firing) as SOURCES.md describes each body.
EXPECTED = {
    "01": (1, 1),
    "02": (4, 4),
    "03": (4, 2),
    "04": (1, 0),
    "05": (2, 0),
    "06": (1, 1),
    "07": (2, 2),
    "08": (19, 19),
    "09": (2, 2),
    "10": (3, 3),
    "11": (3, 3),
    "12": (1, 0),
    "13": (2, 2),
    "14": (1, 1),
    "15": (1, 1),
    "16": (1, 0),
    "17": (1, 0),
    "18": (1, 1),
    "19": (1, 0),
    "20": (1, 1),
    "21": (1, 1),
    "22": (1, 1),
    "23": (2, 2),
    "24": (2, 2),
    "25": (1, 1),
    "26": (1, 1),
}
BODIES = sorted((CORPUS / "alertmanager").glob("*.json"))


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name[:2] for p in BODIES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.name)
def test_corpus_bodies_parse_with_the_right_alert_count(path: Path) -> None:
    alerts = parse_alertmanager(path.read_bytes())
    total, firing = EXPECTED[path.name[:2]]
    assert len(alerts) == total
    assert sum(a.status == "firing" for a in alerts) == firing
    raw = json.loads(path.read_bytes())["alerts"]
    for alert, original in zip(alerts, raw, strict=True):
        assert alert.labels == original["labels"]
        assert alert.fingerprint == (
            original.get("fingerprint") or label_fingerprint(original["labels"])
        )
        assert alert.episode.startswith(f"am:{alert.fingerprint}:")


def test_fingerprints_equal_alertmanagers_own_where_the_corpus_has_them() -> None:
    # Bodies whose labels were hand-edited after capture (SOURCES.md) cannot match.
    edited = {"07", "18", "21", "24", "26"}
    checked = 0
    for path in BODIES:
        if path.name[:2] in edited:
            continue
        for alert in json.loads(path.read_bytes())["alerts"]:
            if alert.get("fingerprint"):
                assert label_fingerprint(alert["labels"]) == alert["fingerprint"], path.name
                checked += 1
    assert checked >= 20


def test_old_bodies_without_fingerprint_get_a_stable_one() -> None:
    body = (CORPUS / "alertmanager" / "09-am018-wire-exact-2-alerts.json").read_bytes()
    first, second = parse_alertmanager(body), parse_alertmanager(body)
    assert [a.episode for a in first] == [a.episode for a in second]
    assert first[0].fingerprint != first[1].fingerprint


def test_missing_per_alert_status_is_taken_from_ends_at() -> None:
    body = {
        "alerts": [
            {
                "labels": {"a": "1"},
                "startsAt": "2019-01-09T15:20:40.341301011Z",
                "endsAt": "0001-01-01T00:00:00Z",
            },
            {
                "labels": {"a": "2"},
                "startsAt": "2019-01-09T15:20:40Z",
                "endsAt": "2019-01-09T15:25:40Z",
            },
        ]
    }
    assert [a.status for a in parse_alertmanager(json.dumps(body).encode())] == [
        "firing",
        "resolved",
    ]


def test_the_same_instant_in_two_time_zones_is_one_episode() -> None:
    utc = {"alerts": [{"labels": {"a": "1"}, "startsAt": "2023-03-25T06:39:51.68943305Z"}]}
    cst = {"alerts": [{"labels": {"a": "1"}, "startsAt": "2023-03-25T14:39:51.68943305+08:00"}]}
    assert (
        parse_alertmanager(json.dumps(utc).encode())[0].episode
        == parse_alertmanager(json.dumps(cst).encode())[0].episode
    )


def test_nanoseconds_separate_episodes_that_microseconds_would_merge() -> None:
    a = {"alerts": [{"labels": {"a": "1"}, "startsAt": "2020-01-01T00:00:00.000000001Z"}]}
    b = {"alerts": [{"labels": {"a": "1"}, "startsAt": "2020-01-01T00:00:00.000000002Z"}]}
    assert (
        parse_alertmanager(json.dumps(a).encode())[0].episode
        != parse_alertmanager(json.dumps(b).encode())[0].episode
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "Invalid JSON"),
        (b"not json", "Invalid JSON"),
        (b"[]", "Input should be an object"),
        (b'{"version": "4"}', "alerts: Field required"),
        (b'{"alerts": {}}', "alerts: Input should be a valid array"),
        (b'{"alerts": [1]}', "alerts.0: Input should be an object"),
        (b'{"alerts": [{"startsAt": "2020-01-01T00:00:00Z"}]}', "alerts.0.labels: Field required"),
        (
            b'{"alerts": [{"labels": {"a": 1}, "startsAt": "2020-01-01T00:00:00Z"}]}',
            "alerts.0.labels.a: Input should be a valid string",
        ),
        (b'{"alerts": [{"labels": {}}]}', "alerts.0.startsAt: Field required"),
        (
            b'{"alerts": [{"labels": {}, "startsAt": "yesterday"}]}',
            "alerts.0: not an RFC3339 timestamp",
        ),
        (
            b'{"alerts": [{"labels": {}, "startsAt": "2020-01-01T00:00:00Z", "status": "burning"}]}',
            "alerts.0.status",
        ),
        (
            b'{"alerts": [{"labels": {}, "startsAt": "2020-01-01T00:00:00Z"}, {"labels": []}]}',
            "alerts.1.labels",
        ),
        (b'{"alerts": ["\xff\xfe"]}', "Invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "Invalid JSON"),
        (b'{"alerts": ' + b"[" * 5000 + b"]" * 5000 + b"}", "Invalid JSON"),
    ],
)
def test_malformed_bodies_are_rejected_whole_with_a_reason(body: bytes, problem: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse_alertmanager(body)
    assert caught.value.status == 400
    assert problem in caught.value.reason


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(body: bytes) -> None:
    try:
        parse_alertmanager(body)
    except IngestError as exc:
        status = exc.status
    else:
        status = 200
    assert status in (200, 400)


@pytest.mark.parametrize(
    "text",
    ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.1Z", "2020-01-01T08:00:00.123456789+08:00"],
)
def test_timestamps(text: str) -> None:
    moment, ns = parse_rfc3339_ns(text)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert moment.tzinfo is UTC
    assert (moment - epoch) // timedelta(microseconds=1) == ns // 1000


@pytest.mark.parametrize(
    "starts_at",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: OverflowError, once a 500
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2026-13-01T00:00:00Z",
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits: not RFC 3339
        "2026-01-01T00:00:00.\uff11Z",
    ],
)
def test_a_timestamp_python_cannot_hold_is_a_400(starts_at: str) -> None:
    body = json.dumps({"alerts": [{"labels": {"a": "b"}, "startsAt": starts_at}]}).encode()
    with pytest.raises(IngestError) as raised:
        parse_alertmanager(body)
    assert raised.value.status == 400 and "alerts.0" in raised.value.reason
