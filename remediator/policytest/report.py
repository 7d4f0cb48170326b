"""What a test expected against what it made: the first difference, and every decision made,
written as `expect` entries so a reader can compare them (or paste them). Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import yaml

from remediator.policytest.harness import Made
from remediator.policytest.spec import Expected, offset

_PLAIN = re.compile(r"^[A-Za-z0-9_./@*+-][A-Za-z0-9_./@*+:-]*\Z")


def scalar(value: object) -> str:
    """A YAML flow scalar: plain where YAML reads it back as the same string, else quoted."""
    text = str(value)
    if isinstance(value, int) or (_PLAIN.match(text) and yaml.safe_load(text) == text):
        return text
    return json.dumps(text, ensure_ascii=False)


def shown(made: Made) -> str:
    """`{at: 5m, policy: p, target: t, outcome: o}`, as an `expect` entry reads."""
    fields: list[tuple[str, object]] = [("at", offset(made.at)), ("policy", made.policy)]
    if made.target:  # a decision stopped before its action rendered has none
        fields.append(("target", made.target))
    if made.step is not None:
        fields.append(("step", made.step))
    fields.append(("outcome", made.outcome))
    if made.repeats:
        fields.append(("repeats", made.repeats))
    return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in fields) + "}"


def expected(entry: Expected) -> str:
    fields: list[tuple[str, object]] = [("at", offset(entry.at)), ("policy", entry.policy)]
    for name in ("target", "step"):
        if getattr(entry, name) is not None:
            fields.append((name, getattr(entry, name)))
    fields.append(("outcome", entry.outcome))
    for name in ("repeats", "reason"):
        if getattr(entry, name) is not None:
            fields.append((name, getattr(entry, name)))
    return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in fields) + "}"


def mismatches(entry: Expected, made: Made) -> list[str]:
    """Each field the entry names that the decision does not have, as `FIELD is X, expected Y`."""
    found = []
    pairs: list[tuple[str, object, object]] = [
        ("at", offset(made.at), offset(entry.at)),
        ("policy", made.policy, entry.policy),
        ("target", made.target, entry.target),
        ("step", made.step, entry.step),
        ("outcome", made.outcome, entry.outcome),
        ("repeats", made.repeats, entry.repeats),
    ]
    for name, got, want in pairs:
        if want is not None and got != want:
            found.append(
                f"{name} is {scalar(got) if got is not None else 'none'}, expected {scalar(want)}"
            )
    if entry.reason is not None and entry.reason not in made.reason:
        found.append(f"reason does not contain {scalar(entry.reason)}")
    return found


def first_difference(expect: Sequence[Expected], made: Sequence[Made]) -> list[str]:
    """No lines when every decision is as expected; else the first one that is not."""
    for index in range(max(len(expect), len(made))):
        number = f"decision {index + 1}"
        if index >= len(made):
            missing = len(expect) - len(made)
            return [
                f"{number}: expected, but the test made {len(made)} decisions "
                f"({missing} fewer than expected)",
                f"  expected: {expected(expect[index])}",
            ]
        if index >= len(expect):
            return [
                f"{number}: not expected (the test made {len(made)} decisions, "
                f"{len(expect)} expected)",
                f"  got:      {shown(made[index])}",
                f"            reason: {made[index].reason}",
            ]
        wrong = mismatches(expect[index], made[index])
        if wrong:
            return [
                f"{number}: {'; '.join(wrong)}",
                f"  expected: {expected(expect[index])}",
                f"  got:      {shown(made[index])}",
                f"            reason: {made[index].reason}",
            ]
    return []


def made_lines(made: Sequence[Made]) -> list[str]:
    if not made:
        return ["the test made no decision"]
    return ["the test made these decisions:", *(f"  - {shown(m)}" for m in made)]
