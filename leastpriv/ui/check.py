"""``check`` and ``diff`` for people: rich tables on stdout."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ..learner.diff import KIND_TITLES, KINDS
from .console import out

_out = out


def _row_label(c: dict) -> str:
    return escape((f"[{c['arch']}] " if c.get("arch") else "") + c["label"])


def render_check(result: dict, baseline: str, con=None) -> None:
    out = con or _out
    added = result["added"]
    if not added:
        out.print(f"[green]check: nothing grew[/] beyond [bold]{escape(baseline)}[/]'s policy "
                  f"({', '.join(KIND_TITLES[k] for k in result['kinds'])} compared)")
    else:
        n_d = len(result["dangerous"])
        out.print(f"[red]check: usage grew[/] beyond [bold]{escape(baseline)}[/]: {len(added)} new fact"
                  f"{'s' * (len(added) != 1)}" + (f", [bold red]{n_d} dangerous[/]" if n_d else ""))
        t = Table(show_edge=False)
        for col in ("kind", "new", "risk"):
            t.add_column(col)
        for c in added:
            risk = ""
            if c.get("danger"):
                risk = f"[bold red]DANGEROUS[/]: {escape(c['danger']['why'])} [dim]({escape(c['danger']['example'])})[/]"
            t.add_row(KIND_TITLES[c["kind"]], _row_label(c), risk)
        out.print(t)
        out.print("[dim]If the growth is intended, learn it into the baseline "
                  "(leastpriv learn -o BASELINE -- CMD, or leastpriv merge BASELINE NEW -o BASELINE) and commit it.[/]")
    allowed = result.get("allowed", [])
    if allowed:
        out.print(f"[yellow]{len(allowed)} new fact{'s' * (len(allowed) != 1)} the policy already allows[/] "
                  "(not a failure; --strict fails on them):")
        for c in allowed:
            out.print(f"  + {KIND_TITLES[c['kind']]}: {_row_label(c)}  [dim]({escape(c['allowed_by'])})[/]")
    if result["removed"]:
        out.print(f"[dim]{len(result['removed'])} fact(s) of the baseline were not used this time (not a failure).[/]")
    if result.get("unobserved_removals"):
        out.print(f"[dim]fast gate: whether the {result['unobserved_removals']} other fact(s) of the baseline were "
                  f"used is not known (the kernel allowed them without a stop).[/]")
    if result["ignored"]:
        out.print(f"[dim]{len(result['ignored'])} new fact(s) of kinds not checked (--only) were ignored.[/]")
    if result["new_incomplete_runs"]:
        out.print("[yellow]the new run did not complete: it may have done less than usual[/]")


def render_diff(d: dict, old: str, new: str) -> None:
    t = Table(title=escape(f"diff {old} -> {new}"), title_justify="left", show_edge=False)
    for col in ("kind", "old", "new", "added", "removed"):
        t.add_column(col, justify="right" if col != "kind" else "left")
    for k in KINDS:
        s = d["summary"][k]
        if any(s.values()):
            t.add_row(KIND_TITLES[k], str(s["old"]), str(s["new"]),
                      f"[green]+{s['added']}[/]" if s["added"] else "0", f"[red]-{s['removed']}[/]" if s["removed"] else "0")
    out.print(t)
    for title, items, sign, style in (("added", d["added"], "+", "green"), ("removed", d["removed"], "-", "red")):
        if not items:
            continue
        out.print(f"[bold]{title}[/]")
        for c in items:
            risk = f"  [bold red]dangerous[/]: {escape(c['danger']['why'])}" if c.get("danger") and sign == "+" else ""
            allowed = f"  [dim](the old policy allows it: {escape(c['allowed_by'])})[/]" if c.get("allowed_by") else ""
            out.print(f"  [{style}]{sign}[/] {KIND_TITLES[c['kind']]}: {_row_label(c)}{risk}{allowed}")
    if not d["added"] and not d["removed"]:
        out.print("[green]no difference[/]")
