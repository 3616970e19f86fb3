"""What a traced program chose (its file names) must never change the structure of an export.

Line formats (systemd units, AppArmor profiles, the comments of every format) get each value
quoted by their own rules (systemd.py, apparmor.py); what no quoting can express -- a name with a
newline or another control character, or not valid UTF-8 -- is dropped from the export with a note,
never written raw. The line-format exporters (systemd, AppArmor, the SPO AppArmorProfile) apply
:func:`expressible_files` after ``prepare``; selinux.py escapes and refuses with its own rules.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..policy.rules import ACCESSES as PATH_KINDS


def expressible(text: str) -> bool:
    """Printable text (spaces allowed): no newline, tab, control or format character, no lone surrogate."""
    return isinstance(text, str) and text.isprintable()


def for_comment(text: str) -> str:
    """``text`` for one comment line: characters that are not printable are written as escapes."""
    return "".join(ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
                   for ch in str(text))


def expressible_files(profile: Any) -> tuple[Any, list[str]]:
    """The profile without the file rules no line format can express, and a note for each dropped one."""
    files = profile.rules.files
    dropped: list[str] = []
    kept: dict[str, list[str]] = {}
    for kind in PATH_KINDS:
        kept[kind] = []
        for p in files.of(kind):
            (kept[kind] if expressible(p) else dropped).append(p)
    if not dropped:
        return profile, []
    rules = profile.rules.replace(files=replace(files, **{k: tuple(v) for k, v in kept.items()}))
    facts = dict(profile.facts)
    facts["files"] = {p: e for p, e in (profile.facts.get("files") or {}).items() if expressible(p)}
    facts["execs"] = {p: e for p, e in (profile.facts.get("execs") or {}).items() if expressible(p)}
    notes = [f"file rule dropped: {for_comment(p)!s}: its name has a newline or another control character that "
             "this format cannot express (the workload will be denied it)" for p in sorted(set(dropped))]
    return replace(profile, rules=rules, facts=facts), notes
