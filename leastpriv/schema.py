"""JSON Schema checks for everything leastpriv reads: one line naming the file, the JSON path, the problem.

The schemas of the two documented types live in ``leastpriv/schemas/`` (``profile.schema.json``,
``recording.schema.json``, JSON Schema draft 7) and ship with the package; smaller ones (image
metadata) sit next to the code that reads them. fastjsonschema checks (compiled: fast enough for every
read); this module says a refusal in one bounded line (a hostile file must not print itself back).
The shipped schemas' validators are compiled ahead of time (tools/gen_validators.py, ``make tables``:
leastpriv/schemas/_validate_NAME.py), so that reading a profile does not compile ~330 KB of Python first;
fastjsonschema itself is imported only when a schema is checked.
"""
from __future__ import annotations

import importlib
import json
import os
import re
from functools import lru_cache

from .errors import UserError
from .kernel import constants, syscalls
from .schemas import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any

_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


_SIZE_LIMITS = {"maxLength": "a string longer than {} characters", "minLength": "a string shorter than {} characters",
                "maxItems": "more than {} items", "minItems": "fewer than {} items", "maxProperties": "more than {} keys"}


def _describe(exc) -> str:
    """What is wrong, in a few words; values from the file only through _short (bounded, escaped)."""
    v, arg, inst = exc.rule, exc.rule_definition, exc.value
    if v == "type":
        want = arg if isinstance(arg, str) else " or ".join(arg)
        return f"expected {want}, got {_TYPE_NAMES.get(type(inst), type(inst).__name__)}"
    if v == "required":
        missing = [k for k in arg if isinstance(inst, dict) and k not in inst]
        return f"missing key {missing[0]!r}" if missing else "missing a required key"
    if v == "additionalProperties":
        known = (exc.definition or {}).get("properties", {})
        extra = [k for k in inst if k not in known] if isinstance(inst, dict) else []
        return f"unexpected key {_short(extra[0])}" if extra else "unexpected key"
    if v == "propertyNames":
        pattern, longest = arg.get("pattern"), arg.get("maxLength")
        for k in inst if isinstance(inst, dict) else ():
            if (pattern and not re.search(pattern, k)) or (longest and len(k) > longest):
                return f"key {_short(k)} is not allowed here" + (f" (expected {pattern})" if pattern else
                                                                 f" (longer than {longest})")
        return "a key that is not allowed here"
    if v in ("enum", "const"):
        return f"{_short(inst)} is not one of {_short(arg if v == 'enum' else [arg], 120)}"
    if v in ("minimum", "exclusiveMinimum"):
        return f"{_short(inst)} is below the minimum {arg}"
    if v in ("maximum", "exclusiveMaximum"):
        return f"{_short(inst)} is above the maximum {arg}"
    if v in _SIZE_LIMITS:
        return _SIZE_LIMITS[v].format(arg)
    if v == "pattern":
        return f"{_short(inst)} does not match {arg}"
    if v in ("anyOf", "oneOf"):
        return f"{_short(inst)} is not allowed here"
    return _short(" ".join(str(exc.message).split()), 160)


def _path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if str(p).isidentifier() and len(str(p)) <= 40
                                                     else f"[{_short(p, 40)}]")
    return out


def check(doc: Any, schema: "dict | _Compiled", where: str, what: str) -> None:
    """Raise a one-line UserError when ``doc`` does not follow ``schema`` (JSON Schema draft 7).

    fastjsonschema compiles the schema to Python: ~0.1 s for a profile of 9,000 files, where
    jsonschema's validator takes over 1 s (the tests check the shipped schemas with jsonschema).
    """
    compiled = schema if isinstance(schema, _Compiled) else _compile(json.dumps(schema, sort_keys=True))
    try:
        compiled.fast(doc)
    except ValueError as exc:
        if not _refused(exc):
            raise
        where_in = list(exc.path or [])[1:]    # ["data", "rules", "0", ...]
        path = _path(int(p) if isinstance(p, str) and p.isdigit() else p for p in where_in)
        raise UserError(f"{where}: not a valid {what}: {path}: {_describe(exc)}") from None


def _refused(exc: ValueError) -> bool:
    """Is ``exc`` a validator's "this document does not follow the schema"? The generated validators raise
    schemas/_errors.py's copy of fastjsonschema's exception (a valid document never loads fastjsonschema);
    a schema compiled at run time raises fastjsonschema's own."""
    if isinstance(exc, _errors.JsonSchemaValueException):
        return True
    import fastjsonschema
    return isinstance(exc, fastjsonschema.JsonSchemaValueException)


class _Compiled:
    def __init__(self, schema: dict, fast=None):
        self.schema = schema
        if fast is None:
            import fastjsonschema
            fast = fastjsonschema.compile(schema, use_formats=False)
        self.fast = fast


@lru_cache(maxsize=32)
def _compile(schema_text: str) -> _Compiled:
    return _Compiled(json.loads(schema_text))


@lru_cache(maxsize=None)
def shipped(name: str) -> _Compiled:
    """``leastpriv/schemas/NAME.schema.json``, compiled once per process: by tools/gen_validators.py when its
    module was made from this very schema text, else now."""
    with open(os.path.join(os.path.dirname(__file__), "schemas", f"{name}.schema.json"), encoding="utf-8") as fh:
        text = fh.read()
    try:
        generated = importlib.import_module(f"{__package__}.schemas._validate_{name}")
    except ImportError:
        generated = None
    if generated is not None and generated.SCHEMA_TEXT == text:
        return _Compiled(json.loads(text), generated.validate)
    return _Compiled(json.loads(text))


def check_shipped(doc: Any, name: str, where: str, what: str) -> None:
    check(doc, shipped(name), where, what)


# ----------------------------------------------------------------- names against leastpriv's tables


def check_names(doc: dict, where: str, what: str) -> None:
    """After the schema: every architecture, syscall and capability name is one leastpriv knows.

    A name nothing knows is refused, never passed on to an export (``capabilities: ["ALL"]`` would
    become Kubernetes ``add: [ALL]``; an unknown syscall name would be dropped or mis-resolved by a
    runtime). Unknown syscall *numbers* are kept as ``#N`` by the tracers and stay allowed here.
    """

    arches = set(syscalls.arches())
    caps = constants.group("capability")

    def bad(path: str, problem: str) -> None:
        raise UserError(f"{where}: not a valid {what}: {path}: {problem}")

    def arch_ok(path: str, arch: str) -> None:
        if arch not in arches:
            bad(path, f"unknown architecture {_short(arch)} (known: {', '.join(sorted(arches))})")

    def names_ok(path: str, arch: str, names) -> None:
        arch_ok(path, arch)
        table = syscalls.table(arch)
        for i, n in enumerate(names):
            if n not in table and not n.startswith("#"):
                bad(f"{path}[{i}]" if isinstance(names, list) else f"{path}.{n}",
                    f"unknown syscall {_short(n)} on {arch}")

    def cap_ok(path: str, cap: str) -> None:
        if cap not in caps:
            bad(path, f"unknown capability {_short(cap)}" + (" (a profile names each capability; ALL is not one)"
                                                                  if cap.upper() in ("ALL", "CAP_ALL") else ""))

    facts = doc if what == "recording" else doc.get("facts", {})
    for arch, table in (facts.get("syscalls") or {}).items():
        names_ok(f"$.{'facts.' * (what != 'recording')}syscalls.{arch}", arch, table)
    for arch, table in (facts.get("args") or {}).items():
        names_ok(f"$.{'facts.' * (what != 'recording')}args.{arch}", arch, table)
    for arch in (facts.get("unknown_syscalls") or {}):
        arch_ok(f"$.{'facts.' * (what != 'recording')}unknown_syscalls", arch)
    for exe, t in (facts.get("executables") or {}).items():
        for arch in t:
            arch_ok(f"$.{'facts.' * (what != 'recording')}executables", arch)
    if what == "recording":
        arch_ok("$.host_arch", doc.get("host_arch", ""))
        for i, c in enumerate(doc.get("capabilities") or []):
            cap_ok(f"$.capabilities[{i}].cap", c["cap"])
        return
    for cap in (facts.get("capabilities") or {}):
        cap_ok("$.facts.capabilities", cap)
    rules = doc.get("rules") or {}
    for i, cap in enumerate(rules.get("capabilities") or []):
        cap_ok(f"$.rules.capabilities[{i}]", cap)
    for arch, names in (rules.get("syscalls") or {}).items():
        names_ok(f"$.rules.syscalls.{arch}", arch, names)
    for key in ("conditional", "errno"):
        for arch, rs in (rules.get(key) or {}).items():
            for j, r in enumerate(rs):
                names_ok(f"$.rules.{key}.{arch}[{j}].names", arch, r["names"])
    for arch in (rules.get("unknown") or {}):
        arch_ok("$.rules.unknown", arch)
    for arch, sibs in (rules.get("siblings") or {}).items():
        names_ok(f"$.rules.siblings.{arch}", arch, [x["name"] for x in sibs] + [x["sibling_of"] for x in sibs])
    for arch, d in (rules.get("denylist") or {}).items():
        names_ok(f"$.rules.denylist.{arch}.names", arch, d.get("names") or [])
        for key in ("conditional", "errno"):
            for j, r in enumerate(d.get(key) or []):
                names_ok(f"$.rules.denylist.{arch}.{key}[{j}].names", arch, r["names"])
    for i, run in enumerate(doc.get("runs") or []):
        if run.get("host_arch"):
            arch_ok(f"$.runs[{i}].host_arch", run["host_arch"])
