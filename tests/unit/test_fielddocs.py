"""Field docstrings are read from the source when a document needs them."""

from __future__ import annotations

from pydantic import BaseModel

from remediator.config import Config
from remediator.fielddocs import field_doc, field_docs


class _Base(BaseModel):
    kept: int = 1
    """From the base."""

    replaced: int = 2
    """The base's words."""


class _Child(_Base):
    replaced: int = 3
    """The child's
    words."""

    class Inner(BaseModel):
        deep: str = ""
        """Nested."""

    undocumented: int = 4


def test_a_subclass_keeps_its_bases_docs_and_its_own_win() -> None:
    assert field_docs(_Child) == {
        "kept": "From the base.",
        "replaced": "The child's\nwords.",
    }
    assert field_doc(_Child.Inner, "deep") == "Nested."
    assert field_doc(_Child, "undocumented") == ""


def test_the_config_fields_are_documented_without_pydantic_reading_them_at_start() -> None:
    assert all(field.description is None for field in Config.model_fields.values())
    assert field_doc(Config, "listen")
