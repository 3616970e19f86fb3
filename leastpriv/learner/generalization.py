"""What a profile's rules allow beyond the literal facts, and why, in words (show, review).

Two kinds of generalization, each with its reason: harmless syscall siblings
(learner/siblings.py) and path patterns (learner/patterns.py).
"""
from __future__ import annotations

from .profile import Profile


def lines(profile: Profile) -> list[str]:
    rules = profile.rules
    out: list[str] = []
    if rules.exact:
        out.append("syscalls: none added (--exact: only the syscalls traced)")
    for arch, rows in sorted(rules.siblings.items()):
        if rows:
            out.append(f"syscalls ({arch}): {len(rows)} harmless siblings added: " + ", ".join(
                f"{r.name} (sibling of {r.sibling_of}: {r.family})" for r in rows))
    return out + path_lines(profile)


def path_lines(profile: Profile) -> list[str]:
    """The path patterns and owned directories, each with its support and what Landlock can make of it."""
    rules = profile.rules
    out = []
    for o in rules.owned:
        out.append(f"owned {o.pattern}/** (create, write, remove beneath): {o.why}; {o.count} path(s), "
                   f"{o.runs} run(s); Landlock: on {o.base}" +
                   ("; leastpriv run makes it a private tmpfs (PrivateTmp=)" if o.base in ("/tmp", "/var/tmp") else ""))
    for p in rules.patterns:
        out.append(f"pattern {p.pattern} ({', '.join(p.access)}): {p.why}; {p.count} path(s), "
                   f"{p.runs} run(s), e.g. {p.paths[0]}; Landlock: on {p.base}")
    return out
