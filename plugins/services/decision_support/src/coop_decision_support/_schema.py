"""The JSON each framework expects, and a small validator for it (no runtime dependency).

The schemas are plain JSON Schema (a subset: ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``, ``minLength``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``enum``), so they can be shown to a model and checked
with any JSON Schema validator; :func:`validate` checks that subset by code and says
where each problem is (``$.options[1].scores.cost: 11 is above the maximum 10``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "FRAMEWORKS",
    "SCHEMAS",
    "matrix_schema",
    "parse_json",
    "validate",
]

FRAMEWORKS = ("strategic_options", "swot", "pros_cons", "decision_matrix", "risk")

TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
TEXTS: dict[str, Any] = {"type": "array", "items": TEXT, "minItems": 1}


def _scale(low: int, high: int, kind: str = "integer") -> dict[str, Any]:
    return {"type": kind, "minimum": low, "maximum": high}


def _obj(required: Sequence[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


POINT = _obj(["point", "weight"], point=TEXT, weight=_scale(1, 5))
STRATEGIC_OPTION = _obj(
    ["name", "description", "advantages", "disadvantages", "impact", "feasibility"],
    name=TEXT,
    description=TEXT,
    advantages=TEXTS,
    disadvantages=TEXTS,
    impact=_scale(1, 5),
    feasibility=_scale(1, 5),
)
CRITERION = _obj(["name", "weight"], name=TEXT, weight={"type": "number", "minimum": 0})
SCORE = _scale(1, 10, "number")
RISK = _obj(
    ["risk", "likelihood", "impact", "mitigation"],
    risk=TEXT,
    likelihood=_scale(1, 5),
    impact=_scale(1, 5),
    mitigation=TEXT,
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "strategic_options": _obj(
        ["options"],
        options={"type": "array", "items": STRATEGIC_OPTION, "minItems": 2},
        recommendation=TEXT,
    ),
    "swot": _obj(
        ["strengths", "weaknesses", "opportunities", "threats"],
        strengths=TEXTS,
        weaknesses=TEXTS,
        opportunities=TEXTS,
        threats=TEXTS,
        summary=TEXT,
    ),
    "pros_cons": _obj(
        ["pros", "cons"],
        pros={"type": "array", "items": POINT, "minItems": 1},
        cons={"type": "array", "items": POINT, "minItems": 1},
        summary=TEXT,
    ),
    "decision_matrix": _obj(
        ["criteria", "options"],
        criteria={"type": "array", "items": CRITERION, "minItems": 1},
        options={
            "type": "array",
            "minItems": 2,
            "items": _obj(
                ["name", "scores"],
                name=TEXT,
                description=TEXT,
                scores={"type": "object", "additionalProperties": SCORE},
            ),
        },
    ),
    "risk": _obj(["risks"], risks={"type": "array", "items": RISK, "minItems": 1}),
    # the first step of a decision matrix whose options come from a cooperation
    "options": _obj(
        ["options"],
        options={
            "type": "array",
            "minItems": 2,
            "items": _obj(["name", "description"], name=TEXT, description=TEXT),
        },
    ),
}


def matrix_schema(
    criteria: Sequence[str] | None = None, options: Sequence[str] | None = None
) -> dict[str, Any]:
    """The decision matrix schema, narrowed to the user's criteria and option names."""
    schema = json.loads(json.dumps(SCHEMAS["decision_matrix"]))
    item = schema["properties"]["options"]["items"]
    if criteria:
        schema["required"] = ["options"]
        item["properties"]["scores"] = {
            "type": "object",
            "required": list(criteria),
            "properties": {name: SCORE for name in criteria},
            "additionalProperties": False,
        }
    if options:
        item["properties"]["name"] = {"type": "string", "enum": list(options)}
        schema["properties"]["options"]["minItems"] = len(options)
    return schema


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, Mapping),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer()
    ),
    "boolean": lambda v: isinstance(v, bool),
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if re.fullmatch(r"[A-Za-z_][\w]*", name) else f"{path}[{name!r}]"


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, each as ``"<path>: <problem>"``; [] if none."""
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        article = "an" if kind[0] in "aeiou" else "a"
        return [f"{path}: expected {article} {kind}, got {_kind(value)} {_short(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        valid = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
        problems.append(f"{path}: {_short(value)} is not one of {valid}")
    if isinstance(value, str) and len(value.strip()) < schema.get("minLength", 0):
        problems.append(f"{path}: must not be empty")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above the maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{path}: {value} must be above {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(
                f"{path}: needs at least {schema['minItems']} item(s), got {len(value)}"
            )
        if "items" in schema:
            for i, item in enumerate(value):
                problems.extend(validate(item, schema["items"], f"{path}[{i}]"))
    if isinstance(value, Mapping):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}: missing required key {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            where = _key(path, str(name))
            if name in properties:
                problems.extend(validate(item, properties[name], where))
            elif extra is False:
                valid = ", ".join(properties) or "none"
                problems.append(f"{path}: unexpected key {name!r} (valid: {valid})")
            elif isinstance(extra, Mapping):
                problems.extend(validate(item, extra, where))
    return problems


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.S)


def parse_json(text: str) -> tuple[Any, str | None]:
    """The JSON in a model's answer (bare, fenced, or after some prose) and the problem, if any.

    Returns ``(value, None)`` or ``(None, "why it is not JSON")``.
    """
    stripped = text.strip()
    if not stripped:
        return None, "the answer is empty"
    candidates = [stripped, *(m.strip() for m in _FENCE.findall(text))]
    first_error = None
    for candidate in candidates:
        try:
            return json.loads(candidate), None
        except ValueError as exc:
            first_error = first_error or exc
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        return None, "no JSON object in the answer"
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped[min(starts) :])
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    return value, None
