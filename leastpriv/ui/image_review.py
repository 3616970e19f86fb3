"""The image review (learner/image_review.py's report) for people: rich on a terminal, or markdown."""
from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from . import console
from .output import emit_report


def markdown(r: dict) -> str:
    lines = [f"# Security review: {r['name'] or r['image']}", "",
             f"- command: `{' '.join(r['command'])}`",
             f"- user: uid {r['user']['uid']} ({'**root**' if r['runs_as_root'] else 'not root'})", "", "## Findings", ""]
    lines += [f"- {f}" for f in r["findings"]] or ["- none"]
    c = r["capabilities"]
    lines += ["", "## Capabilities", "", f"- granted by default: {', '.join(c['granted_by_default']) or 'none'}",
              f"- used: {', '.join(c['used']) or 'none'}" + ("" if c["observed"] else " (capability checks not observed "
                                                                                   "by this backend)"),
              f"- proved by a run with only those: {c['proved_by_run']}"]
    s = r["syscalls"]
    lines += ["", "## Syscalls", "", f"- used: {len(s['used'])}",
              f"- allowed by Docker's default but never used: {len(s['docker_default_allows_unused'])}: "
              + " ".join(s["docker_default_allows_unused"])]
    lines += [f"- dangerous: `{d['syscall']}`: {d['why']} ({d['example']})" for d in s["dangerous_used"]]
    fs = r["rootfs"]
    lines += ["", "## Rootfs", "", f"- setuid/setgid files: {', '.join(fs['setuid_setgid_files']) or 'none'}",
              f"- world-writable: {', '.join(fs['world_writable']) or 'none'}",
              "", "## Apply", "", "Kubernetes container securityContext:", "", "```json",
              json.dumps(r["artifacts"]["kubernetes"], indent=2), "```", "",
              "OCI config.json fragment (seccomp includes the runtime base of "
              f"`{r['artifacts']['runtime']}`):", "", "```json", json.dumps(r["artifacts"]["oci"], indent=2), "```", ""]
    return "\n".join(lines)


def render(r: dict, out=None) -> None:
    """The review on a terminal. Everything from the image (names, paths, the command) is data: escaped,
    never read as rich markup (a file named ``evil[/]x`` is printed as it is)."""
    out = out or console.out

    def e(x) -> str:
        return escape(str(x))
    out.print(f"[bold]review[/] [cyan]{e(r['name'] or r['image'])}[/]: {e(' '.join(r['command']))}")
    out.print(("[red]runs as root[/]" if r["runs_as_root"] else "[green]runs as a non-root user[/]")
              + f" (uid {e(r['user']['uid'])})")
    for f in r["findings"]:
        out.print(f"  [yellow]•[/] {e(f)}")
    t = Table(title="capabilities", title_justify="left", show_edge=False)
    t.add_column("capability")
    t.add_column("default")
    t.add_column("used")
    c = r["capabilities"]
    for cap in sorted(set(c["granted_by_default"]) | set(c["used"])):
        t.add_row(e(cap), "yes" if cap in c["granted_by_default"] else "", "[red]yes[/]" if cap in c["used"] else "")
    out.print(t)
    s = r["syscalls"]
    out.print(f"syscalls used: {len(s['used'])}; allowed by Docker's default but never used: "
              f"{len(s['docker_default_allows_unused'])}")
    for d in s["dangerous_used"]:
        out.print(f"  [red]{e(d['syscall'])}[/]: {e(d['why'])}")
    fs = r["rootfs"]
    out.print(f"setuid/setgid files: {e(', '.join(fs['setuid_setgid_files']) or 'none')}")
    out.print(f"world-writable paths: {e(', '.join(fs['world_writable']) or 'none')}")
    out.print("[dim]--format json or markdown for the ready-to-apply OCI and Kubernetes artifacts[/]")


def emit(report: dict, fmt: str, output: str | None) -> None:
    """The image review in ``fmt`` (json, markdown, or rich/text for people) to ``output`` or stdout."""
    if fmt == "json":
        emit_report(output, json.dumps(report, indent=2, sort_keys=True))
    elif fmt == "markdown":
        emit_report(output, markdown(report))
    else:
        emit_report(output, render=lambda con: render(report, con))
