"""What changed between two profiles (or recordings). Pure.

``changes(old, new)`` lists every added and removed fact as a flat change
record; ``diff`` groups them with counts (``leastpriv diff``); ``check``
(learner/check.py) keeps the added ones.

Kinds: syscall, arg (a recorded argument value of a tracked syscall),
capability (the minimal set, learner/capabilities.py), file (a path with an
access kind), exec, network (bind/connect endpoint), family (socket family),
unknown_syscall. Each change says whether it is dangerous (policy/risks.py),
why, and a known CVE or exploit class.

Paths under /proc/<pid>/ are compared as /proc/PID/ so that two runs of the
same program compare equal.
"""
from __future__ import annotations

import fnmatch
import re
from typing import Iterable, Mapping

from ..tracer.recording import Recording
from ..policy import risks
from .capabilities import capability_set
from .profile import Profile
from .aggregate import learn
from .allowed import allowed_by

KINDS = ("syscall", "arg", "capability", "file", "exec", "network", "family", "unknown_syscall")
KIND_TITLES = {"syscall": "syscalls", "arg": "argument values", "capability": "capabilities", "file": "paths",
               "exec": "executables", "network": "network endpoints", "family": "socket families",
               "unknown_syscall": "unknown syscall numbers"}
KIND_NAMES = {"syscall": "syscall", "arg": "argument value", "capability": "capability", "file": "path",
              "exec": "executable", "network": "network endpoint", "family": "socket family",
              "unknown_syscall": "unknown syscall number"}   # one of each (a message about one fact)

_PROC = re.compile(r"^/proc/\d+(/task/\d+)?(?=/|$)")


def as_profile(item: Profile | Recording) -> Profile:
    if isinstance(item, Recording):
        return learn([item])
    return item


def normalize_path(path: str) -> str:
    return _PROC.sub(lambda m: "/proc/PID" + ("/task/TID" if m.group(1) else ""), path)


def _net_label(e: Mapping) -> str:
    return (f"{e['op']} {e.get('proto', 'unknown')} {e['family']} {e['address']}" +
            ("" if e.get("port") is None else f":{e['port']}"))


def _items(p: Profile, ignore_paths: Iterable[str] = ()) -> dict[tuple, dict]:
    """Every comparable fact of a profile: key -> change record (without "change")."""
    ignore = list(ignore_paths)
    out: dict[tuple, dict] = {}
    f = p.facts
    for arch, table in f.get("syscalls", {}).items():
        for name in table:
            if name.startswith("#"):
                continue
            r = risks.SYSCALLS.get(name)
            out[("syscall", arch, name)] = {"kind": "syscall", "arch": arch, "item": name, "label": name,
                                            "danger": {"why": r.why, "example": r.example} if r else None}
    for arch, table in f.get("args", {}).items():
        for sc, entries in table.items():
            for e in entries:
                vals = tuple(int(v) for v in e["values"])
                dv = risks.dangerous_values(sc, vals)
                label = f"{sc}({e.get('describe', ', '.join(map(str, vals)))})"
                out[("arg", arch, sc, vals)] = {
                    "kind": "arg", "arch": arch, "item": sc, "values": list(vals), "label": label,
                    "danger": {"why": "; ".join(d[1] for d in dv), "example": "; ".join(d[2] for d in dv),
                               "what": ", ".join(d[0] for d in dv)} if dv else None}
    for cap in capability_set(f):
        r = risks.CAPABILITIES.get(cap)
        out[("capability", cap)] = {"kind": "capability", "arch": "", "item": cap, "label": cap,
                                    "danger": {"why": r.why, "example": r.example} if r else None}
    for path, e in f.get("files", {}).items():
        if any(fnmatch.fnmatch(path, g) for g in ignore):
            continue
        npath = normalize_path(path)
        for acc in e.get("access", []):
            out[("file", npath, acc)] = {"kind": "file", "arch": "", "item": npath, "access": acc,
                                         "label": f"{npath} ({acc})", "danger": None}
    for path in f.get("execs", {}):
        if any(fnmatch.fnmatch(path, g) for g in ignore):
            continue
        out[("exec", path)] = {"kind": "exec", "arch": "", "item": path, "label": path, "danger": None}
    for e in f.get("network", []):
        lab = _net_label(e)
        out[("network", lab)] = {"kind": "network", "arch": "", "item": lab, "label": lab, "danger": None}
    for fam in p.rules.network.families:
        d = risks.FAMILIES.get(fam)
        out[("family", fam)] = {"kind": "family", "arch": "", "item": fam, "label": fam,
                                "danger": {"why": d[0], "example": d[1]} if d else None}
    for arch, nrs in f.get("unknown_syscalls", {}).items():
        for nr in nrs:
            out[("unknown_syscall", arch, nr)] = {"kind": "unknown_syscall", "arch": arch, "item": str(nr),
                                                  "label": f"#{nr}", "danger": {
                                                      "why": "a syscall number no table names: cannot be reviewed",
                                                      "example": "unknown"}}
    return out


def _sort_key(c: Mapping) -> tuple:
    return (KINDS.index(c["kind"]), c.get("arch", ""), c["label"])


def changes(old: Profile | Recording, new: Profile | Recording, ignore_paths: Iterable[str] = ()) -> list[dict]:
    """Added and removed facts, sorted by kind then label."""
    a, b = _items(as_profile(old), ignore_paths), _items(as_profile(new), ignore_paths)
    out = [{**b[k], "change": "added"} for k in b.keys() - a.keys()]
    out += [{**a[k], "change": "removed"} for k in a.keys() - b.keys()]
    return sorted(out, key=_sort_key)


def counts(p: Profile | Recording) -> dict[str, int]:
    items = _items(as_profile(p))
    c = {k: 0 for k in KINDS}
    for key in items:
        c[key[0]] += 1
    return c


def diff(old: Profile | Recording, new: Profile | Recording, ignore_paths: Iterable[str] = ()) -> dict:
    """``leastpriv diff``: changes grouped by kind, with counts."""
    ch = changes(old, new, ignore_paths)
    oldp = as_profile(old)
    if not oldp.rules.empty:   # an added fact the old profile's policy already allows (a sibling, a pattern) says so
        ch = [{**c, "allowed_by": allowed_by(oldp.rules, c)} if c["change"] == "added" else c for c in ch]
    old_c, new_c = counts(old), counts(new)
    summary = {}
    for k in KINDS:
        summary[k] = {"old": old_c[k], "new": new_c[k],
                      "added": sum(1 for c in ch if c["kind"] == k and c["change"] == "added"),
                      "removed": sum(1 for c in ch if c["kind"] == k and c["change"] == "removed")}
    return {"summary": summary,
            "added": [c for c in ch if c["change"] == "added"],
            "removed": [c for c in ch if c["change"] == "removed"],
            "dangerous_added": [c for c in ch if c["change"] == "added" and c["danger"]]}
