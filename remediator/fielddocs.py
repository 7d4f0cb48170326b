"""The docstring under each field of a config or policy model: its documentation.

pydantic can read these itself (`use_attribute_docstrings`), but it does so while each class
is created, reading and parsing its source at every start: 0.1-0.3 s for the 35 models, paid
by a daemon that never shows a description. Only `remediator schema`, `remediator reference`
and the OpenAPI document show them, so they read them here, when asked.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from pathlib import Path

from pydantic import BaseModel


@functools.cache
def _module_docs(path: str) -> dict[str, dict[str, str]]:
    """{class qualname: {field: docstring}} for one source file."""
    found: dict[str, dict[str, str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, ast.ClassDef):
                continue
            qualname = f"{prefix}{node.name}"
            docs = found.setdefault(qualname, {})
            for stmt, after in zip(node.body, node.body[1:], strict=False):
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                ):
                    docs[stmt.target.id] = inspect.cleandoc(after.value.value)
            visit(node.body, f"{qualname}.")

    visit(ast.parse(Path(path).read_text(encoding="utf-8")).body, "")
    return found


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """Each field's docstring, a subclass's over its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        source = getattr(sys.modules.get(klass.__module__), "__file__", None)
        if source is not None and source.endswith(".py"):
            docs.update(_module_docs(source).get(klass.__qualname__, {}))
    # BaseModel documents its own attributes the same way; they are not fields.
    return {name: doc for name, doc in docs.items() if name in cls.model_fields}


def field_doc(cls: type[BaseModel], name: str) -> str:
    return field_docs(cls).get(name, "")
