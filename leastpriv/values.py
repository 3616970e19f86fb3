"""Frozen value classes: ``@value`` is ``@dataclass(frozen=True)`` with equality, hash and repr written once.

The facts and rules are typed frozen dataclasses (fields, ``replace``, ``asdict``, frozenness are
dataclasses' own). What ``@value`` changes is where three of their methods come from: Python 3.11's
dataclasses writes the source of ``__eq__``, ``__hash__`` and ``__repr__`` for every class and compiles it
at import (~80 µs a method on the 2-vCPU machine this was measured on), and a ``learn`` imports ~20 such
classes: ~5 ms of every start. Here the base class :class:`Value` has them, with the same results as
dataclasses' (tests/test_values.py compares them with dataclasses' own on every class):

* ``a == b``: the same class and equal fields, in order, leaving out ``field(compare=False)``;
  ``NotImplemented`` for another class;
* ``hash(a)``: the hash of the tuple of those fields (``field(hash=...)`` as dataclasses reads it);
* ``repr(a)``: ``Name(f=..., g=...)`` over the fields without ``field(repr=False)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any, Callable, TypeVar, dataclass_transform

T = TypeVar("T", bound=type)


class Value:
    """The base of every ``@value`` class."""

    __slots__ = ()

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


@dataclass_transform(eq_default=True, frozen_default=True, field_specifiers=(field,))
def value(cls: T) -> T:
    """``@dataclass(frozen=True)`` for a subclass of :class:`Value` (which supplies ``__eq__``, ``__hash__``
    and ``__repr__``)."""
    if not issubclass(cls, Value):
        raise TypeError(f"@value: {cls.__qualname__} must derive from Value")
    return dataclass(frozen=True, eq=False, repr=False)(cls)


_KEYS: dict[type, tuple[Callable[[Any], tuple], Callable[[Any], tuple], tuple[str, ...]]] = {}


def _keys(cls: type) -> tuple[Callable[[Any], tuple], Callable[[Any], tuple], tuple[str, ...]]:
    """(the fields compared, the fields hashed, as functions of an instance giving a tuple; the fields shown)."""
    got = _KEYS.get(cls)
    if got is None:
        fs = fields(cls)
        got = _KEYS[cls] = (_getter([f.name for f in fs if f.compare]),
                            _getter([f.name for f in fs if (f.compare if f.hash is None else f.hash)]),
                            tuple(f.name for f in fs if f.repr))
    return got


def _getter(names: list[str]) -> Callable[[Any], tuple]:
    if len(names) >= 2:
        return attrgetter(*names)   # a tuple of their values
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()
