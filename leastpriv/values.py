"""Frozen value classes: ``@value`` makes a typed, frozen, dataclass-compatible class without compiling code.

The facts and rules are typed frozen values: declared like a ``@dataclass(frozen=True)`` (annotated fields,
defaults, ``field(default_factory=..., compare=..., repr=..., hash=...)``) and behaving like one::

    @value
    class Endpoint(Value):
        op: str
        port: int | None
        proto: str = "unknown"

Why not ``dataclasses`` itself: for every class it writes the source of ``__init__``, ``__setattr__``,
``__delattr__`` (and ``__eq__``, ``__hash__``, ``__repr__``) and compiles it at import, and importing it
pulls in ``inspect``. A ``learn`` loads ~25 such classes: ~12 ms of every start, more than the trace of a
small command. Here nothing is compiled per class:

* ``__init__`` is a function made from one code template per number of fields (compiled ahead of time,
  leastpriv/_value_inits.py) whose argument names are replaced by the fields' (``CodeType.replace``); defaults are its ``__defaults__``; a ``default_factory`` is called when its
  argument was not given. It stores the fields straight into the instance's ``__dict__``.
* :class:`Value` (the base class) has the rest, with dataclasses' results (tests/test_values.py compares
  every class with a twin that ``dataclasses`` makes from the same fields):

  - ``a == b``: the same class and equal fields, in order, leaving out ``field(compare=False)``;
    ``NotImplemented`` for another class;
  - ``hash(a)``: the hash of the tuple of those fields (``field(hash=...)`` as dataclasses reads it);
  - ``repr(a)``: ``Name(f=..., g=...)`` over the fields without ``field(repr=False)``;
  - assigning or deleting a field raises ``dataclasses.FrozenInstanceError``.

* ``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass`` work on these classes: the
  ``__dataclass_fields__`` they read is made by ``dataclasses`` itself, from the same fields, the first
  time something asks for it (so ``dataclasses`` is imported only then). Inside leastpriv use
  :func:`replace` and :func:`field_names` from here, which need nothing of it.

What ``@dataclass`` options a value class cannot have (``ClassVar``/``InitVar`` fields, ``init=False``,
``kw_only``, ``__post_init__``) raise ``TypeError`` when the class is declared.
"""
from __future__ import annotations

import builtins
from operator import attrgetter
from reprlib import recursive_repr
from types import FunctionType

from . import _value_inits

__all__ = ["Value", "value", "field", "replace", "field_names", "MISSING"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


class _Factory:
    __slots__ = ()

    def __repr__(self) -> str:   # as dataclasses shows a default_factory in a signature
        return "<factory>"


MISSING = _Missing()      # "no default" (the counterpart of dataclasses.MISSING)
_FACTORY = _Factory()     # the __init__ default of a field with a default_factory: call the factory


class Field:
    """A field of a value class, as ``field(...)`` declares it (name and type filled in by ``@value``)."""

    __slots__ = ("name", "type", "default", "default_factory", "compare", "repr", "hash")
    __hash__ = None   # type: ignore[assignment]   # a plain @dataclass given one refuses it as a mutable default

    def __init__(self, default, default_factory, compare, repr, hash):   # noqa: A002 - dataclasses' names
        self.name = ""
        self.type = None
        self.default, self.default_factory = default, default_factory
        self.compare, self.repr, self.hash = compare, repr, hash

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, type={self.type!r}, default={self.default!r}, "
                f"default_factory={self.default_factory!r}, compare={self.compare}, repr={self.repr}, "
                f"hash={self.hash})")


def field(*, default=MISSING, default_factory=MISSING, compare: bool = True, repr: bool = True,   # noqa: A002
          hash: bool | None = None):   # noqa: A002
    """The options of one field, as ``dataclasses.field`` takes them (only those a value class uses)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr, hash)


class _DataclassView:
    """``__dataclass_fields__`` / ``__dataclass_params__`` of a value class, made by dataclasses on first use."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, obj, owner: type):
        cls = next((c for c in owner.__mro__ if "__value_fields__" in c.__dict__), None)
        if cls is None:   # Value itself: not a dataclass
            raise AttributeError(self.attr)
        import dataclasses
        twin = dataclasses.make_dataclass(cls.__name__, [
            (f.name, f.type, dataclasses.field(default=f.default if f.default is not MISSING else dataclasses.MISSING,
                                               default_factory=(f.default_factory if f.default_factory is not MISSING
                                                                else dataclasses.MISSING),
                                               compare=f.compare, repr=f.repr, hash=f.hash))
            for f in cls.__value_fields__], frozen=True)
        type.__setattr__(cls, "__dataclass_fields__", twin.__dataclass_fields__)
        type.__setattr__(cls, "__dataclass_params__", twin.__dataclass_params__)
        return getattr(cls, self.attr)


def _frozen(name: str) -> Exception:
    from dataclasses import FrozenInstanceError
    return FrozenInstanceError(f"cannot assign to field {name!r}")


class Value:
    """The base of every ``@value`` class."""

    __slots__ = ()
    __dataclass_fields__ = _DataclassView()
    __dataclass_params__ = _DataclassView()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            key = _keys(self.__class__)[0]
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(_keys(self.__class__)[1](self))

    @recursive_repr()
    def __repr__(self) -> str:
        return (self.__class__.__qualname__ + "("
                + ", ".join(f"{n}={getattr(self, n)!r}" for n in _keys(self.__class__)[2]) + ")")

    def __setattr__(self, name: str, val: object) -> None:
        cls = self.__class__
        if "__value_fields__" in cls.__dict__ or name in cls.__value_names__:
            raise _frozen(name)
        object.__setattr__(self, name, val)

    def __delattr__(self, name: str) -> None:
        cls = self.__class__
        if "__value_fields__" in cls.__dict__ or name in cls.__value_names__:
            raise _frozen(name)
        object.__delattr__(self, name)


def value(cls):
    """Make ``cls`` (a subclass of :class:`Value`) a frozen value class with the annotated fields."""
    if not (isinstance(cls, type) and issubclass(cls, Value)):
        raise TypeError(f"@value: {getattr(cls, '__qualname__', cls)!r} must derive from Value")
    if "__post_init__" in cls.__dict__ or "__init__" in cls.__dict__:
        raise TypeError(f"@value: {cls.__qualname__} cannot have its own __init__ or __post_init__")
    fields = _collect(cls)
    names = tuple(f.name for f in fields)
    cls.__value_fields__ = fields
    cls.__value_names__ = frozenset(names)
    cls.__match_args__ = names
    cls.__init__ = _init(cls, fields)
    return cls


def field_names(cls_or_obj) -> tuple[str, ...]:
    """The names of the fields of a value class (or of a value), in order."""
    return tuple(f.name for f in _value_class(cls_or_obj).__value_fields__)


def replace(obj, /, **changes):
    """A copy of the value ``obj`` with some fields changed (``dataclasses.replace`` for a value)."""
    cls = _value_class(obj)
    for f in cls.__value_fields__:
        if f.name not in changes:
            changes[f.name] = obj.__dict__[f.name]
    return cls(**changes)


def _value_class(cls_or_obj) -> type:
    cls = cls_or_obj if isinstance(cls_or_obj, type) else cls_or_obj.__class__
    if not issubclass(cls, Value) or not hasattr(cls, "__value_fields__"):
        raise TypeError(f"{cls.__qualname__} is not a value class (leastpriv.values)")
    return cls


def _collect(cls: type) -> tuple[Field, ...]:
    """The fields of ``cls``: those of its value bases, then its own annotations, in order (as dataclasses)."""
    by_name: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__value_fields__", ()):
            by_name[f.name] = f
    for name, type_ in cls.__dict__.get("__annotations__", {}).items():
        t = type_ if isinstance(type_, str) else getattr(type_, "__name__", "")
        if t.startswith(("ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar", "KW_ONLY")):
            raise TypeError(f"@value: {cls.__qualname__}.{name}: ClassVar/InitVar/KW_ONLY fields are not supported")
        default = getattr(cls, name, MISSING)   # as dataclasses: a base's default is inherited
        if isinstance(default, Field):
            f = default
        elif type(default).__name__ == "Field" and type(default).__module__ == "dataclasses":
            raise TypeError(f"@value: {cls.__qualname__}.{name}: use leastpriv.values.field, not dataclasses.field")
        else:
            if default is not MISSING and default.__class__.__hash__ is None:   # dataclasses' own check
                raise ValueError(f"mutable default {type(default)} for field {name} is not allowed: "
                                 "use default_factory")
            f = Field(default, MISSING, True, True, None)
        f.name, f.type = name, type_
        by_name[name] = f
        if f.default is MISSING:   # as dataclasses: the class attribute is the default, or none
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, f.default)
    fields = tuple(by_name.values())
    seen_default = False
    for f in fields:
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    return fields


# ---- __init__ without a compile per class ---------------------------------------------------------------
# The template for n fields stores its arguments _0 .. _{n-1} under the keys "_0" .. "_{n-1}"; a class's
# __init__ is that code with the argument names and the keys replaced by its field names. An argument
# left at _FACTORY (the default of a field with a default_factory) is replaced by the factory's result;
# the factories are the function's globals f0 .. f{n-1}. The templates up to GENERATED fields are compiled
# ahead of time into leastpriv/_value_inits.py (tools/gen_value_inits.py, make tables): loading them is
# ~10x cheaper than compiling them at every start (~0.9 ms for the ten sizes a learn uses).
GENERATED = 32
_TEMPLATES: dict[int, object] = {}


def template_source(n: int) -> str:
    """The source of the __init__ template for ``n`` fields (a function named ``init_<n>``)."""
    args = [f"_{i}" for i in range(n)]
    return (f"def init_{n}(__value_self__" + "".join(", " + a for a in args) + "):\n"
            "    __value_dict__ = __value_self__.__dict__\n"
            + "".join(f"    __value_dict__['{a}'] = {a} if {a} is not F else f{i}()\n" for i, a in enumerate(args))
            + ("" if n else "    pass\n"))


def _template(n: int):
    code = _TEMPLATES.get(n)
    if code is None:
        if n <= GENERATED:
            code = getattr(_value_inits, f"init_{n}").__code__
        else:
            ns: dict = {}
            exec(template_source(n), ns)   # noqa: S102 - our own fixed template, compiled once per size
            code = ns[f"init_{n}"].__code__
        _TEMPLATES[n] = code
    return code


def _init(cls: type, fields: tuple[Field, ...]):
    names = {f"_{i}": f.name for i, f in enumerate(fields)}
    code = _template(len(fields))
    code = code.replace(co_varnames=tuple(names.get(v, v) for v in code.co_varnames),
                        co_consts=tuple(names.get(c, c) if isinstance(c, str) else c for c in code.co_consts),
                        co_name="__init__", co_qualname=f"{cls.__qualname__}.__init__")
    env = {"__builtins__": builtins, "F": _FACTORY}
    defaults = []
    for i, f in enumerate(fields):
        if f.default_factory is not MISSING:
            env[f"f{i}"] = f.default_factory
            defaults.append(_FACTORY)
        elif f.default is not MISSING:
            defaults.append(f.default)
        elif defaults:   # cannot happen: _collect checked the order
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    fn = FunctionType(code, env, "__init__", tuple(defaults) or None)
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    fn.__module__ = cls.__module__
    fn.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return fn


# ---- equality, hash and repr --------------------------------------------------------------------------
_KEYS: dict[type, tuple] = {}


def _keys(cls: type) -> tuple:
    """(the fields compared, the fields hashed, as functions of an instance giving a tuple; the fields shown)."""
    got = _KEYS.get(cls)
    if got is None:
        fs = cls.__value_fields__
        got = _KEYS[cls] = (_getter([f.name for f in fs if f.compare]),
                            _getter([f.name for f in fs if (f.compare if f.hash is None else f.hash)]),
                            tuple(f.name for f in fs if f.repr))
    return got


def _getter(names: list[str]):
    if len(names) >= 2:
        return attrgetter(*names)   # a tuple of their values
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()
