"""The denylist style: allow everything except the dangerous things the workload never used.

``denylist_rules(arch, facts) -> rules.Denylist`` (names, conditional rules, errno rules), pure.

Under a default-allow policy, this denies:

* by name, the dangerous syscalls of the risk catalogue (policy/risks.py)
  that exist on ``arch`` and that the workload never made;
* by argument value (one rule per alternative; a rule denies when all its
  conditions match): clone/unshare with each namespace flag never used,
  setns to namespace types never used, socket/socketpair in each dangerous
  family never used and SOCK_RAW/SOCK_PACKET on AF_INET/AF_INET6 when never
  used, personality with ADDR_NO_RANDOMIZE / READ_IMPLIES_EXEC /
  MMAP_PAGE_ZERO when never used (the 0xffffffff query stays allowed),
  ioctl TIOCSTI/TIOCLINUX when never used;
* clone3 with ENOSYS (its flags are behind a pointer, so a clone3 with
  CLONE_NEWUSER would slip past the clone rules; glibc falls back to clone).

What it leaves open (everything else, including harmless syscalls a libc
update starts using) is the point of the style and is listed by ``review``.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..kernel import constants, syscalls
from .risks import FAMILIES, IOCTLS, PERSONALITY_FLAGS, SYSCALLS, namespace_flags
from .rules import ArgCondition, ArgRule, Denylist, ErrnoRule

PERSONA_QUERY_BIT = 0x80000000   # set only in personality(0xffffffff), the read-only query


def _rule(name: str, conds: list[ArgCondition], comment: str) -> ArgRule:
    return ArgRule((name,), tuple(conds), comment)


def _masked(index: int, mask: int, value: int) -> ArgCondition:
    return ArgCondition(index, "SCMP_CMP_MASKED_EQ", mask, value)


def _eq32(index: int, value: int) -> ArgCondition:
    """Equality of an ``int`` argument: the kernel ignores the upper 32 bits of the register, so a plain
    64-bit EQ could be dodged by setting them (socket(0x100000011, ...) is AF_PACKET to the kernel)."""
    return ArgCondition(index, "SCMP_CMP_MASKED_EQ", 0xFFFFFFFF, value & 0xFFFFFFFF)


def denylist_rules(arch: str, facts: Mapping) -> Denylist:
    used = set(facts.get("syscalls", {}).get(arch, {}))
    args = facts.get("args", {}).get(arch, {})

    def values(name: str, i: int = 0) -> set[int]:
        return {int(e["values"][i]) for e in args.get(name, []) if len(e["values"]) > i}

    names = sorted(n for n, r in SYSCALLS.items() if r.deny and n not in used and syscalls.exists(arch, n))
    cond: list[ArgRule] = []
    # namespaces
    for sc in ("clone", "unshare"):
        spec = syscalls.tracked_args(arch, sc)
        if spec is None or not syscalls.exists(arch, sc) or sc in names:
            continue
        union = 0
        for v in values(sc):
            union |= v
        for flag, bit in namespace_flags():
            if sc == "clone" and bit <= 0xFF:
                continue
            if not union & bit:
                cond.append(_rule(sc, [_masked(spec.indexes[0], bit, bit)], f"deny {sc} with {flag} (never used)"))
    if "setns" not in names and syscalls.exists(arch, "setns"):
        spec = syscalls.tracked_args(arch, "setns")
        seen = values("setns")
        if 0 not in seen:
            cond.append(_rule("setns", [_eq32(spec.indexes[0], 0)], "deny setns with nstype 0 (any type; never used)"))
            for flag, bit in namespace_flags():
                if bit not in seen:
                    cond.append(_rule("setns", [_eq32(spec.indexes[0], bit)], f"deny setns into {flag} (never used)"))
    # sockets
    fam_g, type_g = constants.group("socket_family"), constants.group("socket_type")
    for sc in ("socket",):   # socketpair only works for AF_UNIX (and AF_TIPC): the family rules target socket
        spec = syscalls.tracked_args(arch, sc)
        if not syscalls.exists(arch, sc):
            continue
        i_dom, i_type = spec.indexes[0], spec.indexes[1]
        fams = values(sc, 0)
        for fam in sorted(FAMILIES):
            if fam in fam_g and fam_g[fam] not in fams:
                cond.append(_rule(sc, [_eq32(i_dom, fam_g[fam])], f"deny {sc}({fam}) (never used)"))
        for fam in ("AF_INET", "AF_INET6"):
            used_types = {int(e["values"][1]) & 0xF for e in args.get(sc, []) if int(e["values"][0]) == fam_g[fam]}
            for t in ("SOCK_RAW", "SOCK_PACKET"):
                if type_g[t] not in used_types:
                    cond.append(_rule(sc, [_eq32(i_dom, fam_g[fam]), _masked(i_type, 0xF, type_g[t])],
                                      f"deny {sc}({fam}, {t}) (never used)"))
    # personality
    if syscalls.exists(arch, "personality"):
        spec = syscalls.tracked_args(arch, "personality")
        seen = {v for v in values("personality") if v != 0xFFFFFFFF}
        for flag in PERSONALITY_FLAGS:
            bit = constants.value("personality", flag)
            if not any(v & bit for v in seen):
                cond.append(_rule("personality", [_masked(spec.indexes[0], bit | PERSONA_QUERY_BIT, bit)],
                                  f"deny personality with {flag} (never used; the 0xffffffff query stays allowed)"))
    # ioctl
    if syscalls.exists(arch, "ioctl") and not arch.startswith(("ppc", "mips")):   # other _IOC encodings there
        spec = syscalls.tracked_args(arch, "ioctl")
        seen = {v & 0xFFFFFFFF for v in values("ioctl")}
        for req in sorted(IOCTLS):
            v = constants.group("ioctl").get(req)
            if v is not None and v not in seen:
                cond.append(_rule("ioctl", [_masked(spec.indexes[0], 0xFFFFFFFF, v)], f"deny ioctl({req}) (never used)"))
    errno = []
    if syscalls.exists(arch, "clone3") and "clone3" not in names:
        errno.append(ErrnoRule(("clone3",), "ENOSYS", "clone3 hides its flags from seccomp: ENOSYS makes glibc fall "
                                                      "back to clone, whose namespace flags are checked"))
    return Denylist(tuple(names), tuple(cond), tuple(errno))
