"""Landlock: the policy/landlock.py ruleset in the landlockconfig JSON format.

landlock-lsm/landlockconfig: ``abi``, ``ruleset``, ``pathBeneath``, ``netPort``.
How a profile's paths and ports become Landlock rules is policy/landlock.py
(shared with ``leastpriv run``, which enforces the same ruleset).
"""
from __future__ import annotations

from typing import Any

from ..policy.landlock import MAX_ABI, Ruleset, ruleset
from .base import ExportOptions, ExportResult, Exporter, dump_json, prepare, register


def to_landlockconfig(rs: Ruleset) -> dict:
    """The landlockconfig JSON object (rules with the same rights share one entry)."""
    out: dict[str, Any] = {"abi": rs.abi}
    head: dict[str, Any] = {"handledAccessFs": list(rs.handled_fs)}
    if rs.handled_net:
        head["handledAccessNet"] = list(rs.handled_net)
    if rs.scoped:
        head["scoped"] = list(rs.scoped)
    out["ruleset"] = [head]
    groups: dict[tuple[str, ...], list[str]] = {}
    for p in rs.paths:
        groups.setdefault(p.access, []).append(p.path)
    if groups:
        out["pathBeneath"] = [{"allowedAccess": list(a), "parent": sorted(ps)} for a, ps in sorted(groups.items())]
    ports = [{"allowedAccess": [k], "port": list(v)} for k, v in sorted(rs.ports.items()) if v]
    if ports:
        out["netPort"] = ports
    return out


@register
class LandlockExporter(Exporter):
    name = "landlock"
    description = "Landlock ruleset in the landlockconfig JSON format (abi, ruleset, pathBeneath, netPort)"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        abi = int(options.extra.get("landlock_abi", MAX_ABI))
        rs = ruleset(profile, abi)
        notes += list(rs.notes)
        if options.complain:
            notes.append("Landlock has no complain mode: the ruleset is written as it would be enforced")
        if not rs.paths:
            notes.append("the profile has no file facts: this ruleset denies every handled file access")
        return ExportResult(dump_json(to_landlockconfig(rs)), tuple(notes))
