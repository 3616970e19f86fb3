"""@value classes (leastpriv/values.py) compare, hash and print exactly as the @dataclass(frozen=True) they
replace: every one of them against a twin that dataclasses makes from the same fields."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import leastpriv
from leastpriv.values import Value, value


def _value_classes():
    out = []
    for mod in pkgutil.walk_packages(leastpriv.__path__, "leastpriv."):
        if ".tracer.ebpf" in mod.name or mod.name.startswith("leastpriv.schemas"):
            continue
        m = importlib.import_module(mod.name)
        out += [c for c in vars(m).values() if isinstance(c, type) and issubclass(c, Value) and c is not Value
                and c.__module__ == m.__name__]
    return sorted(out, key=lambda c: (c.__module__, c.__qualname__))


CLASSES = _value_classes()


def _sample(f: dataclasses.Field, other: bool = False):
    t = str(f.type)
    if not other:
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
    for prefix, a, b in (("int", 3, 4), ("str", "s", "t"), ("bool", True, False), ("float", 1.5, 2.5),
                         ("tuple", ("a", 1), ("b",)), ("frozenset", frozenset({"a"}), frozenset({"b"})),
                         ("Mapping", {"k": 1}, {"k": 2}), ("dict", {"k": 1}, {"k": 2}),
                         ("Callable", len, abs)):
        if t.startswith(prefix):
            return b if other else a
    return "other" if other else None


def _twin(cls):
    fs = dataclasses.fields(cls)
    twin = dataclasses.make_dataclass(cls.__name__, [(f.name, f.type, dataclasses.field(compare=f.compare, repr=f.repr,
                                                                                         hash=f.hash)) for f in fs],
                                      frozen=True)
    twin.__qualname__ = cls.__qualname__
    return twin


def _hash(x):
    try:
        return ("ok", hash(x))
    except TypeError as exc:
        return ("TypeError", str(exc))


def test_every_value_class_is_found():
    names = {c.__qualname__ for c in CLASSES}
    assert {"Rules", "PathPattern", "Recording", "Endpoint", "Profile", "TraceOptions", "Risk", "Family"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_equality_hash_and_repr_are_dataclasses_own(cls):
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    twin = _twin(cls)
    fs = dataclasses.fields(cls)
    vals = {f.name: _sample(f) for f in fs}
    a, b, ta = cls(**vals), cls(**vals), twin(**vals)
    assert repr(a) == repr(ta)
    assert (a == b) is True and (a != b) is False
    assert _hash(a) == _hash(ta) and (_hash(a)[0] == "TypeError" or hash(a) == hash(b))
    assert a.__eq__(object()) is NotImplemented and a != ta
    for f in fs:   # each field changed alone: equal again exactly when dataclasses says so
        changed = {**vals, f.name: _sample(f, other=True)}
        assert (a == cls(**changed)) == (ta == twin(**changed)), f.name
        assert _hash(cls(**changed)) == _hash(twin(**changed)), f.name
        assert repr(cls(**changed)) == repr(twin(**changed)), f.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, f.name, changed[f.name])


def test_value_needs_the_base_class():
    with pytest.raises(TypeError):
        @value
        class NotAValue:   # noqa: F841
            x: int


def test_a_recursive_value_prints_dots():
    @value
    class Node(Value):
        items: list

    n = Node([])
    n.items.append(n)
    assert repr(n) == "test_a_recursive_value_prints_dots.<locals>.Node(items=[...])"
