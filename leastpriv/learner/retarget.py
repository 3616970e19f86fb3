"""Retargeting a profile for an export: its rules re-derived with another argument mode or style (--args,
--style), or translated for another architecture (--arch). Pure: a new Profile and the notes for the user.

app.py does this before it hands the finished profile to an exporter (exporters never re-learn).
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import UserError
from . import aggregate, arches
from .profile import Profile


def retarget(profile: Profile, *, args: str | None = None, style: str | None = None,
             arch: str | None = None, exact: bool = False) -> tuple[Profile, list[str]]:
    """The profile with its rules for ``args``/``style`` (None: as learned), without the harmless siblings
    when ``exact`` (learner/siblings.py), and translated to ``arch`` when it was learned elsewhere.
    Returns (profile, notes)."""
    notes: list[str] = []
    rule_opts: dict[str, Any] = {}
    learned_with = profile.rules
    if args and args != learned_with.args_mode:
        rule_opts["args"] = args
    if style and style != learned_with.style:
        rule_opts["style"] = style
    if exact and not learned_with.exact:
        rule_opts["exact"] = True
    if rule_opts:
        rule_opts = {**learned_with.rule_options(), "exact": learned_with.exact, **rule_opts}
    learned = set(getattr(profile, "host_arches", []))
    try:
        if arch and learned and arch not in learned:
            profile, report = arches.translate(profile, arch, rule_opts or {
                **learned_with.rule_options(), "exact": learned_with.exact})
            notes += _report_lines(report)
        elif rule_opts:
            profile = aggregate.relearn(profile, rule_opts)
    except (TypeError, ValueError) as exc:
        raise UserError(f"export: cannot re-derive the rules with {rule_opts}: {exc}") from None
    sibs = profile.rules.siblings
    if any(sibs.values()):
        notes.append("harmless siblings added (--exact leaves them out): " + "; ".join(
            f"{a}: " + ", ".join(f"{s.name} ({s.sibling_of})" for s in v) for a, v in sorted(sibs.items()) if v))
    return profile, notes


def _report_lines(report: Any) -> list[str]:
    """arches.translate's report, as lines for the user."""
    if not isinstance(report, Mapping):
        return [str(report)] if report else []
    src, dst = report.get("source", "?"), report.get("target", "?")
    out = []
    if report.get("translated"):
        out.append(f"--arch {dst}: translated from {src}: " +
                   ", ".join(f"{t['from']} -> {t['to']}" for t in report["translated"]))
    if report.get("added_time64"):
        out.append(f"--arch {dst}: added time64 twins: " + ", ".join(t["to"] for t in report["added_time64"]))
    for t in report.get("untranslatable", []):
        out.append(f"--arch {dst}: {t['syscall']} left out: {t['why']}")
    for t in report.get("dropped_args", []):
        out.append(f"--arch {dst}: {t['syscall']} argument rules dropped: {t['why']}")
    for t in report.get("other_arches", []):
        out.append(f"--arch {dst}: {t['syscalls']} syscalls of {t['arch']} not carried over: {t['why']}")
    for t in report.get("arg_indexes", []):
        out.append(f"--arch {dst}: {t['syscall']} argument index {t['from']} -> {t['to']}")
    return out


