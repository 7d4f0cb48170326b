"""jsontext: orjson's text where it can, the standard library's where it cannot; either way
JSON that reads back as what was written, and canonical when keys are sorted."""

from __future__ import annotations

import json
import sqlite3
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator import jsontext

# Any code point, lone surrogates included: Datadog bodies are read by json.loads, which
# keeps them.
anything = st.text(alphabet=st.characters(exclude_categories=()), max_size=8)
documents = st.dictionaries(anything, anything | st.integers(-(2**70), 2**70) | st.none())


@given(documents)
def test_what_is_written_reads_back(document: dict[str, object]) -> None:
    assert json.loads(jsontext.dumps(document)) == document
    assert json.loads(jsontext.dumps_bytes(document, sort_keys=True)) == document


@given(documents, st.randoms())
def test_sorted_keys_give_one_text_per_value(document: dict[str, object], rnd: Random) -> None:
    items = list(document.items())
    rnd.shuffle(items)
    assert jsontext.dumps(dict(items), sort_keys=True) == jsontext.dumps(document, sort_keys=True)


@pytest.mark.parametrize(
    "value",
    [
        {"a": "b"},
        {"a": "\ud800"},  # orjson refuses it: the standard library writes it escaped
        {"é": "ü", "k": None, "n": 2**65},  # an int over 64 bits: also the fallback
        ["x", "\udfff"],
    ],
)
def test_sqlite_reads_either_encoder_text(value: object) -> None:
    # The store passes key lists to SQLite's json_each (dialect.keys); both texts must parse.
    text = jsontext.dumps(value)
    with sqlite3.connect(":memory:") as db:
        assert db.execute("SELECT json_valid(?)", (text,)).fetchone() == (1,)


def test_the_fast_text_is_orjsons_and_the_fallback_the_standard_librarys() -> None:
    assert jsontext.dumps({"b": "1", "a": "2"}, sort_keys=True) == '{"a":"2","b":"1"}'
    assert jsontext.dumps({"a": "\ud800"}) == '{"a": "\\ud800"}'
