"""Argument-level minimisation: seccomp argument rules from the values the runs used.

``argument_rules(arch, facts, mode) -> (conditional, errno, loose)``, pure: policy.rules.ArgRule and ErrnoRule
values, and the reasons for what was left loose.

Only register arguments with security meaning are constrained (design.md):
clone/unshare/setns namespace flags, socket family and raw/packet types,
personality, prctl option, ioctl request, PROT_EXEC on mmap/mprotect,
setsockopt level/optname, kill signals. Conditions inside one seccomp rule
are ANDed, so every alternative is its own rule.

Modes:

``safe`` (default) emits a rule only when the runs covered its value space
with confidence:

* *deny-what-was-never-used* rules, whose allowed side is everything the
  workload could plausibly do with the call: clone/unshare without namespace
  flags never used, setns to namespace types used, socket limited to the
  families used (and, for AF_INET/AF_INET6, no SOCK_RAW/SOCK_PACKET unless
  used; stream and datagram are always kept), personality to the values
  used, mprotect without PROT_EXEC when never used;
* *value-set* rules (prctl, ioctl, setsockopt, kill signals), whose values
  can depend on input or environment (a tty or a pipe changes ioctl
  requests), only when the call appeared in at least two runs, every value
  appeared in every one of those runs (the set did not vary), and the set is
  small.

Everything left out is listed, with the reason, in ``loose``.

``strict`` emits every rule the recorded values allow (value sets up to a
larger size, exact socket (family, type, protocol) triples, mmap without
PROT_EXEC). ``off`` emits none.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..kernel import constants, syscalls
from ..policy.rules import ArgCondition, ArgRule, ErrnoRule

SAFE_MAX = {"ioctl": 8, "prctl": 16, "setsockopt": 16, "kill": 8, "tkill": 8, "tgkill": 8}
STRICT_MAX = {"ioctl": 32, "prctl": 32, "setsockopt": 32, "kill": 16, "tkill": 16, "tgkill": 16}
SOCKET_TYPE_MASK = 0xF          # the low bits of socket's type; SOCK_NONBLOCK/SOCK_CLOEXEC above
UINT_MASK = 0xFFFFFFFF          # ioctl's request is an unsigned int: compare the low 32 bits only


def _cond(index: int, value: int, op: str = "SCMP_CMP_EQ", value_two: int = 0) -> ArgCondition:
    return ArgCondition(index, op, value, value_two)


def _rule(name: str, conds: list[ArgCondition], comment: str) -> ArgRule:
    return ArgRule((name,), tuple(conds), comment)


def _entries(facts: Mapping, arch: str, name: str) -> list[dict]:
    return list(facts.get("args", {}).get(arch, {}).get(name, []))


def _flags(names_bits: list[tuple[str, int]], mask: int) -> str:
    return "|".join(n for n, b in names_bits if b & mask)


def _ns_rule(arch: str, name: str, entries: list[dict]) -> tuple[list, list, list]:
    spec = syscalls.tracked_args(arch, name)
    used = 0
    for e in entries:
        used |= int(e["values"][0])
    ns = [(n, constants.group("clone")[n]) for n in constants.CLONE_NAMESPACES if n in constants.group("clone")]
    mask = 0
    for _n, bit in ns:
        mask |= bit
    if name == "clone":
        mask &= ~0xFF    # clone's low byte is the exit signal (CLONE_NEWTIME is unshare/clone3 only)
    forbidden = mask & ~used
    if not forbidden:
        return [], [], [f"{name}: the workload used every namespace flag; left unconstrained"]
    cond = [_rule(name, [_cond(spec.indexes[0], forbidden, "SCMP_CMP_MASKED_EQ", 0)],
                  f"{name} without namespace flags the workload never used ({_flags(ns, forbidden)})")]
    errno = []
    if name == "clone":
        errno = [ErrnoRule(("clone3",), "ENOSYS", "clone3 keeps its flags behind a pointer seccomp cannot read: "
                                                  "ENOSYS makes glibc fall back to clone, whose flags are checked")]
    return cond, errno, []


def _setns_rules(arch: str, entries: list[dict]) -> tuple[list, list]:
    spec = syscalls.tracked_args(arch, "setns")
    vals = sorted({int(e["values"][0]) for e in entries})
    if 0 in vals:
        return [], ["setns: called with nstype 0 (any namespace type); left unconstrained"]
    return [_rule("setns", [_cond(spec.indexes[0], v)], f"setns to {constants.describe('clone', v)} only")
            for v in vals], []


def _socket_rules(arch: str, name: str, entries: list[dict], mode: str) -> list[ArgRule]:
    spec = syscalls.tracked_args(arch, name)
    i_dom, i_type, i_proto = spec.indexes
    fam = lambda v: constants.name_of("socket_family", v) or str(v)  # noqa: E731
    typ = lambda v: constants.name_of("socket_type", v) or str(v)  # noqa: E731
    rules = []
    if mode == "strict":
        seen = sorted({(int(e["values"][0]), int(e["values"][1]) & SOCKET_TYPE_MASK, int(e["values"][2]))
                       for e in entries})
        for d, t, p in seen:
            rules.append(_rule(name, [_cond(i_dom, d), _cond(i_type, SOCKET_TYPE_MASK, "SCMP_CMP_MASKED_EQ", t),
                                      _cond(i_proto, p)],
                               f"{name}({fam(d)}, {typ(t)}, {p}) as seen"))
        return rules
    by_family: dict[int, set[int]] = {}
    for e in entries:
        by_family.setdefault(int(e["values"][0]), set()).add(int(e["values"][1]) & SOCKET_TYPE_MASK)
    inet = {constants.value("socket_family", "AF_INET"), constants.value("socket_family", "AF_INET6")}
    raw = {constants.value("socket_type", "SOCK_RAW"), constants.value("socket_type", "SOCK_PACKET")}
    for d, types in sorted(by_family.items()):
        if d in inet and not types & raw:
            allowed = sorted(types | {constants.value("socket_type", "SOCK_STREAM"),
                                      constants.value("socket_type", "SOCK_DGRAM")})
            for t in allowed:
                rules.append(_rule(name, [_cond(i_dom, d), _cond(i_type, SOCKET_TYPE_MASK, "SCMP_CMP_MASKED_EQ", t)],
                                   f"{name}({fam(d)}, {typ(t)}): family used, no raw/packet sockets"))
        else:
            rules.append(_rule(name, [_cond(i_dom, d)], f"{name}({fam(d)}, any type): family used"))
    return rules


def _value_set_rules(arch: str, name: str, entries: list[dict], sc_runs: int, mode: str) -> tuple[list, list]:
    spec = syscalls.tracked_args(arch, name)
    tuples = sorted({tuple(int(x) for x in e["values"]) for e in entries})
    limit = (STRICT_MAX if mode == "strict" else SAFE_MAX)[name]
    if len(tuples) > limit:
        return [], [f"{name}: {len(tuples)} distinct values, more than {limit}: left unconstrained"]
    if mode == "safe":
        if sc_runs < 2:
            return [], [f"{name}: {len(tuples)} value(s) seen in one run; the set may depend on input or on "
                        "the terminal: left unconstrained (learn more runs, or --args strict)"]
        varying = [e for e in entries if e.get("runs", 0) < sc_runs]
        if varying:
            return [], [f"{name}: values differ between runs ({len(varying)} not seen in every run): "
                        "left unconstrained (--args strict constrains it)"]
    rules = []
    for t in tuples:
        conds = []
        for idx, grp, v in zip(spec.indexes, spec.groups, t):
            if name == "ioctl":
                conds.append(_cond(idx, UINT_MASK, "SCMP_CMP_MASKED_EQ", v & UINT_MASK))
            else:
                conds.append(_cond(idx, v))
        desc = constants.describe_args(spec.groups, t)
        rules.append(_rule(name, conds, f"{name}({desc}) as seen"))
    return rules, []


def _prot_exec_rule(arch: str, name: str, entries: list[dict]) -> list[ArgRule]:
    exec_bit = constants.value("mmap_prot", "PROT_EXEC")
    if any(int(e["values"][0]) & exec_bit for e in entries):
        return []
    spec = syscalls.tracked_args(arch, name)
    return [_rule(name, [_cond(spec.indexes[0], exec_bit, "SCMP_CMP_MASKED_EQ", 0)],
                  f"{name} without PROT_EXEC: the workload never made memory executable with it")]


def argument_rules(arch: str, facts: Mapping, mode: str = "safe") -> tuple[list, list, list]:
    """(conditional rules, errno rules, loose reasons) for ``arch``."""
    if mode == "off":
        return [], [], []
    table = facts.get("syscalls", {}).get(arch, {})
    used = {n for n in table if not n.startswith("#")}
    if not used:
        return [], [], []
    cond: list[ArgRule] = []
    errno: list[ErrnoRule] = []
    loose: list[str] = []
    if not facts.get("args", {}).get(arch):
        tracked = sorted(used & syscalls.tracked_syscalls())
        if tracked:
            loose.append("no argument values were recorded for this architecture: "
                         f"{', '.join(tracked)} left unconstrained")
        return [], [], loose

    def runs_of(name: str) -> int:
        return int(table.get(name, {}).get("runs", 1))

    # namespaces
    if (used & {"clone", "clone3"}) and syscalls.exists(arch, "clone") and syscalls.tracked_args(arch, "clone"):
        # clone3's flags (read from its struct by the ptrace tracer) count too: a clone3 answered with
        # ENOSYS comes back as a clone with the same flags
        c, e, why = _ns_rule(arch, "clone", _entries(facts, arch, "clone") + _entries(facts, arch, "clone3"))
        cond += c
        errno += [r for r in e if syscalls.exists(arch, "clone3")]
        loose += why
    if "unshare" in used:
        c, _e, why = _ns_rule(arch, "unshare", _entries(facts, arch, "unshare"))
        cond += c
        loose += why
    if "setns" in used:
        entries = _entries(facts, arch, "setns")
        if entries:
            c, why = _setns_rules(arch, entries)
            cond += c
            loose += why
        else:
            loose.append("setns: no argument values recorded; left unconstrained")
    # sockets
    for name in ("socket", "socketpair"):
        if name in used:
            entries = _entries(facts, arch, name)
            if entries:
                cond += _socket_rules(arch, name, entries, mode)
            else:
                loose.append(f"{name}: no argument values recorded; left unconstrained")
    if "socketcall" in used:
        loose.append("socketcall: its arguments are behind a pointer; socket families cannot be checked")
    # personality: the values are constants in the program's code
    if "personality" in used:
        entries = _entries(facts, arch, "personality")
        if entries:
            spec = syscalls.tracked_args(arch, "personality")
            for v in sorted({int(e["values"][0]) for e in entries}):
                cond.append(_rule("personality", [_cond(spec.indexes[0], v)],
                                  f"personality({'0xffffffff: query' if v == 0xFFFFFFFF else constants.describe('personality', v)}) as seen"))
        else:
            loose.append("personality: no argument values recorded; left unconstrained")
    # value sets
    for name in ("prctl", "ioctl", "setsockopt", "kill", "tkill", "tgkill"):
        if name in used:
            entries = _entries(facts, arch, name)
            if not entries:
                loose.append(f"{name}: no argument values recorded; left unconstrained")
                continue
            c, why = _value_set_rules(arch, name, entries, runs_of(name), mode)
            cond += c
            loose += why
    # PROT_EXEC
    for name in ("mprotect", "pkey_mprotect", "mmap", "mmap2"):
        if name not in used:
            continue
        entries = _entries(facts, arch, name)
        if not entries:
            loose.append(f"{name}: no argument values recorded; left unconstrained")
            continue
        if name.startswith("mmap") and mode != "strict":
            if _prot_exec_rule(arch, name, entries):
                loose.append(f"{name}: PROT_EXEC never used, but a later dlopen (NSS modules, plugins) maps "
                             "code with it: left unconstrained (--args strict forbids it)")
            continue
        cond += _prot_exec_rule(arch, name, entries)
    return cond, errno, loose
