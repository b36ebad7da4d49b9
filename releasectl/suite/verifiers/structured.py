"""Structured output: `json_schema` and `tool_call_schema` (jsonschema, Draft 2020-12)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from releasectl.suite.registry import Settings, Verdict, VerifyContext, verifier
from releasectl.suite.verifiers._extract import json_candidates, json_objects


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _first_error(validator: Any, value: Any) -> str | None:
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "<root>"
    return f"{where}: {e.message[:120]}"


class JsonSchemaSettings(Settings):
    schema_: dict[str, Any] = Field(alias="schema")
    """The JSON Schema the output must satisfy (key `schema` in suite.yaml)."""


def _json_schema(output: str, s: JsonSchemaSettings, *, fenced: bool) -> Verdict:
    candidates = json_candidates(output, fenced=fenced)
    if not candidates:
        where = "the output (or a ```json block)" if fenced else "the whole output"
        return Verdict(False, f"{where} is not valid JSON")
    validator = _validator(s.schema_)
    error = None
    for value in candidates:
        error = _first_error(validator, value)
        if error is None:
            return Verdict(True, "valid JSON matching the schema")
    return Verdict(False, f"schema violation at {error}")


@verifier("json_schema", "1.0", kind="format", settings=JsonSchemaSettings)
def json_schema_v1_0(output: str, s: JsonSchemaSettings, ctx: VerifyContext) -> Verdict:
    """The whole output is JSON valid against the schema (v1.0: no surrounding text or fences)."""
    return _json_schema(output, s, fenced=False)


@verifier("json_schema", "1.1", kind="format", settings=JsonSchemaSettings)
def json_schema_v1_1(output: str, s: JsonSchemaSettings, ctx: VerifyContext) -> Verdict:
    """JSON valid against the schema, as the whole output or in a ```json fence (v1.1)."""
    return _json_schema(output, s, fenced=True)


class ToolCallSettings(Settings):
    tools: dict[str, dict[str, Any]]
    """Tool name -> JSON Schema of its `arguments`."""
    required: bool = True
    """At least one tool call must be present; when false, only calls that are present are checked."""


@verifier("tool_call_schema", "1.0", kind="tool", settings=ToolCallSettings)
def tool_call_schema(output: str, s: ToolCallSettings, ctx: VerifyContext) -> Verdict:
    """Every tool call `{"tool": name, "arguments": {...}}` names a known tool with valid arguments."""
    calls = [o for o in json_objects(output) if isinstance(o, dict) and "tool" in o]
    if not calls:
        return Verdict(not s.required, "no tool call" + ("" if s.required else " (none required)"), steps=0)
    for i, call in enumerate(calls, start=1):
        name = call.get("tool")
        if name not in s.tools:
            return Verdict(False, f"call {i}: unknown tool {str(name)[:40]!r}", steps=len(calls))
        error = _first_error(_validator(s.tools[name]), call.get("arguments"))
        if error is not None:
            return Verdict(False, f"call {i} ({name}): {error}", steps=len(calls))
    return Verdict(True, f"{len(calls)} valid tool call(s)", steps=len(calls))
