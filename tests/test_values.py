"""@value classes (leastpriv/values.py) compare, hash and print exactly as the @dataclass(frozen=True) they
replace: every one of them against a twin that dataclasses makes from the same fields."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import leastpriv
from leastpriv.values import Value, field, field_names, replace, value


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


def _twin(cls, defaults: bool = False):
    fs = dataclasses.fields(cls)
    twin = dataclasses.make_dataclass(cls.__name__, [(f.name, f.type, dataclasses.field(
        compare=f.compare, repr=f.repr, hash=f.hash,
        default=f.default if defaults else dataclasses.MISSING,
        default_factory=f.default_factory if defaults else dataclasses.MISSING)) for f in fs], frozen=True)
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


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_init_replace_and_asdict_are_dataclasses_own(cls):
    """@value makes __init__ without dataclasses: the same signature, the same defaults (a default_factory
    called anew for each instance), and dataclasses' own fields/replace/asdict work on the result."""
    import inspect

    twin = _twin(cls, defaults=True)
    assert str(inspect.signature(cls)) == str(inspect.signature(twin))
    assert cls.__match_args__ == twin.__match_args__
    fs = dataclasses.fields(cls)
    required = {f.name: _sample(f) for f in fs
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    a, b, ta = cls(**required), cls(**required), twin(**required)
    assert repr(a) == repr(ta)
    for f in fs:
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) == getattr(ta, f.name) and getattr(a, f.name) is not getattr(b, f.name)
    args = [_sample(f, other=True) for f in fs]   # every field given, positionally
    c, tc = cls(*args), twin(*args)
    assert repr(c) == repr(tc) and vars(c) == vars(tc)
    assert dataclasses.asdict(c) == dataclasses.asdict(tc)
    for f in fs:
        changed = {f.name: _sample(f)}
        assert repr(replace(c, **changed)) == repr(dataclasses.replace(tc, **changed)) \
            == repr(dataclasses.replace(c, **changed)).replace(cls.__qualname__, twin.__qualname__)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(c, f.name)
    assert field_names(cls) == field_names(c) == tuple(f.name for f in fs)
    with pytest.raises(TypeError):
        cls(*args, None)   # one argument too many
    with pytest.raises(TypeError):
        replace(c, no_such_field=1)


def test_value_classes_refuse_what_they_cannot_do():
    with pytest.raises(TypeError, match="follows default"):
        @value
        class Order(Value):   # noqa: F841
            a: int = 1
            b: int
    with pytest.raises(ValueError, match="mutable default"):
        @value
        class Mutable(Value):   # noqa: F841
            a: list = []
    with pytest.raises(TypeError, match="__post_init__"):
        @value
        class Post(Value):   # noqa: F841
            a: int

            def __post_init__(self):
                pass
    with pytest.raises(TypeError, match="values.field"):
        @value
        class OtherField(Value):   # noqa: F841
            a: dict = dataclasses.field(default_factory=dict)
    with pytest.raises(ValueError, match="mutable default"):   # values.field in a plain @dataclass: refused
        @dataclasses.dataclass
        class Plain:   # noqa: F841
            a: dict = field(default_factory=dict)


def test_a_value_class_inherits_its_bases_fields():
    @value
    class Base(Value):
        a: int
        b: str = "b"

    @value
    class Child(Base):
        c: tuple = ()

    x = Child(1, "x", (2,))
    assert field_names(Child) == ("a", "b", "c") and repr(x).endswith("Child(a=1, b='x', c=(2,))")
    assert x == Child(1, "x", (2,)) and x != Base(1, "x") and Child(1).b == "b"
    assert [f.name for f in dataclasses.fields(x)] == ["a", "b", "c"] and not dataclasses.is_dataclass(Value)

    @value
    class Again(Base):   # a field declared again keeps its base's default, as with dataclasses
        b: str

    assert Again(1).b == "b" and repr(Again(1)).endswith("Again(a=1, b='b')")


def test_the_generated_init_templates_are_current():
    """leastpriv/_value_inits.py is what tools/gen_value_inits.py writes (make tables), and a class with more
    fields than it has templates for still gets its __init__ (compiled then)."""
    import runpy
    from pathlib import Path

    root = Path(leastpriv.__file__).resolve().parent.parent
    gen = runpy.run_path(str(root / "tools" / "gen_value_inits.py"))
    assert (root / "leastpriv" / "_value_inits.py").read_text() == gen["source"]()

    names = [f"f{i}" for i in range(40)]
    big = value(type("Big", (Value,), {"__annotations__": dict.fromkeys(names, "int"), "f39": 0,
                                       "__module__": __name__}))
    x = big(*range(39))
    assert x.f38 == 38 and x.f39 == 0 and field_names(big) == tuple(names)
