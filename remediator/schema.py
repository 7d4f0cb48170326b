"""`remediator schema`: the JSON Schema of one policy (a YAML document of a policy file), for
editors (yaml-language-server) and CI. Pydantic's schema of the Policy model, with what the
model cannot say itself: durations, rates, matchers and templates are strings of a syntax;
`steps` stands instead of `action`; each action type's params.

The schema is a help, not the judge: `remediator check` validates what no schema can
(templates, regexes, allow_targets, secrets). Everything `check` accepts, the schema accepts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from remediator import __version__
from remediator.core.durations import Rate, format_duration
from remediator.core.kinds import KINDS
from remediator.core.matchers import Matcher
from remediator.core.policy import Policy
from remediator.core.promql import QueryTemplate
from remediator.core.render import Template
from remediator.fielddocs import field_docs

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DURATION: JsonSchemaValue = {
    "type": "string",
    "pattern": r"^\s*(?=\d)(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?\s*$",
    "description": "A duration: 30s, 5m, 1h30m, 250ms, 30d.",
}
_STRINGS: dict[type, JsonSchemaValue] = {
    Rate: {
        "type": "string",
        "pattern": r"^\s*\d+\s*/\s*\S+\s*$",
        "description": "A rate: N/duration, e.g. 3/1h.",
    },
    Matcher: {
        "type": "string",
        "pattern": r"(=|!=|=~|!~)",
        "description": 'An Alertmanager matcher: name="value", name!="v", name=~"re", name!~"re".',
    },
    Template: {"type": "string", "description": "A Jinja2 template (sandboxed)."},
    QueryTemplate: {"type": "string", "description": "PromQL, a template over the alert."},
}
# A param is written as text, a number or a boolean; `check` compiles each as a template.
_SCALAR: JsonSchemaValue = {"type": ["string", "number", "boolean"]}


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, told how the core's own types are written in YAML."""

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        return dict(DURATION)

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, Rate):
            return str(dft)
        return super().encode_default(dft)

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        # Each field's docstring is its description (fielddocs.py says why not pydantic's).
        json_schema = super().model_schema(schema)
        properties = json_schema.get("properties", {})
        docs = field_docs(schema["cls"])
        for name, field in schema["cls"].model_fields.items():
            key = field.alias or name
            if key in properties and field.description is None and docs.get(name):
                properties[key]["description"] = docs[name]
        return json_schema

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        return self._string(schema["cls"]) or super().dataclass_schema(schema)

    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        return self._string(schema["cls"]) or super().is_instance_schema(schema)

    @staticmethod
    def _string(written: type) -> JsonSchemaValue | None:
        found = _STRINGS.get(written)
        return None if found is None else dict(found)


def _params(type_: str) -> JsonSchemaValue:
    """One action type's params: each documented, the required ones required."""
    kind = KINDS[type_]
    properties: dict[str, JsonSchemaValue] = {}
    for name, doc in sorted(kind.params_doc.items()):
        if name in kind.lists:
            shape: JsonSchemaValue = {"type": "array", "items": _SCALAR, "minItems": 1}
        elif name == "headers":
            shape = {"type": "object", "additionalProperties": _SCALAR}
        else:
            shape = dict(_SCALAR)
        properties[name] = {**shape, "description": doc}
    return {
        "type": "object",
        "description": f"The params of {type_}.",
        "properties": properties,
        "required": sorted(kind.required),
        "additionalProperties": False,
    }


def _one_line_descriptions(node: Any) -> None:
    """A docstring's line breaks are not the editor's: each description becomes one line."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = " ".join(value.split())
            else:
                _one_line_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _one_line_descriptions(item)


def policy_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one policy document."""
    schema = Policy.model_json_schema(schema_generator=_Generator, mode="validation")
    defs = schema["$defs"]
    action = defs["ActionSpec"]
    # Values are text, numbers, booleans, and for some types lists or a mapping: per type.
    action["properties"]["params"] = {
        "type": "object",
        "description": action["properties"]["params"].get("description", ""),
    }
    action["properties"]["type"] = {
        "enum": sorted(KINDS),
        "description": action["properties"]["type"].get("description", ""),
    }
    action["allOf"] = [
        {
            "if": {"properties": {"type": {"const": type_}}, "required": ["type"]},
            "then": {"properties": {"params": _params(type_)}},
        }
        for type_ in sorted(KINDS)
    ]
    # A ladder: `steps` instead of `action` (and `verify`), never both.
    schema["required"] = [name for name in schema["required"] if name != "action"]
    schema["oneOf"] = [{"required": ["action"]}, {"required": ["steps"]}]
    schema["dependentSchemas"] = {"steps": {"not": {"required": ["verify"]}}}
    schema["properties"]["steps"]["minItems"] = 1
    schema["properties"]["name"]["pattern"] = "^[a-z0-9-]+$"
    _one_line_descriptions(schema)
    return {
        "$schema": DIALECT,
        **schema,
        "title": "remediator policy",
        "description": (
            f"One policy of a remediator {__version__} policy file (each YAML document is "
            "one). `remediator check` validates the rest: templates, regexes, targets."
        ),
    }
