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

from typing import Iterable

from ..tracer.base import Known
from ..tracer.recording import Recording
from .diff import KINDS, as_profile, changes
from .profile import Profile
from ..errors import UserError
from .aggregate import relearn, rules_options_of
from .allowed import allowed_by


def known_calls(baseline: Profile) -> Known:
    """The calls ``baseline`` explains (syscalls, and tracked-argument value tuples), for the fast gate."""
    f = baseline.facts
    sc = frozenset((arch, name) for arch, table in f.get("syscalls", {}).items() for name in table)
    args = frozenset((arch, name, tuple(int(v) for v in e["values"]))
                     for arch, table in f.get("args", {}).items() for name, entries in table.items()
                     for e in entries)
    return Known(sc, args)


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
        raise UserError(f"--only: unknown kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    newp = as_profile(new)
    ch = changes(baseline, newp, ignore_paths)
    grown = [c for c in ch if c["change"] == "added" and c["kind"] in kinds]
    allowed: list[dict] = []
    if not strict:
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
