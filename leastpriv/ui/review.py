"""``review`` for people: rich (default) and markdown renderings of learner.review.review()."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .console import out
from .show import capability_label, convergence


def _dangers(r: dict) -> list[tuple[str, str, str]]:
    rows = [(f"syscall {d['name']}" + (f" [{d['arch']}]" if d["arch"] != r["arch"] else ""), d["why"], d["example"])
            for d in r["dangerous_syscalls"]]
    rows += [(f"argument {d['what']}" + (f" [{d['arch']}]" if d["arch"] != r["arch"] else ""), d["why"], d["example"])
             for d in r["dangerous_args"]]
    rows += [(f"capability {d['cap']}", d["why"] + (f" ({d['how']})" if d["how"] else ""), d["example"])
             for d in r["capabilities"]["dangerous"]]
    return rows


def render_rich(r: dict, path: str, out=out) -> None:
    words, style = convergence(r["runs"], r["runs_without_growth"])
    out.print(f"[bold]review[/] of [bold cyan]{escape(path)}[/] (architecture {r['arch']}): [{style}]{escape(words)}[/]")
    out.print(("[bold red]" if _dangers(r) else "[green]") + r["verdict"] + "[/]")
    if r.get("translated"):
        t = r["translated"]
        out.print(f"[yellow]translated from {t['source']} for this review[/]: "
                  f"{len(t['translated'])} equivalent(s), {len(t['untranslatable'])} untranslatable: "
                  + escape(", ".join(u["syscall"] for u in t["untranslatable"])))
    rows = _dangers(r)
    if rows:
        t = Table(title="dangerous things in use", title_justify="left", show_edge=False)
        for col in ("what", "why it matters", "known CVE / exploit class"):
            t.add_column(col)
        for row in rows:
            t.add_row(*(escape(x) for x in row))
        out.print(t)
    caps = r["capabilities"]
    out.print(f"[bold]capabilities needed[/]: {_needed(caps) or 'none'}")
    if any(row.get("inferred") for row in caps.get("details", [])):
        out.print("  (inferred): deduced from syscalls, arguments and results (ptrace), not seen as a kernel check")
    if caps["docker_default_never_used"]:
        out.print(f"  Docker's default capabilities never used (drop them): {', '.join(caps['docker_default_never_used'])}")
    if caps["beyond_docker_default"]:
        out.print(f"  [yellow]beyond Docker's default set[/]: {', '.join(caps['beyond_docker_default'])}")
    if caps["wanted_not_granted"]:
        out.print(f"  asked for and refused (ran without): {', '.join(caps['wanted_not_granted'])}")
    d = r["docker"]
    out.print(f"[bold]Docker's default seccomp profile[/] ({d['arch']}, its 14 default capabilities): "
              f"allows {d['docker_allowed']} syscalls; this workload used {d['workload_used']}, "
              f"{d['both']} of them allowed by Docker; Docker allows {d['docker_allows_never_used']} it never used")
    if d["dangerous_docker_allows_never_used"]:
        out.print(f"  of those, dangerous: {', '.join(d['dangerous_docker_allows_never_used'])}")
    if d["used_not_in_docker_default"]:
        out.print(f"  [yellow]used but denied by Docker's default[/]: {', '.join(d['used_not_in_docker_default'])}")
    if d["values_docker_would_deny"]:
        out.print(f"  [yellow]argument values Docker's default denies[/]: {', '.join(d['values_docker_would_deny'])}")
    ps = r["pod_security"]
    out.print(f"[bold]Pod Security Standard[/] of the exported securityContext: [bold]{ps['level']}[/]")
    for v in ps["baseline_violations"] + ps["restricted_violations"]:
        out.print(f"  - {v}", markup=False)
    t = Table(title="what each style leaves open", title_justify="left", show_edge=False)
    t.add_column("style")
    t.add_column("allows")
    t.add_column("leaves open")
    al, dl = r["styles"]["allowlist"], r["styles"]["denylist"]
    t.add_row("allowlist", f"{al['allowed']} syscalls ({al['conditional_rules']} argument rules)",
              escape("\n".join(al["open"])))
    t.add_row("denylist", f"{dl['allowed']} syscalls (denies {dl['denied_names']} + {dl['conditional_rules']} "
                          "argument rules)", escape("\n".join(dl["open"])))
    out.print(t)
    if r["loose"]:
        out.print("[yellow]argument rules left loose:[/]")
        for x in r["loose"]:
            out.print(f"  - {escape(x)}")
    if r.get("generalization"):
        out.print("[bold]allowed beyond what was traced (generalization):[/]")
        for x in r["generalization"]:
            out.print(f"  - {escape(x)}")
    if r["unknown_syscalls"]:
        out.print("[yellow]unknown syscall numbers (cannot be reviewed):[/] " +
                  "; ".join(f"{a}: {', '.join(map(str, v))}" for a, v in r["unknown_syscalls"].items()))
    if r["seen_in_one_run_only"]:
        out.print("[yellow]seen in only one run (look at these):[/] " + escape(", ".join(r["seen_in_one_run_only"])))
    if r.get("reach"):
        from .reach import render_section
        render_section(r["reach"])


def _needed(caps: dict) -> str:
    inferred = {row["cap"]: row for row in caps.get("details", [])}
    return ", ".join(capability_label(inferred.get(c, {"cap": c})) for c in caps["needed"])


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(r: dict, path: str) -> str:
    lines = [f"# leastpriv review: `{path}`", "",
             f"Architecture {r['arch']}; {convergence(r['runs'], r['runs_without_growth'])[0]}.", "",
             f"**{r['verdict']}**", ""]
    rows = _dangers(r)
    if rows:
        lines += ["## Dangerous things in use", "", "| what | why it matters | known CVE / exploit class |",
                  "|---|---|---|"]
        lines += [f"| {_md_escape(a)} | {_md_escape(b)} | {_md_escape(c)} |" for a, b, c in rows]
        lines.append("")
    caps = r["capabilities"]
    lines += ["## Capabilities", "", f"- needed: {_needed(caps) or 'none'}",
              f"- Docker's default capabilities never used: {', '.join(caps['docker_default_never_used']) or 'none'}"]
    if caps["beyond_docker_default"]:
        lines.append(f"- beyond Docker's default set: {', '.join(caps['beyond_docker_default'])}")
    if any(row.get("inferred") for row in caps.get("details", [])):
        lines.append("- (inferred): deduced from syscalls, arguments and results (ptrace), not seen as a kernel "
                     "check (eBPF)")
    d = r["docker"]
    lines += ["", "## Compared with Docker's default seccomp profile", "",
              "| | count |", "|---|---|",
              f"| syscalls Docker's default allows ({d['arch']}, 14 default capabilities) | {d['docker_allowed']} |",
              f"| syscalls this workload used | {d['workload_used']} |",
              f"| used and allowed by Docker | {d['both']} |",
              f"| allowed by Docker, never used | {d['docker_allows_never_used']} |",
              f"| used, denied by Docker | {len(d['used_not_in_docker_default'])} |", ""]
    if d["used_not_in_docker_default"]:
        lines.append(f"Used but denied by Docker's default: {', '.join(d['used_not_in_docker_default'])}")
    if d["values_docker_would_deny"]:
        lines.append(f"Argument values Docker's default denies: {', '.join(d['values_docker_would_deny'])}")
    ps = r["pod_security"]
    lines += ["", "## Pod Security Standard", "", f"The exported securityContext meets **{ps['level']}**."]
    lines += [f"- {v}" for v in ps["baseline_violations"] + ps["restricted_violations"]]
    al, dl = r["styles"]["allowlist"], r["styles"]["denylist"]
    lines += ["", "## What each style leaves open", "",
              f"**allowlist**: allows {al['allowed']} syscalls; {al['denies']}."]
    lines += [f"- {_md_escape(x)}" for x in al["open"]]
    lines += ["", f"**denylist**: denies {dl['denied_names']} syscalls and {dl['conditional_rules']} argument "
                  f"patterns, allows {dl['allowed']}."]
    lines += [f"- {_md_escape(x)}" for x in dl["open"]]
    if r["loose"]:
        lines += ["", "## Argument rules left loose", ""] + [f"- {_md_escape(x)}" for x in r["loose"]]
    if r.get("generalization"):
        lines += ["", "## Allowed beyond what was traced (generalization)", ""] + \
            [f"- {_md_escape(x)}" for x in r["generalization"]]
    if r["unknown_syscalls"]:
        lines += ["", "## Unknown syscall numbers", ""] + [f"- {a}: {', '.join(map(str, v))}"
                                                           for a, v in r["unknown_syscalls"].items()]
    if r["seen_in_one_run_only"]:
        lines += ["", "## Seen in only one run", ""] + [f"- {x}" for x in r["seen_in_one_run_only"]]
    if r.get("reach"):
        from .reach import markdown_lines
        lines += markdown_lines(r["reach"])
    return "\n".join(lines) + "\n"
