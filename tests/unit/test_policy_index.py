"""PolicyIndex answers exactly what trying every policy's matchers answers, in policy order."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.core.alert import Alert
from remediator.core.matchers import matches_all, parse_matcher
from remediator.core.policy import Policy, parse_policies
from remediator.core.policy_index import FilingKey, PolicyIndex, filing_keys

NOW = datetime(2026, 5, 17, 21, 38, tzinfo=UTC)


def policies(*specs: tuple[Sequence[str], str, str]) -> list[Policy]:
    """One notify policy `p0`, `p1`... per (matchers, source, status), parsed as files are."""
    documents = [
        json.dumps(
            {
                "name": f"p{index}",
                "match": {"source": source, "status": status, "matchers": list(matchers)},
                "action": {"type": "notify", "params": {"text": "hi"}},
            }
        )
        for index, (matchers, source, status) in enumerate(specs)
    ]
    parsed, problems = parse_policies("\n---\n".join(documents), "p.yaml")
    assert problems == []
    return parsed


def alert(labels: Mapping[str, str], source: str = "alertmanager", status: str = "firing") -> Alert:
    return Alert(
        source=source,  # type: ignore[arg-type]  # the strategies draw only valid sources
        status=status,  # type: ignore[arg-type]
        labels=dict(labels),
        annotations={},
        starts_at=NOW,
        fingerprint="f",
        episode="e",
    )


def brute_force(ps: Sequence[Policy], a: Alert) -> list[Policy]:
    """The loop the index replaces (pipeline.concerned before it)."""
    return [p for p in ps if p.matches_source(a.source) and matches_all(p.match.matchers, a.labels)]


def names(ps: Sequence[Policy]) -> list[str]:
    return [p.name for p in ps]


def any_source(*matchers: str) -> tuple[Sequence[str], str, str]:
    return (matchers, "any", "firing")


# --- table-driven ---------------------------------------------------------------------------

TABLE = policies(
    any_source('alertname="ContainerDown"', 'service=~"web|api"'),  # p0: filed by alertname
    any_source('service=~"web.*"'),  # p1: regex only: always tried
    any_source('alertname="DiskFull"'),  # p2
    any_source('env!="dev"'),  # p3: != only: always tried
    any_source(),  # p4: no matchers: every alert
    any_source('team=""', 'alertname="ContainerDown"'),  # p5: alertname chosen over team=""
    any_source('team=""'),  # p6: only an empty equality: filed under ""
    any_source('alertname="ContainerDown"', 'severity="critical"'),  # p7: a repeated key
    ((), "datadog", "firing"),  # p8: source filter
    any_source('service=~"db|"'),  # p9: literal alternatives, one of them empty
    (('alertname="ContainerDown"',), "any", "resolved"),  # p10: other status
)


@pytest.mark.parametrize(
    ("labels", "source", "expected"),
    [
        (
            {"alertname": "ContainerDown", "service": "web"},
            "alertmanager",
            ["p0", "p1", "p3", "p4", "p5", "p6", "p10"],
        ),
        (
            {"alertname": "ContainerDown", "severity": "critical", "team": "ops"},
            "alertmanager",
            ["p3", "p4", "p7", "p9", "p10"],
        ),
        (
            {"alertname": "DiskFull", "env": "dev", "service": "db"},
            "datadog",
            ["p2", "p4", "p6", "p8", "p9"],
        ),
        ({}, "alertmanager", ["p3", "p4", "p6", "p9"]),  # a missing label is ""
        ({"team": "", "service": ""}, "alertmanager", ["p3", "p4", "p6", "p9"]),  # empty as missing
        ({"team": "x", "service": "api"}, "alertmanager", ["p3", "p4"]),
        (
            {"alertname": "containerdown"},
            "alertmanager",
            ["p3", "p4", "p6", "p9"],
        ),  # case-sensitive
        ({"service": "db|"}, "alertmanager", ["p3", "p4", "p6"]),  # a regex is not a value
    ],
)
def test_concerned_matches_brute_force_in_order(
    labels: dict[str, str], source: str, expected: list[str]
) -> None:
    index = PolicyIndex(TABLE)
    found = index.concerned(alert(labels, source))
    assert names(found) == expected
    assert names(found) == names(brute_force(TABLE, alert(labels, source)))


def test_matching_keeps_only_the_alert_status() -> None:
    index = PolicyIndex(TABLE)
    labels = {"alertname": "ContainerDown", "service": "web"}
    assert "p10" not in names(index.matching(alert(labels, status="firing")))
    assert names(index.matching(alert(labels, status="resolved"))) == ["p10"]


def test_policies_and_by_name() -> None:
    index = PolicyIndex(TABLE)
    assert index.policies == tuple(TABLE)
    assert index.by_name["p7"] is TABLE[7]
    assert set(index.by_name) == {p.name for p in TABLE}
    with pytest.raises(TypeError):
        index.by_name["x"] = TABLE[0]  # type: ignore[index]  # read-only


def test_empty_index() -> None:
    index = PolicyIndex([])
    assert index.concerned(alert({"alertname": "X"})) == []
    assert index.policies == ()


@pytest.mark.parametrize(
    ("matchers", "key"),
    [
        (['alertname="X"', 'service="web"'], FilingKey("alertname", frozenset({"X"}))),
        (['service="web"', 'alertname="X"'], FilingKey("alertname", frozenset({"X"}))),
        (['service="web"', 'env="prod"'], FilingKey("service", frozenset({"web"}))),
        # alertname="" takes every alert without an alertname: the other key is better
        (['alertname=""', 'service="web"'], FilingKey("service", frozenset({"web"}))),
        (['alertname=~"A|B"', 'service="web"'], FilingKey("service", frozenset({"web"}))),
        (['alertname=~"A|B"', 'service=~"x"'], FilingKey("service", frozenset({"x"}))),  # 1 < 2
        (['alertname=~"A|B"', 'service=~"x|y"'], FilingKey("alertname", frozenset({"A", "B"}))),
        (['service=~"web|"', 'env=""'], FilingKey("env", frozenset({""}))),
        (['alertname=~"Disk.*"'], FilingKey("alertname", prefix="Disk")),
        (['alertname=~"Disk.*"', 'env=~"prod|staging"'], FilingKey("alertname", prefix="Disk")),
        (['alertname=~"Disk.*"', 'env=~"prod"'], FilingKey("env", frozenset({"prod"}))),  # a tie
        (['alertname=~"Disk.*"', 'env=""'], FilingKey("alertname", prefix="Disk")),
        ([r'service=~"web-\\d+"', 'alertname=~"Disk.*"'], FilingKey("alertname", prefix="Disk")),
        (['alertname=~".*Disk"'], None),
        (['alertname=~"(Disk|Node).*"'], None),
        (['alertname!="X"', 'env!~"dev|test"'], None),
        ([], None),
    ],
)
def test_filing_key(matchers: list[str], key: FilingKey | None) -> None:
    assert filing_keys([[parse_matcher(m) for m in matchers]]) == [key]


def test_filing_prefers_the_key_fewer_policies_share() -> None:
    specs = [
        ['alertname="ContainerDown"', 'service="web"'],
        ['alertname="ContainerDown"', 'service="api"'],
        ['alertname="DiskFull"', 'service="web"'],
        ['severity=~"critical|page"', 'service=~"svc-1.*"'],
        ['severity=~"critical|page"', 'service=~"svc-2.*"'],
    ]
    keys = filing_keys([[parse_matcher(m) for m in spec] for spec in specs])
    assert keys == [
        # alertname and service are each shared by two policies: on a tie, alertname
        FilingKey("alertname", frozenset({"ContainerDown"})),
        FilingKey("service", frozenset({"api"})),  # its alertname is shared, its service not
        FilingKey("alertname", frozenset({"DiskFull"})),
        FilingKey("service", prefix="svc-1"),  # severity's two values are shared by both
        FilingKey("service", prefix="svc-2"),
    ]


def test_an_alert_tries_only_its_own_candidates() -> None:
    specs = [any_source(f'alertname="X{n}"', 'service=~"web|api"') for n in range(1000)]
    specs += [any_source(f'service=~"svc-{n}.*"') for n in range(10)]  # filed by prefix
    specs += [any_source(f'service=~".*-{n}"') for n in range(5)]  # tried for every alert
    many = policies(*specs)
    index = PolicyIndex(many)
    labels = {"alertname": "X17", "service": "web"}
    assert index.candidates(labels) == [17, *range(1010, 1015)]
    assert names(index.concerned(alert(labels))) == ["p17"]
    labels = {"alertname": "X17", "service": "svc-3-4"}
    assert index.candidates(labels) == [17, 1003, *range(1010, 1015)]
    assert names(index.concerned(alert(labels))) == ["p1003", "p1014"]


# --- property: the index is the brute-force loop ---------------------------------------------

NAMES = ["alertname", "service", "env"]
VALUES = ["", "X", "Y", "web", "api"]
REGEXES = ["X|Y", "web|api", "web|", "", ".*", ".+", "w.*", "we?b.*", "web+", "(X|Y)", "api", "X"]


@st.composite
def matcher_texts(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    op = draw(st.sampled_from(["=", "=", "=", "!=", "=~", "!~"]))
    value = draw(st.sampled_from(REGEXES if op in ("=~", "!~") else VALUES))
    return f"{name}{op}{json.dumps(value)}"


specs_strategy = st.lists(
    st.tuples(
        st.lists(matcher_texts(), max_size=3),
        st.sampled_from(["any", "any", "alertmanager", "datadog"]),
        st.sampled_from(["firing", "resolved"]),
    ),
    max_size=12,
)
alerts_strategy = st.builds(
    alert,
    st.dictionaries(
        st.sampled_from(NAMES),
        st.sampled_from([*VALUES, "Z", "X|Y", "w", "wb", "webb"]),
        max_size=3,
    ),
    st.sampled_from(["alertmanager", "datadog"]),
    st.sampled_from(["firing", "resolved"]),
)


@settings(max_examples=300, deadline=None)
@given(specs_strategy, st.lists(alerts_strategy, min_size=1, max_size=5))
def test_index_equals_brute_force(
    specs: list[tuple[list[str], str, str]], alerts: list[Alert]
) -> None:
    ps = policies(*specs)
    index = PolicyIndex(ps)
    for a in alerts:
        expected = brute_force(ps, a)
        assert [id(p) for p in index.concerned(a)] == [id(p) for p in expected]
        assert [id(p) for p in index.matching(a)] == [
            id(p) for p in expected if p.match.status == a.status
        ]
