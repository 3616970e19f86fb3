"""Facts -> rules: what the profile allows. A pure function of the facts.

The rules are the one model every exporter and the local enforcer read:

    syscalls     {arch: [name]}            allowed whatever the arguments
    conditional  {arch: [rule]}            allowed only when the arguments match;
                                           rule = {"names": [..], "args": [{"index", "value",
                                           "valueTwo", "op"}], "comment"}; conditions inside one
                                           rule are ANDed, separate rules are alternatives
    errno        {arch: [{"names", "errno", "comment"}]}   answered with an errno (clone3 -> ENOSYS)
    loose        [str]                      argument rules left out, and why
    unknown      {arch: [nr]}               numbers no table names (reported, not allowed by name)
    capabilities [CAP_*]                    the capability set
    no_new_privileges bool
    files        {read|write|exec|create: [path]}
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

from ..kernel import constants
from ..policy.denylist import denylist_rules
from ..policy.rules import ARGS_MODES, STYLES
from . import args as argrules
from .capabilities import capability_set



def derive_rules(facts: Mapping, runs: Sequence[Mapping] = (), args: str = "safe", style: str = "allowlist",
                 **_: Any) -> dict:
    """Rules from facts. ``args`` is the argument mode (strict, safe, off); ``style`` allowlist or denylist."""
    if args not in ARGS_MODES:
        raise ValueError(f"args mode must be one of {ARGS_MODES}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    allowed: dict[str, list[str]] = {}
    conditional: dict[str, list] = {}
    errno: dict[str, list] = {}
    loose: list[str] = []
    for arch, table in sorted(facts.get("syscalls", {}).items()):
        names = {n for n in table if not n.startswith("#")}
        cond, err, why = argrules.argument_rules(arch, facts, args)
        constrained = {n for r in cond for n in r["names"]}
        allowed[arch] = sorted(names - constrained - {n for r in err for n in r["names"]})
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
    files: dict[str, list[str]] = {"read": [], "write": [], "exec": [], "create": []}
    for path, e in sorted(facts.get("files", {}).items()):
        for a in e["access"]:
            files.setdefault(a, []).append(path)
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
        "unknown": {a: v for a, v in facts.get("unknown_syscalls", {}).items() if v},
        "capabilities": caps,
        "no_new_privileges": not any(c in caps for c in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")),
        "files": files,
        "network": net,
    }
