"""Facts -> rules: what the profile allows. A pure function of the facts.

``derive_rules(facts, ...)`` returns a policy.rules.Rules (the typed model every exporter, the seccomp
model and the local enforcer read; its fields and JSON form are described in policy/rules.py). The
allowlist fields are filled with style "denylist" too, so an exporter can show both.

Argument-level minimisation (args modes strict/safe/off) lives in
learner/args.py, the denylist in policy/denylist.py, capabilities in
learner/capabilities.py; this module assembles the pieces.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..kernel import constants, syscalls
from ..policy.denylist import denylist_rules
from ..policy.rules import ARGS_MODES, DEFAULT, STYLES, ArgCondition, ArgRule, ErrnoRule, NetworkRules, Rules
from . import args as argrules
from .capabilities import capability_set
from .patterns import file_rules
from .siblings import Sibling, siblings as sibling_list

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any

def _clone_sibling(used: set):
    of = "fork" if "fork" in used else "vfork" if "vfork" in used else "clone3" if "clone3" in used else "fork"
    return Sibling("clone", of, "fork", "create a process: clone only without namespace flags (argument rule)")


def _sibling_clone(arch: str) -> tuple[list[ArgRule], list[ErrnoRule]]:
    """clone added as a sibling of fork/vfork: without any namespace flag; clone3 -> ENOSYS."""
    spec = syscalls.tracked_args(arch, "clone")
    if spec is None or not syscalls.exists(arch, "clone"):
        return [], []
    forbidden = constants.namespace_mask() & ~0xFF
    cond = [ArgRule(("clone",), (ArgCondition(spec.indexes[0], "SCMP_CMP_MASKED_EQ", forbidden, 0),),
                    "clone without namespace flags: a sibling of fork/vfork")]
    err = [ErrnoRule(("clone3",), "ENOSYS", "clone3 keeps its flags behind a pointer seccomp cannot read: ENOSYS "
                                            "makes glibc fall back to clone")] \
        if syscalls.exists(arch, "clone3") else []
    return cond, err


def derive_rules(facts: Mapping, runs: Sequence[Mapping] = (), args: str = DEFAULT.args_mode,
                 style: str = DEFAULT.style, exact: bool = DEFAULT.exact, **_: Any) -> Rules:
    """Rules from facts. ``args`` is the argument mode (strict, safe, off); ``style`` allowlist or denylist;
    ``exact``: allow only what was traced (no harmless siblings)."""
    if args not in ARGS_MODES:
        raise ValueError(f"args mode must be one of {ARGS_MODES}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    allowed: dict[str, list[str]] = {}
    conditional: dict[str, tuple[ArgRule, ...]] = {}
    errno: dict[str, tuple[ErrnoRule, ...]] = {}
    loose: list[str] = []
    added: dict[str, tuple] = {}
    for arch, table in sorted(facts.get("syscalls", {}).items()):
        names = {n for n in table if not n.startswith("#")}
        cond, err, why = argrules.argument_rules(arch, facts, args)
        sibs = [] if exact else sibling_list(arch, names)
        if any(sb.name in ("fork", "vfork") for sb in sibs) or ({"fork", "vfork"} & names and not exact):
            if "clone" not in names and not any("clone" in r.names for r in cond):
                ccond, cerr = _sibling_clone(arch)
                cond = cond + ccond
                err = err + [e for e in cerr if not any(set(e.names) & set(r.names) for r in err)]
                if ccond:
                    sibs.append(_clone_sibling(names))
        constrained = {n for r in cond for n in r.names}
        errnoed = {n for r in err for n in r.names}
        sibs = [sb for sb in sibs if sb.name not in errnoed]
        if sibs:
            added[arch] = tuple(sorted(sibs, key=lambda x: x.name))
        allowed[arch] = sorted((names | {sb.name for sb in sibs}) - constrained - errnoed)
        if cond:
            conditional[arch] = tuple(cond)
        if err:
            errno[arch] = tuple(err)
        loose += [f"{arch}: {w}" for w in why]
    caps: list[str] = []
    try:
        caps = capability_set(facts)
    except ImportError:  # pragma: no cover - during bring-up
        caps = sorted(c for c, e in facts.get("capabilities", {}).items() if e.get("granted") or e.get("inferred"))
    files, patterns, owned = file_rules(facts)
    families = set()
    for arch_args in facts.get("args", {}).values():
        for sc in ("socket", "socketpair"):
            for e in arch_args.get(sc, []):
                families.add(constants.name_of("socket_family", e["values"][0]) or str(e["values"][0]))
    ports: dict[str, set[int]] = {}
    for e in facts.get("network", []):
        if e.get("port") is not None and e.get("proto") == "tcp" and e["family"] in ("AF_INET", "AF_INET6"):
            ports.setdefault(f"tcp_{e['op']}", set()).add(e["port"])
    denylist = None
    if style == "denylist":
        denylist = {arch: denylist_rules(arch, facts) for arch in sorted(facts.get("syscalls", {}))}
    return Rules(
        style=style,
        args_mode=args,
        no_new_privileges=not any(c in caps for c in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")),
        syscalls={a: tuple(v) for a, v in allowed.items()},
        conditional=conditional,
        errno=errno,
        loose=tuple(loose),
        siblings=added,
        exact=exact,
        unknown={a: tuple(v) for a, v in facts.get("unknown_syscalls", {}).items() if v},
        capabilities=tuple(caps),
        files=files,
        patterns=patterns,
        owned=owned,
        network=NetworkRules(families=tuple(sorted(families)), ports={k: tuple(sorted(v)) for k, v in ports.items()}),
        denylist=denylist,
    )
