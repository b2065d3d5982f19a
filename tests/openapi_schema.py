"""Validate JSON against a schema of OpenAI's own OpenAPI description.

Shared by every test that checks wire shapes (test_wire, test_gateway, ...): the spec's
3.0-style ``nullable: true`` is rewritten as ``anyOf [..., null]`` so the file reads
as JSON Schema 2020-12, then one validator per schema name is built and cached.
``validate("CreateChatCompletionResponse", data)`` raises when ``data`` does not fit.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

__all__ = ["SPEC_PATH", "validate"]

SPEC_PATH = Path("/work/shared/specs/openai-openapi.yaml")
if not SPEC_PATH.exists():  # the shared specs live beside the repository
    SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "openai-openapi.yaml"


def _nullable_to_31(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema ``anyOf [..., null]`` (the file mixes both)."""
    if isinstance(node, list):
        return [_nullable_to_31(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_31(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _components() -> dict[str, Any]:
    """The spec's components, parsed once per test session: the file is 3 MB."""
    if not SPEC_PATH.exists():
        pytest.skip(f"{SPEC_PATH} not found")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as f:
        spec = yaml.load(f, Loader=loader)
    return {"schemas": _nullable_to_31(spec["components"]["schemas"])}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{name}",
            "components": _components(),
        }
    )


def validate(name: str, data: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``data`` fits the spec's schema ``name``."""
    _validator(name).validate(data)
