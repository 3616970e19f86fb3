"""The CI regression check: did usage grow beyond the baseline? Pure.

``check(baseline, new) -> dict`` with ``grew`` (exit 1 when true), the
growth (syscall, argument value, capability, path, executable, network
endpoint, socket family), the dangerous part of it called out with why, and
what shrank (informational: a smaller workload never fails the check).

New facts come in two classes. Growth the exported policy would deny
(``added``: exit 1), and growth the policy already allows (``allowed``,
each with the rule that allows it: a harmless sibling, a name matching a
path pattern, a path beneath an owned directory, an argument value inside
an argument rule): listed, exit 0. ``strict`` puts every new fact in
``added``.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from ..tracer.base import Known
from ..tracer.recording import Recording
from .diff import KINDS, as_profile, changes
from .profile import Profile


def known_calls(baseline: Profile) -> Known:
    """The calls ``baseline`` explains (syscalls, and tracked-argument value tuples), for the fast gate."""
    f = baseline.facts
    sc = frozenset((arch, name) for arch, table in f.get("syscalls", {}).items() for name in table)
    args = frozenset((arch, name, tuple(int(v) for v in e["values"]))
                     for arch, table in f.get("args", {}).items() for name, entries in table.items()
                     for e in entries)
    return Known(sc, args)


def allowed_by(rules: Mapping, change: Mapping) -> str | None:
    """Why the policy of ``rules`` already allows a new fact (None: it would deny it)."""
    from ..kernel import syscalls
    from .patterns import covered
    kind, arch = change["kind"], change.get("arch", "")
    if kind == "syscall":
        name = change["item"]
        sib = next((s for s in rules.get("siblings", {}).get(arch, []) if s["name"] == name), None)
        if sib and name in rules.get("syscalls", {}).get(arch, []):
            return f"a harmless sibling of {sib['sibling_of']} ({sib['family']})"
        if name in rules.get("syscalls", {}).get(arch, []):
            return "allowed by the rules"
        return None
    if kind == "arg":
        sc, values = change["item"], change.get("values", [])
        if sc in rules.get("syscalls", {}).get(arch, []):
            return f"{sc} is allowed with any argument"
        spec = syscalls.tracked_args(arch, sc)
        if spec is None or len(spec.indexes) != len(values):
            return None
        by_index = dict(zip(spec.indexes, values))
        for r in rules.get("conditional", {}).get(arch, []):
            if sc in r["names"] and all(_holds(c, by_index) for c in r["args"]):
                return f"inside the argument rule: {r.get('comment', '')}".rstrip(": ")
        return None
    if kind in ("file", "exec"):
        return covered(rules, change["item"], change.get("access", "exec"))
    return None


def _holds(cond: Mapping, by_index: Mapping[int, int]) -> bool:
    v = by_index.get(cond["index"])
    if v is None:
        return False
    a, b, op = cond["value"], cond.get("valueTwo", 0), cond["op"]
    return {"SCMP_CMP_EQ": v == a, "SCMP_CMP_NE": v != a, "SCMP_CMP_LT": v < a, "SCMP_CMP_LE": v <= a,
            "SCMP_CMP_GT": v > a, "SCMP_CMP_GE": v >= a, "SCMP_CMP_MASKED_EQ": (v & a) == b}.get(op, False)


def check(baseline: Profile, new: Profile | Recording, kinds: Iterable[str] = KINDS,
          ignore_paths: Iterable[str] = (), unobserved: Known | None = None,
          strict: bool = False) -> dict:
    """Growth of ``new`` over ``baseline``. ``unobserved``: calls the trace let the kernel allow without
    looking (the fast gate): that the new run no longer used them cannot be told, so their removals
    are left out of ``removed`` (and counted in ``unobserved_removals``). ``strict``: every new fact
    fails, also one the baseline's policy already allows."""
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        from ..errors import UserError
        raise UserError(f"--only: unknown kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    newp = as_profile(new)
    ch = changes(baseline, newp, ignore_paths)
    grown = [c for c in ch if c["change"] == "added" and c["kind"] in kinds]
    allowed: list[dict] = []
    if not strict:
        from .aggregate import relearn, rules_options_of
        rules = relearn(baseline, rules_options_of(baseline)).rules   # the policy as this version derives it
        keep = []
        for c in grown:
            why = allowed_by(rules, c)
            (allowed if why else keep).append({**c, "allowed_by": why} if why else c)
        grown = keep
    ignored = [c for c in ch if c["change"] == "added" and c["kind"] not in kinds]
    removed = [c for c in ch if c["change"] == "removed"]
    hidden = 0
    if unobserved is not None:
        keep = []
        for c in removed:
            if (c["kind"] == "syscall" and (c["arch"], c["item"]) in unobserved.syscalls) or \
                    (c["kind"] == "arg" and (c["arch"], c["item"], tuple(c["values"])) in unobserved.args):
                hidden += 1
            else:
                keep.append(c)
        removed = keep
    incomplete = [r.get("id", "") for r in newp.runs if not r.get("complete", True)]
    return {
        "grew": bool(grown),
        "kinds": list(kinds),
        "added": grown,
        "allowed": allowed,
        "strict": strict,
        "dangerous": [c for c in grown if c["danger"]],
        "removed": removed,
        "unobserved_removals": hidden,
        "ignored": ignored,
        "baseline_runs": len(baseline.runs),
        "new_runs": len(newp.runs),
        "new_incomplete_runs": incomplete,
        "new_exit_status": [r.get("exit_status") for r in newp.runs],
    }
