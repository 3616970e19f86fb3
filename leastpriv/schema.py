"""JSON Schema checks for everything leastpriv reads: one line naming the file, the JSON path, the problem.

The schemas of the two documented types live in ``leastpriv/schemas/`` (``profile.schema.json``,
``recording.schema.json``) and ship with the package; smaller ones (image metadata) sit next to
the code that reads them. ``jsonschema`` does the checking; this module only picks the most
useful error and says it in one bounded line (a hostile file must not print itself back).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from .errors import UserError

_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(err: jsonschema.ValidationError) -> str:
    v, inst, arg = err.validator, err.instance, err.validator_value
    if v == "type":
        want = arg if isinstance(arg, str) else " or ".join(arg)
        return f"expected {want}, got {_TYPE_NAMES.get(type(inst), type(inst).__name__)}"
    if v == "required":
        missing = [k for k in arg if isinstance(inst, dict) and k not in inst]
        return f"missing key {missing[0]!r}" if missing else "missing a required key"
    if v == "additionalProperties":
        extra = sorted(k for k in inst if k not in err.schema.get("properties", {}))[:3] \
            if isinstance(inst, dict) else []
        return f"unexpected key {_short(extra[0])}" if extra else "unexpected key"
    if v == "enum":
        return f"{_short(inst)} is not one of {_short(arg, 120)}"
    if v in ("minimum", "exclusiveMinimum"):
        return f"{_short(inst)} is below the minimum {arg}"
    if v in ("maximum", "exclusiveMaximum"):
        return f"{_short(inst)} is above the maximum {arg}"
    if v == "maxLength":
        return f"a string longer than {arg} characters"
    if v == "minLength":
        return f"a string shorter than {arg} characters"
    if v == "maxItems":
        return f"more than {arg} items"
    if v == "minItems":
        return f"fewer than {arg} items"
    if v == "maxProperties":
        return f"more than {arg} keys"
    if v == "pattern":
        return f"{_short(inst)} does not match {arg}"
    if v == "propertyNames":
        return f"a key that is not allowed ({_short(inst)})"
    if v == "uniqueItems":
        return "items repeat"
    return " ".join(err.message.split())[:160]


def _path(err: jsonschema.ValidationError) -> str:
    out = "$"
    for p in err.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if str(p).isidentifier() else f"[{_short(p, 40)}]")
    return out


def check(doc: Any, schema: dict, where: str, what: str) -> None:
    """Raise a one-line UserError when ``doc`` does not follow ``schema``."""
    validator = _validator(json.dumps(schema, sort_keys=True)) if not isinstance(schema, _Frozen) else schema.v
    err = best_match(validator.iter_errors(doc))
    if err is not None:
        raise UserError(f"{where}: not a valid {what}: {_path(err)}: {_describe(err)}")


@lru_cache(maxsize=32)
def _validator(schema_text: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


class _Frozen:
    """A shipped schema, compiled once."""

    def __init__(self, v):
        self.v = v


@lru_cache(maxsize=None)
def shipped(name: str) -> _Frozen:
    """``leastpriv/schemas/NAME.schema.json``, compiled."""
    text = resources.files("leastpriv.schemas").joinpath(f"{name}.schema.json").read_text()
    return _Frozen(_validator(text))


def check_shipped(doc: Any, name: str, where: str, what: str) -> None:
    check(doc, shipped(name), where, what)
