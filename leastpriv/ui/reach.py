"""Static coverage for people: ``reach``, and the coverage part of ``show`` and ``review``."""
from __future__ import annotations

from rich.markup import escape

from .console import out as _out

TOP = 12   # candidates shown per executable (all of them in JSON)


def render_section(sec: dict, title: str = "coverage (static reachability of the code that ran)",
                   console=None) -> None:
    if not sec:
        return
    out = console or _out
    out.print(f"[bold]{title}[/]")
    for e in sec["executables"]:
        out.print(f"  [cyan]{escape(e['path'])}[/]: {escape(e['line'])}")
        if e["dangerous_reachable_unseen"]:
            out.print("    [bold red]dangerous, reachable, never seen[/]: "
                      + escape(", ".join(d["name"] for d in e["dangerous_reachable_unseen"])))
        line = candidates_line(e["possibly_needed"])
        if line:
            out.print(f"    possibly needed (static; candidates, never added): {escape(line)}")
    style = "red" if any(e["dangerous_reachable_unseen"] for e in sec["executables"]) else "green"
    out.print(f"  [{style}]{escape(sec['verdict'])}[/]")
    for m in sec["missed"]:
        out.print(f"  [bold red]missed[/]: {escape(m['path'])} made {m['syscall']} ({m['abi']}), which the analysis "
                  f"says is unreachable: {escape(m['why'])}")
    if sec["dlopened"]:
        out.print(f"  [dim]shared objects the runs opened, analysed as dlopen'ed: {escape(', '.join(sec['dlopened']))}[/]")
    out.print(f"  [dim]limits: {escape(sec['limits'])}[/]")


def candidates_line(cands: list[dict]) -> str:
    """Ranked candidates in one line: siblings of what ran, then same group, then the rest (counted)."""
    sib = [c["syscall"] for c in cands if c["why"].startswith("sibling")]
    grp = [c["syscall"] for c in cands if c["why"].startswith("same group")]
    rest = len(cands) - len(sib) - len(grp)
    parts = []
    if sib:
        parts.append("siblings of calls seen: " + ", ".join(sib[:TOP]) + (" ..." if len(sib) > TOP else ""))
    if grp:
        parts.append("same group as calls seen: " + ", ".join(grp[:TOP])
                     + (f" ... (+{len(grp) - TOP})" if len(grp) > TOP else ""))
    if rest:
        parts.append(f"{rest} more reachable (reach --format json)")
    return "; ".join(parts)


def markdown_lines(sec: dict) -> list[str]:
    if not sec:
        return []
    lines = ["", "## Coverage (static reachability of the code that ran)", ""]
    for e in sec["executables"]:
        lines.append(f"- `{e['path']}`: {e['line']}")
        if e["dangerous_reachable_unseen"]:
            lines.append("  - **dangerous, reachable, never seen**: "
                         + ", ".join(d["name"] for d in e["dangerous_reachable_unseen"]))
        if e["possibly_needed"]:
            lines.append("  - possibly needed (static; candidates, never added): "
                         + candidates_line(e["possibly_needed"]))
    lines += ["", f"**{sec['verdict']}**"]
    for m in sec["missed"]:
        lines.append(f"- missed: `{m['path']}` made {m['syscall']} ({m['abi']}): {m['why']}")
    lines += ["", f"Limits: {sec['limits']}."]
    return lines
