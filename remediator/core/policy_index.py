"""Which policies concern an alert, found without trying every policy's matchers.

Trying all matchers of all policies costs O(policies) per alert; with thousands of
policies that is most of a webhook's time. Almost every policy names the alert it is for
(`alertname="X"`), so each policy is filed under one of its matchers, and an alert tries
only the policies filed under its own label values, plus the few that cannot be filed.

The answer is exactly that of the plain loop

    [p for p in policies
     if p.matches_source(alert.source) and matches_all(p.match.matchers, alert.labels)]

in the same order: filing only narrows the candidates, every candidate still runs all of
its matchers (so the filing matcher needs no special case), and candidates are tried in
policy order. Pure: built once from the ordered policy list, no I/O, never changed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from remediator.core.alert import Alert
from remediator.core.matchers import Matcher, matches_all
from remediator.core.policy import Policy

# A regex whose alternatives are plain text (`web|api`) matches, fully anchored, exactly
# those texts, so it can be filed like an equality under each of them. Only characters that
# are literal in RE2 wherever they stand are accepted; anything else (`.`, `\`, groups,
# classes, repeats, flags) leaves the regex to a prefix (below) or to being always tried.
_LITERAL = r"[A-Za-z0-9_\-:/@=,;%&#~!<>' ]*"
_LITERAL_ALTERNATIVES = re.compile(rf"{_LITERAL}(?:\|{_LITERAL})*")


class FilingKey(NamedTuple):
    """A policy can only match an alert whose label `name` (missing: "") is one of `values`,
    or, when `prefix` is set, starts with it (`values` is then empty)."""

    name: str
    values: frozenset[str] = frozenset()
    prefix: str = ""


# (label name, "=" or "^", value or prefix): what the policies filed alike share.
_Bucket = tuple[str, str, str]


def _key(matcher: Matcher) -> FilingKey | None:
    if matcher.op == "=":
        return FilingKey(matcher.name, frozenset({matcher.value}))
    if matcher.op != "=~":
        return None  # a negative matcher accepts all but some values: no finite filing
    if _LITERAL_ALTERNATIVES.fullmatch(matcher.value):
        return FilingKey(matcher.name, frozenset(matcher.value.split("|")))
    if matcher.required_prefix:
        return FilingKey(matcher.name, prefix=matcher.required_prefix)
    return None


def filing_keys(policies: Sequence[Sequence[Matcher]]) -> list[FilingKey | None]:
    """For each policy's matchers, the key it is filed under, or None: tried for every alert.

    Preference, most selective first:
    - an equality (`alertname="X"`) before a regex, the common and cheapest case;
    - among those, the key fewest policies share (so 500 policies for one alertname that
      differ by `service="..."` are filed by service); on a tie literal values before a
      prefix, then `alertname`, then the first written;
    - any key whose values include "" last of all: it takes every alert lacking the label
      (Alertmanager reads a missing label as ""), usually most alerts. It is still exact,
      because an alert looks its value up as `labels.get(name, "")`.
    """
    chosen: list[FilingKey | None] = []
    undecided: list[int] = []
    for position, matchers in enumerate(policies):
        equalities = [m for m in matchers if m.op == "=" and m.value]
        if len(equalities) == 1:  # the usual `alertname="X"`: it ranks first whatever else
            chosen.append(FilingKey(equalities[0].name, frozenset((equalities[0].value,))))
        else:
            chosen.append(None)
            undecided.append(position)
    if not undecided:
        return chosen
    # How many policies could be filed under each bucket. Policies that write the same regex
    # share one Matcher (parse_matcher caches them), so each is keyed once; ids are stable
    # while `policies` holds them. An equality's bucket needs no key.
    regex_keys: dict[int, FilingKey | None] = {}
    regex_buckets: dict[int, tuple[_Bucket, ...]] = {}
    counted: list[_Bucket] = []
    for matchers in policies:
        for matcher in matchers:
            if matcher.op == "=":
                counted.append((matcher.name, "=", matcher.value))
            elif matcher.op == "=~":
                if id(matcher) not in regex_keys:
                    key = regex_keys[id(matcher)] = _key(matcher)
                    regex_buckets[id(matcher)] = () if key is None else _buckets(key)
                counted.extend(regex_buckets[id(matcher)])
    shared = Counter(counted)

    def key_of(matcher: Matcher) -> FilingKey | None:
        return regex_keys[id(matcher)] if matcher.op == "=~" else _key(matcher)

    for position in undecided:
        options = [(m, key) for m in policies[position] if (key := key_of(m)) is not None]
        ranked = [
            (
                "" in key.values,
                matcher.op != "=",
                sum(shared[bucket] for bucket in _buckets(key)),
                bool(key.prefix),
                matcher.name != "alertname",
                index,
            )
            for index, (matcher, key) in enumerate(options)
        ]
        if ranked:
            chosen[position] = options[min(ranked)[-1]][1]
    return chosen


def _buckets(key: FilingKey) -> tuple[_Bucket, ...]:
    if key.prefix:
        return ((key.name, "^", key.prefix),)
    return tuple((key.name, "=", value) for value in key.values)


class _PrefixTable(NamedTuple):
    name: str
    lengths: tuple[int, ...]  # every prefix length in `by_prefix`, ascending
    by_prefix: dict[str, tuple[int, ...]]


class PolicyIndex:
    """The policies, filed for `concerned` and `matching`; built once, read-only after."""

    __slots__ = ("_always", "_prefixes", "_values", "by_name", "policies")

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies: tuple[Policy, ...] = tuple(policies)
        # Names are unique (loading refuses duplicates); were one repeated, the last would
        # win, as in a dict built from the list.
        self.by_name: Mapping[str, Policy] = MappingProxyType({p.name: p for p in self.policies})
        values: dict[str, dict[str, list[int]]] = {}
        prefixes: dict[str, dict[str, list[int]]] = {}
        always: list[int] = []
        keys = filing_keys([p.match.matchers for p in self.policies])
        for position, key in enumerate(keys):
            if key is None:
                always.append(position)
            elif key.prefix:
                prefixes.setdefault(key.name, {}).setdefault(key.prefix, []).append(position)
            else:
                table = values.setdefault(key.name, {})
                for value in key.values:
                    table.setdefault(value, []).append(position)
        # Positions, not policies: each policy is filed once (under one label; an alert has
        # one value per label and a value one prefix per length), so candidates never
        # repeat, and sorting positions restores policy order.
        self._always: tuple[int, ...] = tuple(always)
        self._values: tuple[tuple[str, dict[str, tuple[int, ...]]], ...] = tuple(
            (name, {value: tuple(hits) for value, hits in table.items()})
            for name, table in values.items()
        )
        self._prefixes: tuple[_PrefixTable, ...] = tuple(
            _PrefixTable(
                name,
                tuple(sorted({len(prefix) for prefix in table})),
                {prefix: tuple(hits) for prefix, hits in table.items()},
            )
            for name, table in prefixes.items()
        )

    def candidates(self, labels: Mapping[str, str]) -> list[int]:
        """Positions of the policies that may match `labels`, ascending; a superset."""
        found = list(self._always)
        runs = 1 if found else 0
        for name, table in self._values:
            hits = table.get(labels.get(name, ""))
            if hits:
                found.extend(hits)
                runs += 1
        for name, lengths, by_prefix in self._prefixes:
            value = labels.get(name, "")
            for length in lengths:
                if length > len(value):
                    break
                hits = by_prefix.get(value[:length])
                if hits:
                    found.extend(hits)
                    runs += 1
        if runs > 1:
            found.sort()  # a few short sorted runs: about linear for Python's sort
        return found

    def concerned(self, alert: Alert) -> list[Policy]:
        """Policies whose source and matchers fit the alert, in either status, in order."""
        labels, source = alert.labels, alert.source
        policies = self.policies
        concerned = []
        for position in self.candidates(labels):
            policy = policies[position]
            if policy.match.source in ("any", source) and matches_all(
                policy.match.matchers, labels
            ):
                concerned.append(policy)
        return concerned

    def matching(self, alert: Alert) -> list[Policy]:
        """`concerned`, of those only the policies for the alert's status (firing/resolved)."""
        return [p for p in self.concerned(alert) if p.match.status == alert.status]
