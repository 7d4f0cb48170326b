"""A shortcut for the params most policies write: plain text around at most one
`{{ labels.NAME }}`. It gives exactly what the sandboxed Jinja2 render gives (plain text
out as written, a label's value as is: autoescape is off) without building a render
context, which is most of a storm's render cost. Anything else, including a missing label
(so the error is Jinja's own), goes to the template. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from remediator.core.render import Template

_ONE_LABEL = re.compile(r"\{\{ *labels\.([A-Za-z_][A-Za-z0-9_]*) *\}\}")
# Jinja2 reads `labels.NAME` as an attribute first: a name a dict has as an attribute
# (`items`, `keys`, ...) is not a label lookup there, so it never takes the shortcut.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Characters that make plain text more than plain text to Jinja2 (blocks, comments,
# whitespace control, line handling) or to the secret-reference guard.
_SPECIAL = frozenset("{}%#$\n\r")


@functools.lru_cache(maxsize=4096)
def plan(source: str) -> tuple[str, str | None, str] | None:
    """(prefix, label or None, suffix) when `source` qualifies, else None."""
    found = _ONE_LABEL.search(source)
    if found is None:
        prefix, label, suffix = source, None, ""
    else:
        prefix, label, suffix = source[: found.start()], found[1], source[found.end() :]
        if label in _DICT_ATTRIBUTES:
            return None
    if _SPECIAL.intersection(prefix) or _SPECIAL.intersection(suffix):
        return None
    return prefix, label, suffix


def quick(template: Template, labels: Mapping[str, str]) -> str | None:
    """The rendered text, or None when the template must render itself. Raises RenderError
    exactly where the template's render would (a `${` that came from the alert)."""
    shape = plan(template.source)
    if shape is None or template.escapes:  # Slack text escapes every value it renders
        return None
    prefix, label, suffix = shape
    if label is None:
        return template.finish(prefix)
    value = labels.get(label)
    return None if value is None else template.finish(f"{prefix}{value}{suffix}")
