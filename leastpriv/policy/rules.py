"""The rules of a profile: what it allows, as typed frozen values, and their defaults, stated once.

learner/rules.py derives a :class:`Rules` from the facts; the seccomp model, the Landlock ruleset, the
exporters, the enforcer, the reviews and ``check`` read its attributes. The JSON form (the ``rules``
object of a profile, leastpriv/schemas/profile.schema.json) is read and written only here:
:meth:`Rules.from_json` / :meth:`Rules.to_json` round-trip it exactly, so a profile a user committed
loads and saves to the same bytes (a key the file did not have stays absent; a key this version does
not know is kept as it was).

    style             "allowlist" | "denylist": which policy the exporters write
    args_mode         "strict" | "safe" | "off": how the argument rules were derived
    no_new_privileges false when the workload changes ids or capabilities (setuid, file caps)
    syscalls          {arch: (name,)}          allowed whatever the arguments
    conditional       {arch: (ArgRule,)}       allowed only when the arguments match; the conditions of
                                               one rule are ANDed, separate rules are alternatives
    errno             {arch: (ErrnoRule,)}     answered with an errno (clone3 -> ENOSYS)
    siblings          {arch: (Sibling,)}       harmless siblings of what was used (included in syscalls)
    exact             only what was traced (no siblings)
    loose             (str,)                   argument rules left out, and why
    unknown           {arch: (nr,)}            numbers no table names (reported, not allowed)
    capabilities      (CAP_*,)                 the capability set
    files             FileRules                literal paths no pattern covers, by access
    patterns, owned   (PathPattern,)              path globs; directories the workload created
    network           NetworkRules             socket families and TCP ports
    denylist          {arch: Denylist} | None  only with style "denylist"
    translated_from   arch | None              set by ``--arch`` retargeting (learner/arches.py)
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..values import Value, field, field_names, replace, value

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any

STYLES = ("allowlist", "denylist")
ARGS_MODES = ("strict", "safe", "off")
ACCESSES = ("read", "write", "exec", "create")


# ---- JSON helpers: absent keys and unknown keys survive a round trip ----------------------------------
def _obj(d: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{what} must be an object")
    return d


def _absent(d: Mapping[str, Any], known: Iterable[str]) -> frozenset[str]:
    return frozenset(k for k in known if k not in d)


def _extra(d: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    known = set(known)
    return {k: v for k, v in d.items() if k not in known}


def _emit(out: dict[str, Any], key: str, value: Any, default: Any, absent: frozenset[str]) -> None:
    """Write ``key`` unless the source JSON did not have it and the value is still the default."""
    if key in absent and value == default:
        return
    out[key] = value


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(v or ())


def _per_arch(d: Any, item) -> dict[str, tuple]:
    return {arch: tuple(item(x) for x in (rows or ())) for arch, rows in (d or {}).items()}


def _per_arch_json(d: Mapping[str, tuple]) -> dict[str, list]:
    return {arch: [x.to_json() if hasattr(x, "to_json") else x for x in rows] for arch, rows in d.items()}


# ---- seccomp rules ------------------------------------------------------------------------------------
@value
class ArgCondition(Value):
    """One condition on one argument (libseccomp's scmp_arg_cmp): ``arg[index] op value [valueTwo]``."""

    index: int
    op: str
    value: int
    value_two: int = 0
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("index", "op", "value", "valueTwo")

    @classmethod
    def from_json(cls, d: Any) -> "ArgCondition":
        d = _obj(d, "argument condition")
        return cls(index=int(d["index"]), op=str(d["op"]), value=int(d["value"]), value_two=int(d.get("valueTwo", 0)),
                   absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra, "index": self.index, "op": self.op, "value": self.value}
        _emit(out, "valueTwo", self.value_two, 0, self.absent)
        return out


@value
class ArgRule(Value):
    """Allow (or, in a denylist, deny) ``names`` when every condition holds."""

    names: tuple[str, ...]
    args: tuple[ArgCondition, ...]
    comment: str = ""
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("names", "args", "comment")

    @classmethod
    def from_json(cls, d: Any) -> "ArgRule":
        d = _obj(d, "argument rule")
        return cls(names=_strs(d.get("names")), args=tuple(ArgCondition.from_json(c) for c in d.get("args") or ()),
                   comment=str(d.get("comment", "")), absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra}
        _emit(out, "names", list(self.names), [], self.absent)
        _emit(out, "args", [c.to_json() for c in self.args], [], self.absent)
        _emit(out, "comment", self.comment, "", self.absent)
        return out


@value
class ErrnoRule(Value):
    """Answer ``names`` with ``errno`` instead of running them (clone3 -> ENOSYS)."""

    names: tuple[str, ...]
    errno: str
    comment: str = ""
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("names", "errno", "comment")

    @classmethod
    def from_json(cls, d: Any) -> "ErrnoRule":
        d = _obj(d, "errno rule")
        return cls(names=_strs(d.get("names")), errno=str(d.get("errno", "")), comment=str(d.get("comment", "")),
                   absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra}
        _emit(out, "names", list(self.names), [], self.absent)
        _emit(out, "errno", self.errno, "", self.absent)
        _emit(out, "comment", self.comment, "", self.absent)
        return out


@value
class Sibling(Value):
    """A syscall allowed because a harmless sibling of it was used (learner/siblings.py), and why."""

    name: str
    sibling_of: str       # the used syscall that brought it in
    family: str
    why: str = ""
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("name", "sibling_of", "family", "why")

    @classmethod
    def from_json(cls, d: Any) -> "Sibling":
        d = _obj(d, "sibling")
        return cls(name=str(d["name"]), sibling_of=str(d["sibling_of"]), family=str(d.get("family", "")),
                   why=str(d.get("why", "")), absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra, "name": self.name, "sibling_of": self.sibling_of}
        _emit(out, "family", self.family, "", self.absent)
        _emit(out, "why", self.why, "", self.absent)
        return out


@value
class Denylist(Value):
    """A denylist for one ABI: under default ALLOW, deny ``names``; deny a call when all conditions of one
    ``conditional`` rule match; answer ``errno`` rules with their errno (policy/denylist.py)."""

    names: tuple[str, ...] = ()
    conditional: tuple[ArgRule, ...] = ()
    errno: tuple[ErrnoRule, ...] = ()
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("names", "conditional", "errno")

    @classmethod
    def from_json(cls, d: Any) -> "Denylist":
        d = _obj(d, "denylist")
        return cls(names=_strs(d.get("names")), conditional=tuple(ArgRule.from_json(r) for r in d.get("conditional") or ()),
                   errno=tuple(ErrnoRule.from_json(r) for r in d.get("errno") or ()),
                   absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra}
        _emit(out, "names", list(self.names), [], self.absent)
        _emit(out, "conditional", [r.to_json() for r in self.conditional], [], self.absent)
        _emit(out, "errno", [r.to_json() for r in self.errno], [], self.absent)
        return out


# ---- files and network --------------------------------------------------------------------------------
@value
class PathPattern(Value):
    """A path glob (``patterns``) or a directory the workload created (``owned``: it may create, write and
    remove beneath it), learner/patterns.py; ``paths`` are examples of what it stands for."""

    pattern: str
    access: tuple[str, ...]
    base: str = ""
    paths: tuple[str, ...] = ()
    count: int = 0
    runs: int = 0
    why: str = ""
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KEYS = ("pattern", "access", "base", "paths", "count", "runs", "why")

    @classmethod
    def from_json(cls, d: Any) -> "PathPattern":
        d = _obj(d, "path rule")
        return cls(pattern=str(d["pattern"]), access=_strs(d.get("access")), base=str(d.get("base", "")),
                   paths=_strs(d.get("paths")), count=int(d.get("count", 0)), runs=int(d.get("runs", 0)),
                   why=str(d.get("why", "")), absent=_absent(d, cls._KEYS), extra=_extra(d, cls._KEYS))

    def to_json(self) -> dict:
        out = {**self.extra, "pattern": self.pattern, "access": list(self.access)}
        _emit(out, "base", self.base, "", self.absent)
        _emit(out, "paths", list(self.paths), [], self.absent)
        _emit(out, "count", self.count, 0, self.absent)
        _emit(out, "runs", self.runs, 0, self.absent)
        _emit(out, "why", self.why, "", self.absent)
        return out


@value
class FileRules(Value):
    """Literal paths by access (what no pattern or owned directory covers)."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    exec: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Any) -> "FileRules":
        d = _obj(d or {}, "files")
        return cls(**{a: _strs(d.get(a)) for a in ACCESSES}, absent=_absent(d, ACCESSES))

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for a in ACCESSES:
            _emit(out, a, list(getattr(self, a)), [], self.absent)
        return out

    def of(self, access: str) -> tuple[str, ...]:
        """The paths with ``access`` (read, write, exec, create); none for another word."""
        return getattr(self, access) if access in ACCESSES else ()

    def items(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(access, paths) for the four accesses, in the JSON's order (create, exec, read, write)."""
        for a in sorted(ACCESSES):
            if a not in self.absent or getattr(self, a):
                yield a, getattr(self, a)

    def all_paths(self) -> set[str]:
        return {p for a in ACCESSES for p in getattr(self, a)}


@value
class NetworkRules(Value):
    """Socket families used, and TCP ports by operation (``ports["tcp_bind"]``, ``ports["tcp_connect"]``)."""

    families: tuple[str, ...] = ()
    ports: Mapping[str, tuple[int | None, ...]] = field(default_factory=dict)
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Any) -> "NetworkRules":
        d = _obj(d or {}, "network")
        return cls(families=_strs(d.get("families")),
                   ports={k: tuple(v or ()) for k, v in d.items() if k != "families"},
                   absent=_absent(d, ("families",)))

    def to_json(self) -> dict:
        out: dict[str, Any] = {k: list(v) for k, v in self.ports.items()}
        _emit(out, "families", list(self.families), [], self.absent)
        return out

    def tcp(self, op: str) -> tuple[int | None, ...]:
        """The TCP ports of ``op`` (bind, connect)."""
        return self.ports.get(f"tcp_{op}", ())


# ---- the rules ----------------------------------------------------------------------------------------
@value
class Rules(Value):
    """What a profile allows (see the module doc). Build it with learner.rules.derive_rules or from_json."""

    style: str = "allowlist"          # allowlist: deny all but what was used; denylist: allow all but the dangerous
    args_mode: str = "safe"           # argument rules: strict, safe, off
    no_new_privileges: bool = True    # false when the workload changes ids or capabilities (setuid, file caps)
    syscalls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    conditional: Mapping[str, tuple[ArgRule, ...]] = field(default_factory=dict)
    errno: Mapping[str, tuple[ErrnoRule, ...]] = field(default_factory=dict)
    loose: tuple[str, ...] = ()
    siblings: Mapping[str, tuple[Sibling, ...]] = field(default_factory=dict)
    exact: bool = False
    unknown: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    files: FileRules = field(default_factory=FileRules)
    patterns: tuple[PathPattern, ...] = ()
    owned: tuple[PathPattern, ...] = ()
    network: NetworkRules = field(default_factory=NetworkRules)
    denylist: Mapping[str, Denylist] | None = None
    translated_from: str | None = None
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)   # keys the JSON lacked
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)  # keys this version does not know

    _KEYS = ("style", "args_mode", "no_new_privileges", "syscalls", "conditional", "errno", "loose", "siblings",
             "exact", "unknown", "capabilities", "files", "patterns", "owned", "network", "denylist",
             "translated_from")

    # ---- reading ---------------------------------------------------------------------------------------
    def rule_options(self) -> dict:
        """The options learner/rules.py derives rules with (to keep them when the profile grows)."""
        return {"args": self.args_mode, "style": self.style}

    def allowed(self, arch: str) -> tuple[str, ...]:
        """The names allowed on ``arch`` whatever their arguments."""
        return self.syscalls.get(arch, ())

    def conditional_of(self, arch: str) -> tuple[ArgRule, ...]:
        return self.conditional.get(arch, ())

    def errno_of(self, arch: str) -> tuple[ErrnoRule, ...]:
        return self.errno.get(arch, ())

    def siblings_of(self, arch: str) -> tuple[Sibling, ...]:
        return self.siblings.get(arch, ())

    @property
    def empty(self) -> bool:
        """True when the rules allow nothing and say nothing (a profile saved without a ``rules`` object)."""
        return self == DEFAULT

    # ---- JSON ------------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, d: Any) -> "Rules":
        """The rules of a profile's ``rules`` object (checked against the profile schema by the caller)."""
        d = _obj(d if d is not None else {}, "rules")
        style, args_mode = d.get("style", DEFAULT.style), d.get("args_mode", DEFAULT.args_mode)
        deny = d.get("denylist")
        tf = d.get("translated_from")
        known = cls._KEYS if isinstance(tf, str) or tf is None else tuple(k for k in cls._KEYS if k != "translated_from")
        return cls(
            style=style if isinstance(style, str) else DEFAULT.style,
            args_mode=args_mode if isinstance(args_mode, str) else DEFAULT.args_mode,
            no_new_privileges=bool(d.get("no_new_privileges", DEFAULT.no_new_privileges)),
            syscalls={a: _strs(v) for a, v in (d.get("syscalls") or {}).items()},
            conditional=_per_arch(d.get("conditional"), ArgRule.from_json),
            errno=_per_arch(d.get("errno"), ErrnoRule.from_json),
            loose=_strs(d.get("loose")),
            siblings=_per_arch(d.get("siblings"), Sibling.from_json),
            exact=bool(d.get("exact", False)),
            unknown={a: tuple(v or ()) for a, v in (d.get("unknown") or {}).items()},
            capabilities=_strs(d.get("capabilities")),
            files=FileRules.from_json(d.get("files")),
            patterns=tuple(PathPattern.from_json(p) for p in d.get("patterns") or ()),
            owned=tuple(PathPattern.from_json(p) for p in d.get("owned") or ()),
            network=NetworkRules.from_json(d.get("network")),
            denylist=None if deny is None else {a: Denylist.from_json(v) for a, v in _obj(deny, "denylist").items()},
            translated_from=tf if isinstance(tf, str) else None,
            absent=_absent(d, cls._KEYS), extra=_extra(d, known))

    def to_json(self) -> dict:
        """The ``rules`` object, exactly as :meth:`from_json` read it (keys it lacked stay absent)."""
        out: dict[str, Any] = {**self.extra}
        ab = self.absent
        _emit(out, "style", self.style, DEFAULT.style, ab)
        _emit(out, "args_mode", self.args_mode, DEFAULT.args_mode, ab)
        _emit(out, "no_new_privileges", self.no_new_privileges, DEFAULT.no_new_privileges, ab)
        _emit(out, "syscalls", {a: list(v) for a, v in self.syscalls.items()}, {}, ab)
        _emit(out, "conditional", _per_arch_json(self.conditional), {}, ab)
        _emit(out, "errno", _per_arch_json(self.errno), {}, ab)
        _emit(out, "loose", list(self.loose), [], ab)
        _emit(out, "siblings", _per_arch_json(self.siblings), {}, ab)
        _emit(out, "exact", self.exact, False, ab)
        _emit(out, "unknown", {a: list(v) for a, v in self.unknown.items()}, {}, ab)
        _emit(out, "capabilities", list(self.capabilities), [], ab)
        _emit(out, "files", self.files.to_json(), {}, ab)
        _emit(out, "patterns", [p.to_json() for p in self.patterns], [], ab)
        _emit(out, "owned", [p.to_json() for p in self.owned], [], ab)
        _emit(out, "network", self.network.to_json(), {}, ab)
        if self.denylist is not None:
            out["denylist"] = {a: v.to_json() for a, v in self.denylist.items()}
        if self.translated_from is not None:
            out["translated_from"] = self.translated_from
        return out

    def replace(self, **changes: Any) -> "Rules":
        return replace(self, **changes)


DEFAULT = Rules()                     # the defaults, stated once
EMPTY = Rules.from_json({})           # a profile without a ``rules`` object
RULE_FIELDS = tuple(n for n in field_names(Rules) if n not in ("absent", "extra"))

