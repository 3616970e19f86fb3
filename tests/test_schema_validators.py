"""The shipped schemas' validators are generated ahead of time (tools/gen_validators.py, make tables) from
the schema text they check, and used only while that text is the shipped schema."""
from __future__ import annotations

import importlib.util

import pytest

from leastpriv import schema
from leastpriv.errors import UserError

from .conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location("gen_validators", ROOT / "tools" / "gen_validators.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["profile", "recording"])
def test_committed_validators_are_what_the_tool_generates(name):
    committed = (ROOT / "leastpriv" / "schemas" / f"_validate_{name}.py").read_text()
    assert committed == _tool().source(name), f"run `make tables`: _validate_{name}.py is stale"


def test_committed_exceptions_are_what_the_tool_generates():
    committed = (ROOT / "leastpriv" / "schemas" / "_errors.py").read_text()
    assert committed == _tool().errors_source(), "run `make tables`: schemas/_errors.py is stale"


@pytest.mark.parametrize("name", ["profile", "recording"])
def test_the_generated_validator_is_used_and_refuses_like_a_compiled_one(name):
    generated = importlib.import_module(f"leastpriv.schemas._validate_{name}")
    assert schema.shipped(name).fast is generated.validate
    with pytest.raises(UserError, match=r"^f: not a valid x: \$: expected object, got an array$"):
        schema.check_shipped([], name, "f", "x")
    with pytest.raises(UserError, match=r"^f: not a valid x: \$: missing key"):
        schema.check_shipped({}, name, "f", "x")


def test_a_schema_edited_after_generation_is_compiled_at_run_time(monkeypatch):
    generated = importlib.import_module("leastpriv.schemas._validate_recording")
    monkeypatch.setattr(generated, "SCHEMA_TEXT", generated.SCHEMA_TEXT.replace('"', "'"))
    compiled = schema.shipped.__wrapped__("recording")
    assert compiled.fast is not generated.validate
    with pytest.raises(UserError, match=r"expected object"):
        schema.check([], compiled, "f", "x")
