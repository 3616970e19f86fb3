"""A profile's coverage: per executable, what its code could reach against what the runs saw.

Pure function of (profile facts, analyses): ``coverage(facts)`` analyses every executable the runs
attributed syscalls to, with the shared objects the runs opened as dlopen'ed objects, and returns
``Coverage`` rows for ``reach``, ``show`` and ``review``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from ..policy import risks
from ..kernel.groups import group_of
from . import ExeReach, NotAnalysable, analyse_executable, elf, libs

# made by the kernel or by the image before this one, never by this image's code
NOT_FROM_CODE = {
    "execve": "the exec that started this image is made by the image before it",
    "execveat": "the exec that started this image is made by the image before it",
    "restart_syscall": "issued by the kernel to restart an interrupted call",
}

LIMITS = ("x86-64 code only; function pointers are modelled (every address stored in data or taken in code "
          "is callable once an indirect call is reachable), so the set is an upper bound; a syscall number "
          "the analysis could not resolve is counted as an unknown site, not a name")


@dataclass(frozen=True)
class ExeCoverage:
    path: str
    reach: ExeReach | None
    error: str                              # why it was not analysed ("" when it was)
    seen: Mapping[str, frozenset]           # abi -> names the runs saw from this executable
    missed: tuple = ()                      # ({"abi", "syscall", "why", "kind"}) seen but not reachable
    started_by_exec: tuple = ()             # seen, not reachable, explained by NOT_FROM_CODE

    @property
    def reachable(self) -> frozenset:
        return self.reach.reachable.get("x86_64", frozenset()) if self.reach else frozenset()

    @property
    def dangerous_reachable(self) -> list[str]:
        if not self.reach:
            return []
        return sorted({n for names in self.reach.reachable.values() for n in names if n in risks.SYSCALLS})

    @property
    def dangerous_unseen(self) -> list[str]:
        seen = {n for names in self.seen.values() for n in names}
        return [n for n in self.dangerous_reachable if n not in seen]

    def candidates(self) -> list[tuple[str, str]]:
        """Reachable but never seen (x86-64), ranked: siblings of a seen syscall, then its group, then the rest.
        (name, why) pairs; candidates to look at, never rules."""
        if not self.reach:
            return []
        seen = set(self.seen.get("x86_64", ()))
        unseen = sorted(self.reachable - seen)
        seen_groups = {group_of(s) for s in seen}
        out = []
        for n in unseen:
            sib = next((s for s in sorted(seen) if _siblings(n, s)), None)
            if sib:
                out.append((0, n, f"sibling of {sib}"))
            elif group_of(n) in seen_groups:
                out.append((1, n, f"same group as seen calls ({group_of(n)})"))
            else:
                out.append((2, n, f"reachable ({group_of(n)})"))
        out.sort()
        return [(n, why) for _, n, why in out]


def _stem(n: str) -> str:
    for suf in ("64", "32", "at2", "at", "4", "3", "2", "x", "v"):
        if n.endswith(suf) and len(n) - len(suf) >= 3:
            n = n[: -len(suf)]
            break
    for pre in ("new", "p", "f", "l"):
        if n.startswith(pre) and len(n) - len(pre) >= 4:
            n = n[len(pre):]
            break
    return n


def _siblings(a: str, b: str) -> bool:
    return a != b and group_of(a) == group_of(b) and _stem(a) == _stem(b)


@dataclass(frozen=True)
class Coverage:
    executables: tuple[ExeCoverage, ...]
    dlopened: tuple[str, ...] = ()
    limits: str = LIMITS
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def missed(self) -> list[dict]:
        return [dict(m, path=e.path) for e in self.executables for m in e.missed]


def _opened_shared_objects(files: Mapping, execs: set[str]) -> list[str]:
    out = []
    for p in sorted(files):
        if p in execs or not p.startswith("/") or "/proc/" in p:
            continue
        if ".so" not in os.path.basename(p):
            continue
        if elf.is_elf_shared_object(p) and elf.load_header_is_x86_64(p):
            out.append(p)
    return out


def _needed_closure(path: str) -> set[str]:
    out: set[str] = set()
    todo = [path]
    while todo:
        p = todo.pop()
        interp, needed, runpath = elf.dynamic_info(p)
        deps = ([interp] if interp else [])
        for name in needed:
            q = libs.find_needed(name, p, runpath)
            if q:
                deps.append(q)
        for q in deps:
            r = os.path.realpath(q)
            if r not in out:
                out.add(r)
                todo.append(q)
    return out


def script_interpreter(path: str) -> str | None:
    """The interpreter a ``#!`` script runs under (``/usr/bin/env NAME`` looked up in PATH), else None."""
    import shutil
    fh = elf.open_regular(path)
    if fh is None:
        return None
    with fh:
        try:
            head = fh.read(256)
        except OSError:
            return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0] if os.path.isabs(words[0]) else None


def exe_coverage(path: str, seen: Mapping[str, frozenset], extra_libs: tuple[str, ...] = ()) -> ExeCoverage:
    target, note = path, ""
    interp = script_interpreter(path)
    if interp:
        target, note = interp, f"a script: its interpreter {interp} was analysed"
    try:
        r = analyse_executable(target, extra_libs)
    except NotAnalysable as exc:
        return ExeCoverage(path, None, str(exc) + (f" ({note})" if note else ""), seen)
    if note:
        import dataclasses
        r = dataclasses.replace(r, notes=(note,) + tuple(r.notes))
    missed, by_exec = [], []
    unanalysed = [f"{p} ({why})" for p, why in r.unanalysed]
    for abi, names in sorted(seen.items()):
        reach = r.reachable.get(abi, frozenset())
        for n in sorted(names):
            if n in reach:
                continue
            if n in NOT_FROM_CODE:
                by_exec.append(n)
                continue
            if abi not in ("x86_64", "x86"):
                kind, why = "unanalysed", f"ABI {abi} is not analysed"
            elif unanalysed:
                kind, why = "unanalysed", "objects not analysed: " + "; ".join(unanalysed[:4])
            elif r.unknown_sites:
                kind, why = "soundness", (f"not reachable in the analysis; one of its {r.unknown_sites} unknown "
                                          f"sites may be it, else the analysis missed a path")
            else:
                kind, why = "soundness", "the analysis missed a path (a soundness bug)"
            missed.append({"abi": abi, "syscall": n, "kind": kind, "why": why})
    return ExeCoverage(path, r, "", seen, tuple(missed), tuple(by_exec))


CONTAINER_TARGETS = ("image:", "bundle:")


def coverage(facts: Mapping, runs=()) -> Coverage:
    """Coverage of every executable in a profile's (or recording's) facts. ``runs``: the profile's runs; the
    executables of a container run live in its root filesystem, not on this host, and are not analysed."""
    exes = facts.get("executables", {}) or {}
    if any(str(r.get("target", "")).startswith(CONTAINER_TARGETS) for r in runs):
        why = ("a path inside the container's root filesystem, not this host's (analyse the image's files with "
               "reach --exe on the unpacked rootfs)")
        return Coverage(tuple(ExeCoverage(e, None, why, {a: frozenset(v) for a, v in exes[e].items()})
                              for e in sorted(exes)))
    files = facts.get("files", {}) or {}
    exe_set = set(exes) | set(facts.get("execs", {}) or {})
    opened = _opened_shared_objects(files, exe_set)
    closures: set[str] = set()
    for e in exes:
        if os.path.isabs(e):
            closures |= _needed_closure(e)
    dl = tuple(p for p in opened if os.path.realpath(p) not in closures)
    rows = []
    for exe in sorted(exes):
        seen = {abi: frozenset(v) for abi, v in exes[exe].items()}
        if not os.path.isabs(exe):
            rows.append(ExeCoverage(exe, None, "not an absolute path", seen))
            continue
        rows.append(exe_coverage(exe, seen, dl))
    return Coverage(tuple(rows), dl)


def to_json(cov: Coverage) -> dict:
    exes = []
    for e in cov.executables:
        row = {"path": e.path, "seen": sorted({n for v in e.seen.values() for n in v})}
        if e.reach is None:
            row.update({"build_id": None, "abi": None, "reachable": None, "unknown_sites": None,
                        "dangerous_reachable": None, "error": e.error})
        else:
            r = e.reach
            row.update({
                "build_id": r.build_id, "abi": r.abi, "reachable": sorted(r.reachable.get("x86_64", ())),
                "reachable_by_abi": {a: sorted(v) for a, v in sorted(r.reachable.items())},
                "seen_by_abi": {a: sorted(v) for a, v in sorted(e.seen.items())},
                "unknown_sites": r.unknown_sites, "dangerous_reachable": e.dangerous_reachable,
                "dangerous_reachable_unseen": e.dangerous_unseen,
                "vdso_backed": sorted(r.vdso_backed),
                "error_path_only": {a: sorted(v) for a, v in sorted(r.error_only.items())},
                "possibly_needed": [{"syscall": n, "why": why} for n, why in e.candidates()],
                "started_by_exec": list(e.started_by_exec),
                "objects": [{"path": p, "build_id": b, "role": role} for p, b, role, _ in r.objects],
                "unanalysed": [{"object": p, "why": why} for p, why in r.unanalysed],
                "wrappers": list(r.wrappers), "notes": list(r.notes),
            })
        exes.append(row)
    return {"executables": exes, "missed": cov.missed, "dlopened": list(cov.dlopened), "limits": cov.limits}


def summary_line(e: ExeCoverage) -> str:
    """"reachable N (upper bound; of which V vDSO-backed, E error-path-only, U unknown sites), seen M"."""
    seen = len({n for v in e.seen.values() for n in v})
    if e.reach is None:
        return f"not analysed ({e.error}), seen {seen}"
    r = e.reach
    n = len(r.reachable.get("x86_64", ()))
    err = len(r.error_only.get("x86_64", ()))
    extra = "".join(f", +{len(v)} {a}" for a, v in sorted(r.reachable.items()) if a != "x86_64" and v)
    return (f"reachable {n}{extra} (upper bound; of which {len(r.vdso_backed)} vDSO-backed, {err} error-path-only; "
            f"{r.unknown_sites} unknown sites), seen {seen}")


def review_section(facts: Mapping, runs=()) -> dict:
    """What ``review`` (and ``show``) say about coverage: per executable the summary line, the dangerous
    syscalls reachable but never seen, the ranked candidates, what a run saw that the analysis missed."""
    return section_of(coverage(facts, runs))


def section_of(cov: Coverage) -> dict:
    rows = []
    for e in cov.executables:
        rows.append({
            "path": e.path, "line": summary_line(e), "analysed": e.reach is not None,
            "dangerous_reachable_unseen": [{"name": n, "why": risks.SYSCALLS[n].why,
                                            "example": risks.SYSCALLS[n].example} for n in e.dangerous_unseen],
            "possibly_needed": [{"syscall": n, "why": why} for n, why in e.candidates()],
        })
    analysed = [e for e in cov.executables if e.reach is not None]
    unseen = sorted({n for e in analysed for n in e.dangerous_unseen})
    if not analysed:
        verdict = "not analysed: none of the profile's executables could be read on this machine"
        if cov.executables and cov.executables[0].error.startswith("a path inside the container"):
            verdict = "not analysed: the executables are inside the container image, not on this host"
    elif unseen:
        verdict = (f"reachable but never seen: {', '.join(unseen)} — the code could make "
                   f"{'this call' if len(unseen) == 1 else 'these calls'} on a path the runs did not take")
    else:
        unk = sum(e.reach.unknown_sites for e in analysed)
        verdict = ("no dangerous syscall reachable" + (f" (apart from those seen)" if any(
            e.dangerous_reachable for e in analysed) else "")
                   + f" in the analysed code; limits: {unk} unknown syscall sites, and what the analysis "
                     "cannot see (code generated at run time, objects loaded by a path the runs did not open)")
    skipped = [e.path for e in cov.executables if e.reach is None]
    return {"executables": rows, "verdict": verdict, "missed": cov.missed, "dlopened": list(cov.dlopened),
            "not_analysed": skipped, "limits": cov.limits}
