"""Datadog bodies -> Alerts: the shipped template, Datadog's default payload, the real corpus."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.errors import IngestError
from remediator.ingest.datadog import (
    TRANSITIONS,
    Title,
    parse_datadog,
    parse_title,
    tag_labels,
)
from tests.conftest import CORPUS
from tests.fixtures.datadog import SAMPLE, notification, render

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def one(body: bytes) -> object:
    [alert] = parse_datadog(body, NOW)
    return alert


def test_the_shipped_template_filled_by_datadog() -> None:
    alert = parse_datadog(render(SAMPLE), NOW)[0]
    assert alert.source == "datadog" and alert.status == "firing"
    assert alert.episode == "dd:c:7879709234193994156" and alert.cycle is None
    assert alert.labels == {
        "alertname": "Container unhealthy",
        "container": "web-1",
        "env": "prod",
        "service": "web",
        "tag_monitor": "true",
        "monitor_id": "160077064",
        "host": "docker-host-1",
        "priority": "P1",
    }
    assert alert.annotations["transition"] == "Triggered"
    assert alert.annotations["text"].startswith('%%%\nweb-1 is "unhealthy".')
    assert alert.annotations["scope"] == "container:web-1,env:prod"
    assert alert.starts_at == datetime(2024, 12, 11, 15, 15, 35, tzinfo=UTC)  # $DATE is epoch ms
    assert alert.generator_url == SAMPLE["LINK"]


@pytest.mark.parametrize(
    ("transition", "status", "cycle"),
    [
        ("Triggered", "firing", "start"),
        ("Warn", "firing", "start"),
        ("No Data", "firing", "start"),
        ("Re-Triggered", "firing", "repeat"),
        ("Re-Warn", "firing", "repeat"),
        ("Re-No Data", "firing", "repeat"),
        ("Renotify", "firing", "repeat"),
        ("Recovered", "resolved", "end"),
    ],
)
def test_every_transition(transition: str, status: str, cycle: str) -> None:
    with_key = parse_datadog(notification(transition), NOW)[0]
    assert with_key.status == status and with_key.episode == "dd:c:c1" and with_key.cycle is None
    without = parse_datadog(notification(transition, cycle=None), NOW)[0]
    assert without.status == status
    assert without.episode == "dd:m:160077064:container:web-1,env:prod"  # monitor id + scope
    assert without.cycle == cycle
    assert with_key.fingerprint == without.fingerprint  # the monitor+scope identity


def test_unreplaced_variables_count_as_absent() -> None:
    body = render({"ALERT_TRANSITION": "Triggered", "EVENT_TITLE": "[Triggered] Disk full"})
    alert = parse_datadog(body, NOW)[0]
    assert alert.labels == {"alertname": "Disk full"}
    assert alert.starts_at == NOW  # $DATE unreplaced: the receipt time
    assert "$" not in json.dumps(alert.annotations)


@pytest.mark.parametrize(
    ("tags", "labels"),
    [
        ("env:prod,role:db", {"env": "prod", "role": "db"}),
        ("monitor", {"tag_monitor": "true"}),
        ("database_id:keephq-sandbox:keep", {"database_id": "keephq-sandbox:keep"}),
        (" env:prod , ,service:web ", {"env": "prod", "service": "web"}),
        ("security-group:sg-1,security-group:sg-2", {"security_group": "sg-1"}),
        (
            "kube_namespace:default,k8s.io/app:web",
            {"kube_namespace": "default", "k8s_io_app": "web"},
        ),
        ("3tier:web", {"tag_3tier": "web"}),
        ("", {}),
    ],
)
def test_tags_become_labels(tags: str, labels: dict[str, str]) -> None:
    assert tag_labels(tags) == labels


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"nope", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b"{}", "lacks transition"),
        (b'{"title": "Disk full", "monitor_id": "1"}', "lacks transition"),
        (b'{"transition": "Triggered"}', 'lacks monitor ("$ALERT_ID"'),
        (b'{"transition": "Muted", "monitor_id": "1"}', "unknown Datadog transition 'Muted'"),
        (render({}), "lacks transition"),  # the template with nothing filled in
        (b'{"transition": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not JSON"),
        (b'{"transition": "\xff"}', "not JSON"),
    ],
)
def test_bodies_lacking_what_the_daemon_needs_are_400_naming_it(body: bytes, problem: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse_datadog(body, NOW)
    assert caught.value.status == 400
    assert problem in caught.value.reason


# file prefix -> (status, transition, alertname) as SOURCES.md describes each body
EXPECTED = {
    "01": ("resolved", "Recovered", "Error monitor"),
    "02": ("firing", "Triggered", "Somethine weird in DB"),
    "03": ("firing", "Warn", "Unauthorized access to API keep-api"),
    "04": ("firing", "Triggered", "Unauthorized access to API keep-api"),
    "05": ("resolved", "Recovered", "Unauthorized access to API"),
    "06": ("firing", "Triggered", "CPU usage is high for host k3s-example-node-pool-a6e3h"),
    "07": ("resolved", "Recovered", "[] New issue to review"),
    "08": ("firing", "Triggered", "[New issue] New issue to review"),
    "09": ("firing", "Triggered", "[Synthetics] XYZ - A monitor that always fails"),
    "10": ("firing", "Triggered", "High tracking"),
    "11": ("firing", "Triggered", "[TEST] Host Cluster Alert"),
    "12": ("firing", "Triggered", "[TEST] CPU is high on redacted-host with an IP of 10.88.11.35"),
    "13": ("firing", "Triggered", "[TEST] CPU is high on GamingPC - BMR"),
    "14": (
        "firing",
        "Triggered",
        "[TEST] High CPU usage detected on pod echo-77b7b5c4b-pmccz (deployment echo)",
    ),
    "15": ("firing", "Triggered", "Dock is almost out of memory..."),
    "16": ("resolved", "Recovered", "Dock is almost out of memory..."),
    "17": ("firing", "Triggered", "xDai UE2-A"),
    "18": ("firing", "Re-Triggered", "Template"),
}
BODIES = sorted((CORPUS / "datadog").glob("*.json"))


def test_the_corpus_is_complete() -> None:
    assert sorted(p.name[:2] for p in BODIES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.name)
def test_corpus_bodies(path: Path) -> None:
    [alert] = parse_datadog(path.read_bytes(), NOW)
    status, transition, name = EXPECTED[path.name[:2]]
    assert (alert.status, alert.annotations["transition"], alert.labels["alertname"]) == (
        status,
        transition,
        name,
    )
    assert ("datadog_test" in alert.labels) == name.startswith("[TEST]")


def test_default_payload_takes_scope_and_priority_from_the_title() -> None:
    alert = parse_datadog(
        (
            CORPUS / "datadog" / "08-default-payload-triggered-error-tracking-html-entities.json"
        ).read_bytes(),
        NOW,
    )[0]
    assert alert.labels["priority"] == "P2"
    assert alert.annotations["scope"].startswith("issue.id:2df20914")
    assert alert.annotations["org_id"] == "1300568798"  # from the default payload's org.id
    assert alert.cycle == "start"


def test_a_monitor_recovering_and_firing_again_keeps_its_group() -> None:
    # files 03 (Warn), 05 (Recovered), 04 (Triggered): one monitor, in that order of `date`
    group = {
        parse_datadog((CORPUS / "datadog" / f).read_bytes(), NOW)[0].episode
        for f in (
            "03-keep-log-warn-p2.json",
            "05-keep-log-recovered-p2-trailing-space.json",
            "04-keep-log-triggered-p2-after-warn.json",
        )
    }
    assert group == {"dd:m:134462228:"}


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_parsed_or_400(body: bytes) -> None:
    try:
        parse_datadog(body, NOW)
    except IngestError as exc:
        status = exc.status
    else:
        status = 200
    assert status in (200, 400)


@given(
    st.dictionaries(
        st.sampled_from(
            ["title", "transition", "monitor_id", "cycle_key", "tags", "date", "scope"]
        ),
        st.one_of(st.none(), st.text(max_size=30), st.integers(), st.lists(st.text(max_size=3))),
    )
)
def test_arbitrary_field_values_are_parsed_or_400(fields: dict[str, object]) -> None:
    try:
        parse_datadog(json.dumps(fields).encode(), NOW)
    except IngestError as exc:
        assert exc.status == 400  # noqa: PT017  # the property: any refusal is a 400


# The title regex the hand-written parser replaced: the reference for what a title means
# (it was quadratic in whitespace, so it only ever sees short titles here).
_OLD_TITLE = re.compile(
    r"^\s*(?:\[(?P<priority>P[1-5])\]\s*)?"
    r"\[(?P<transition>Re-Triggered|Triggered|Re-Warn|Warn|Re-No Data|No Data|Renotify|Recovered)"
    r"(?:\s+on\s+\{(?P<scope>[^}]*)\})?\]\s*(?P<name>.*?)\s*$",
    re.DOTALL,
)
_PIECES = ["[", "]", "{", "}", "P1", "P6", " ", "\n", "\u00a0", "on", " on ", "x", "Re-"]
_PIECES += ["[P2] ", "[P1]", "[Triggered", "[No Data", " on {", "}]", "] ", "\t on\n{"]
_SPACE = st.sampled_from(["", " ", "  ", "\n", "\t", "\u00a0", "x"])
_NEAR_MISS = st.text(max_size=2)
# Near-valid titles: each part right or slightly off, so most cases exercise a branch.
_SHAPED = st.tuples(
    _SPACE,
    st.sampled_from(["", "[P1]", "[P5] ", "[P6]", "[P1", " [P2]\n"]),
    st.sampled_from(["[", "[", ""]),
    st.sampled_from([*TRANSITIONS, "Trig", "Re-Re-Warn"]),
    st.sampled_from([" on {a:b}", "\ton\n{}", " on {", "", " on{a}", " on {a", "on {a}"]),
    st.sampled_from(["]", "]", "}]", "", " ]"]),
    _SPACE,
    _NEAR_MISS,
    _SPACE,
).map("".join)
_TITLE_PARTS = _SHAPED | st.lists(
    st.sampled_from([*_PIECES, *TRANSITIONS]) | st.text(max_size=3), max_size=12
).map("".join)


@given(_TITLE_PARTS)
def test_title_parsing_means_what_the_old_regex_meant(title: str) -> None:
    old = _OLD_TITLE.match(title)
    new = parse_title(title)
    if old is None:
        assert new is None
    else:
        assert new == Title(
            old["priority"] or "", old["transition"], old["scope"] or "", old["name"]
        )


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "[P1] [Triggered on {host:a,env:b}] Disk full ",
            Title("P1", "Triggered", "host:a,env:b", "Disk full"),
        ),
        ("[Re-No Data] x", Title("", "Re-No Data", "", "x")),
        ("  [Recovered on {}]", Title("", "Recovered", "", "")),
        ("[Triggered on{a}] x", None),  # "on" needs whitespace on both sides
        ("[Triggered on {a} ] x", None),
        ("[P9] [Triggered] x", None),
        ("Triggered x", None),
    ],
)
def test_title_parts(title: str, expected: Title | None) -> None:
    assert parse_title(title) == expected


PATHOLOGICAL_TITLES = [
    "[" + "a" * 1_000_000,
    "[Triggered] " + " " * 1_000_000 + "x",  # the old regex: quadratic in this whitespace
    "[Triggered] x" + " \n" * 500_000 + "y",
    "[Triggered on {" + " " * 1_000_000,
    "[Triggered" + " " * 1_000_000 + "on",
    "[P1]" + " " * 1_000_000,
    "$A" + "A" * 1_000_000 + "[",
]


@pytest.mark.parametrize("title", PATHOLOGICAL_TITLES, ids=lambda t: repr(t[:16]))
def test_a_huge_title_is_parsed_in_linear_time(title: str) -> None:
    body = json.dumps({"title": title, "transition": "Triggered", "monitor_id": "1"}).encode()
    started = time.perf_counter()
    parse_datadog(body, NOW)
    assert time.perf_counter() - started < 0.5  # was 4.2 s for 20 KB, hours for 1 MiB


@pytest.mark.parametrize(
    "date",
    ["²", "١٢٣", "99999999999999999999", "999999999999999", "-5", "1e5", " ", 10**20, 1.5],
)
def test_an_implausible_date_is_the_receipt_time(date: object) -> None:
    body = json.dumps({"transition": "Triggered", "monitor_id": "1", "date": date}).encode()
    assert parse_datadog(body, NOW)[0].starts_at == NOW


def test_an_epoch_milliseconds_date_is_used() -> None:
    body = json.dumps({"transition": "Triggered", "monitor_id": "1", "date": 1_700_000_000_000})
    assert parse_datadog(body.encode(), NOW)[0].starts_at == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )
