"""What a profile's rules allow beyond the literal facts, and why, in words (show, review).

Two kinds of generalization, each with its reason: harmless syscall siblings
(learner/siblings.py) and path patterns (learner/patterns.py).
"""
from __future__ import annotations

from .profile import Profile


def lines(profile: Profile) -> list[str]:
    rules = profile.rules
    out: list[str] = []
    if rules.get("exact"):
        out.append("syscalls: none added (--exact: only the syscalls traced)")
    for arch, rows in sorted(rules.get("siblings", {}).items()):
        if rows:
            out.append(f"syscalls ({arch}): {len(rows)} harmless siblings added: " + ", ".join(
                f"{r['name']} (sibling of {r['sibling_of']}: {r['family']})" for r in rows))
    for p in rules.get("patterns", []):
        out.append(f"path pattern {p['pattern']} ({', '.join(p['access'])}): {p['why']}; from "
                   f"{len(p['paths'])} path(s) in {p['runs']} run(s), e.g. {p['paths'][0]}")
    for o in rules.get("owned", []):
        out.append(f"owned directory {o['pattern']}: created by the workload, so it may create, write and remove "
                   f"beneath it ({o['why']})")
    return out
