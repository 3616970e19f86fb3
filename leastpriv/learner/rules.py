"""Facts -> rules: what the profile allows. A pure function of the facts.

The rules are the one model every exporter and the local enforcer read:

    syscalls     {arch: [name]}            allowed whatever the arguments
    conditional  {arch: [rule]}            allowed only when the arguments match;
                                           rule = {"names": [..], "args": [{"index", "value",
                                           "valueTwo", "op"}], "comment"}; conditions inside one
                                           rule are ANDed, separate rules are alternatives
    errno        {arch: [{"names", "errno", "comment"}]}   answered with an errno (clone3 -> ENOSYS)
    siblings     {arch: [{"name", "sibling_of", "family", "why"}]}   harmless siblings of what was used,
                                           included in ``syscalls`` (learner/siblings.py; none with exact)
    exact        bool                      only what was traced (no siblings)
    loose        [str]                      argument rules left out, and why
    unknown      {arch: [nr]}               numbers no table names (reported, not allowed by name)
    capabilities [CAP_*]                    the capability set
    no_new_privileges bool
    files        {read|write|exec|create: [path]}   literal paths no pattern covers
    patterns     [{"pattern", "base", "access", "paths", "count", "runs", "why"}]   path globs (learner/patterns.py)
    owned        [{"pattern", "base", "access", "paths", "count", "runs", "why"}]   directories the workload created:
                                           it may create, write and remove beneath them
    network      {families: [AF_*], tcp_bind: [port], tcp_connect: [port], ...}
    style        "allowlist" | "denylist"      which policy the exporters should write
    denylist     {arch: {"names": [..], "conditional": [rule], "errno": [{"names", "errno", "comment"}]}}
                 only with style "denylist": under default ALLOW, deny these names; deny a call
                 when ALL conditions of one conditional rule match (each rule is one alternative);
                 answer "errno" rules with that errno (clone3 -> ENOSYS). The allowlist keys above
                 are still filled, so an exporter can show both.

Argument-level minimisation (args modes strict/safe/off) lives in
learner/args.py, the denylist in policy/denylist.py, capabilities in
learner/capabilities.py; this module assembles the pieces.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..kernel import constants, syscalls
from ..policy.denylist import denylist_rules
from ..policy.rules import ARGS_MODES, STYLES
from . import args as argrules
from .capabilities import capability_set
from .patterns import file_rules
from .siblings import Sibling, siblings as sibling_list

def _clone_sibling(used: set):
    of = "fork" if "fork" in used else "vfork" if "vfork" in used else "clone3" if "clone3" in used else "fork"
    return Sibling("clone", of, "fork", "create a process: clone only without namespace flags (argument rule)")


def _sibling_clone(arch: str) -> tuple[list, list]:
    """clone added as a sibling of fork/vfork: without any namespace flag; clone3 -> ENOSYS."""
    spec = syscalls.tracked_args(arch, "clone")
    if spec is None or not syscalls.exists(arch, "clone"):
        return [], []
    forbidden = constants.namespace_mask() & ~0xFF
    cond = [{"names": ["clone"], "args": [{"index": spec.indexes[0], "value": forbidden, "valueTwo": 0,
                                           "op": "SCMP_CMP_MASKED_EQ"}],
             "comment": "clone without namespace flags: a sibling of fork/vfork"}]
    err = [{"names": ["clone3"], "errno": "ENOSYS",
            "comment": "clone3 keeps its flags behind a pointer seccomp cannot read: ENOSYS makes glibc fall back to clone"}] \
        if syscalls.exists(arch, "clone3") else []
    return cond, err


def derive_rules(facts: Mapping, runs: Sequence[Mapping] = (), args: str = "safe", style: str = "allowlist",
                 exact: bool = False, **_: Any) -> dict:
    """Rules from facts. ``args`` is the argument mode (strict, safe, off); ``style`` allowlist or denylist;
    ``exact``: allow only what was traced (no harmless siblings)."""
    if args not in ARGS_MODES:
        raise ValueError(f"args mode must be one of {ARGS_MODES}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    allowed: dict[str, list[str]] = {}
    conditional: dict[str, list] = {}
    errno: dict[str, list] = {}
    loose: list[str] = []
    added: dict[str, list] = {}
    for arch, table in sorted(facts.get("syscalls", {}).items()):
        names = {n for n in table if not n.startswith("#")}
        cond, err, why = argrules.argument_rules(arch, facts, args)
        sibs = [] if exact else sibling_list(arch, names)
        if any(sb.name in ("fork", "vfork") for sb in sibs) or ({"fork", "vfork"} & names and not exact):
            if "clone" not in names and not any("clone" in r["names"] for r in cond):
                ccond, cerr = _sibling_clone(arch)
                cond = cond + ccond
                err = err + [e for e in cerr if not any(set(e["names"]) & set(r["names"]) for r in err)]
                if ccond:
                    sibs.append(_clone_sibling(names))
        constrained = {n for r in cond for n in r["names"]}
        errnoed = {n for r in err for n in r["names"]}
        sibs = [sb for sb in sibs if sb.name not in errnoed]
        if sibs:
            added[arch] = [sb.to_json() for sb in sorted(sibs, key=lambda x: x.name)]
        allowed[arch] = sorted((names | {sb.name for sb in sibs}) - constrained - errnoed)
        if cond:
            conditional[arch] = cond
        if err:
            errno[arch] = err
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
    net: dict[str, list] = {"families": sorted(families)}
    for e in facts.get("network", []):
        if e.get("port") is not None and e.get("proto") == "tcp" and e["family"] in ("AF_INET", "AF_INET6"):
            net.setdefault(f"tcp_{e['op']}", []).append(e["port"])
    for k in list(net):
        net[k] = sorted(set(net[k]))
    out_style: dict[str, Any] = {"style": style}
    if style == "denylist":
        out_style["denylist"] = {arch: denylist_rules(arch, facts) for arch in sorted(facts.get("syscalls", {}))}
    return {
        **out_style,
        "args_mode": args,
        "syscalls": allowed,
        "conditional": conditional,
        "errno": errno,
        "loose": loose,
        "siblings": added,
        "exact": exact,
        "unknown": {a: v for a, v in facts.get("unknown_syscalls", {}).items() if v},
        "capabilities": caps,
        "no_new_privileges": not any(c in caps for c in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")),
        "files": files,
        "patterns": patterns,
        "owned": owned,
        "network": net,
    }
