"""The learn report: what one run added to the profile (status on stderr, ``--json`` on stdout)."""
from __future__ import annotations

import json

from . import console
from .words import capability_label, convergence
from ..learner.capabilities import wanted_not_granted


def report_learn(output, profile, rec, added, as_json, others=()) -> None:
    """What one learn run added to the profile: status lines on stderr, ``--json`` on stdout.
    ``others``: the programs the profile was learned from when this run is another one."""
    n_sys = sum(len(t) for t in rec.syscalls.values())
    if as_json:
        console.out.print_json(json.dumps({"profile": output, "run": rec.id, "complete": rec.complete,
                                           "added": added, "runs": len(profile.runs),
                                           "runs_without_growth": profile.runs_without_growth}))
    state = "complete" if rec.complete else f"INCOMPLETE ({rec.interrupted or 'interrupted'}): saved what it saw"
    console.info(f"run {rec.id} ({rec.backend}, {state}): {n_sys} distinct syscalls -> {output} "
                 f"({len(profile.runs)} run{'s' * (len(profile.runs) != 1)})")
    for note in rec.notes:
        console.warn(note)
    if rec.lost_events:
        console.warn(f"the kernel dropped {rec.lost_events} events: this run is marked lossy")
    for arch, nrs in rec.unknown_syscalls.items():
        if nrs:
            console.warn(f"unknown syscall numbers on {arch}: {', '.join(map(str, nrs))} (recorded as #N)")
    if added:
        for arch, names in added.get("syscalls", {}).items():
            console.info(f"new syscalls ({arch}): {' '.join(names)}")
        for arch, t in added.get("args", {}).items():
            for sc, vals in t.items():
                console.info(f"new {sc} arguments ({arch}): {'; '.join(vals)}")
        if added.get("capabilities"):
            caps = profile.facts.get("capabilities", {})
            needed = [c for c in added["capabilities"] if c in profile.rules.capabilities]
            # no-audit probes (the overcommit CAP_SYS_ADMIN check on every mmap) are not news: only capabilities
            # the workload asked for with audit and was refused are said (`show` lists every check)
            checked = [c for c in added["capabilities"] if c in wanted_not_granted(profile.facts)]
            if needed:
                labels = [capability_label({"cap": c, "inferred": caps.get(c, {}).get("inferred")}) for c in needed]
                console.info(f"new capabilities needed: {', '.join(labels)}")
            if checked:
                console.warn(f"capabilities asked for and refused (the workload ran without them): "
                             f"{', '.join(checked)}")
        for kind in ("execs", "network"):
            if added.get(kind):
                console.info(f"new {kind}: {', '.join(added[kind])}")
        if added.get("files"):
            console.info(f"new files: {len(added['files'])}")
    if len(profile.runs) > 1 and profile.runs_without_growth:
        console.info("this run added nothing new")
    console.info(f"{output}: {convergence(len(profile.runs), profile.runs_without_growth)[0]}")
    if others:
        console.warn(f"{output} was learned from {', '.join(others)}; this run is {rec.command[0]}: the profile now "
                     f"allows what both need (learn into another file with -o NAME.json to keep them apart)")
