"""Does a profile's policy already allow a new fact? (a harmless sibling, a name matching a path pattern, a
path beneath an owned directory, an argument value inside an argument rule). Pure; used by check and diff."""
from __future__ import annotations

from collections.abc import Mapping

from ..kernel import syscalls
from ..policy.rules import ArgCondition, Rules
from .patterns import covered


def allowed_by(rules: Rules, change: Mapping) -> str | None:
    """Why the policy of ``rules`` already allows a new fact (None: it would deny it)."""
    kind, arch = change["kind"], change.get("arch", "")
    if kind == "syscall":
        name = change["item"]
        sib = next((s for s in rules.siblings_of(arch) if s.name == name), None)
        if sib and name in rules.allowed(arch):
            return f"a harmless sibling of {sib.sibling_of} ({sib.family})"
        if name in rules.allowed(arch):
            return "allowed by the rules"
        return None
    if kind == "arg":
        sc, values = change["item"], change.get("values", [])
        if sc in rules.allowed(arch):
            return f"{sc} is allowed with any argument"
        spec = syscalls.tracked_args(arch, sc)
        if spec is None or len(spec.indexes) != len(values):
            return None
        by_index = dict(zip(spec.indexes, values))
        for r in rules.conditional_of(arch):
            if sc in r.names and all(_holds(c, by_index) for c in r.args):
                return f"inside the argument rule: {r.comment}".rstrip(": ")
        return None
    if kind in ("file", "exec"):
        return covered(rules, change["item"], change.get("access", "exec"))
    return None


def _holds(cond: ArgCondition, by_index: Mapping[int, int]) -> bool:
    v = by_index.get(cond.index)
    if v is None:
        return False
    a, b, op = cond.value, cond.value_two, cond.op
    return {"SCMP_CMP_EQ": v == a, "SCMP_CMP_NE": v != a, "SCMP_CMP_LT": v < a, "SCMP_CMP_LE": v <= a,
            "SCMP_CMP_GT": v > a, "SCMP_CMP_GE": v >= a, "SCMP_CMP_MASKED_EQ": (v & a) == b}.get(op, False)
