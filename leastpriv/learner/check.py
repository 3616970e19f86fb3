"""The CI regression check: did usage grow beyond the baseline? Pure.

``check(baseline, new) -> dict`` with ``grew`` (exit 1 when true), the
growth (syscall, argument value, capability, path, executable, network
endpoint, socket family), the dangerous part of it called out with why, and
what shrank (informational: a smaller workload never fails the check).
"""
from __future__ import annotations

from typing import Iterable

from ..tracer.recording import Recording
from .diff import KINDS, as_profile, changes
from .profile import Profile


def check(baseline: Profile, new: Profile | Recording, kinds: Iterable[str] = KINDS,
          ignore_paths: Iterable[str] = ()) -> dict:
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        from ..errors import UserError
        raise UserError(f"--only: unknown kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    newp = as_profile(new)
    ch = changes(baseline, newp, ignore_paths)
    grown = [c for c in ch if c["change"] == "added" and c["kind"] in kinds]
    ignored = [c for c in ch if c["change"] == "added" and c["kind"] not in kinds]
    incomplete = [r.get("id", "") for r in newp.runs if not r.get("complete", True)]
    return {
        "grew": bool(grown),
        "kinds": list(kinds),
        "added": grown,
        "dangerous": [c for c in grown if c["danger"]],
        "removed": [c for c in ch if c["change"] == "removed"],
        "ignored": ignored,
        "baseline_runs": len(baseline.runs),
        "new_runs": len(newp.runs),
        "new_incomplete_runs": incomplete,
        "new_exit_status": [r.get("exit_status") for r in newp.runs],
    }
