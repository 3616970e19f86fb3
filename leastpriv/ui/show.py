"""``leastpriv show``: a profile for people."""
from __future__ import annotations

import datetime as _dt

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..learner.profile import Profile
from ..kernel.groups import group_of
from .console import out
from ..errors import UserError
from ..policy.runtime_base import runtime_base
from ..learner.generalization import path_lines
from .console import live_status
from .words import capability_label, convergence  # noqa: F401 - used here and by review


def _when(ts: float | None) -> str:
    if not ts:
        return "?"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _added_summary(added: dict) -> str:
    parts = []
    sc = sum(len(v) for v in added.get("syscalls", {}).values())
    if sc:
        parts.append(f"{sc} syscall{'s' * (sc != 1)}")
    av = sum(len(v) for t in added.get("args", {}).values() for v in t.values())
    if av:
        parts.append(f"{av} argument value{'s' * (av != 1)}")
    for kind, one in (("capabilities", "capability"), ("files", "file"), ("execs", "exec"), ("network", "endpoint")):
        if added.get(kind):
            n = len(added[kind])
            parts.append(f"{n} {one if n == 1 else kind if kind != 'network' else 'endpoints'}")
    return ", ".join(parts) or "nothing new"


SUMMARY_ROWS = 25   # rows of a long table (files, argument values, endpoints) shown without --all


def _more(table_rows: int, shown: int, what: str) -> None:
    if table_rows > shown:
        out.print(f"[dim]  ... and {table_rows - shown} more {what} (show --all lists them)[/]")


def render(profile: Profile, path: str, all_rows: bool = False) -> None:
    """The profile for people. Long tables (files, argument values, network) are cut to their first
    SUMMARY_ROWS rows unless ``all_rows``; each says how many it left out."""
    limit = None if all_rows else SUMMARY_ROWS
    runs = profile.runs
    words, style = convergence(len(runs), profile.runs_without_growth)
    head = Text.assemble(("profile ", "bold"), (path, "bold cyan"), ": ", (words, style))
    out.print(head)

    t = Table(title="runs", title_justify="left", show_edge=False)
    for col in ("#", "id", "when", "backend", "command", "exit", "added"):
        t.add_column(col)
    for i, r in enumerate(runs, 1):
        status = str(r.get("exit_status")) if r.get("exit_status") is not None else "-"
        if not r.get("complete", True):
            status += f" [red](incomplete: {escape(str(r.get('interrupted') or 'interrupted'))})[/]"
        cmd = " ".join(r.get("command", []))
        t.add_row(str(i), Text(str(r.get("id", ""))), _when(r.get("started")), Text(str(r.get("backend", ""))),
                  Text(cmd if len(cmd) < 60 else cmd[:57] + "..."), status, Text(_added_summary(r.get("added", {}))))
    out.print(t)

    nruns = max(len(runs), 1)
    for arch, table in sorted(profile.facts.get("syscalls", {}).items()):
        groups: dict[str, list[tuple[str, dict]]] = {}
        for name, st in table.items():
            groups.setdefault(group_of(name), []).append((name, st))
        st_t = Table(title=f"syscalls ({arch}): {len(table)}", title_justify="left", show_edge=False)
        st_t.add_column("group")
        st_t.add_column("syscalls (count; * = seen in only some runs)")
        for g in sorted(groups):
            cells = []
            for name, st in sorted(groups[g]):
                mark = "*" if st.get("runs", 1) < nruns else ""
                cells.append(f"{name}{mark}({st['count']})")
            st_t.add_row(g, " ".join(cells))
        out.print(st_t)

    _generalization(profile)

    args = profile.facts.get("args", {})
    if any(args.values()):
        a_t = Table(title="argument values", title_justify="left", show_edge=False)
        for col in ("arch", "syscall", "values", "count", "runs"):
            a_t.add_column(col)
        rows = [(arch, name, Text(str(e.get("describe", e["values"]))), str(e["count"]), f"{e['runs']}/{nruns}")
                for arch, table in sorted(args.items()) for name, entries in sorted(table.items()) for e in entries]
        for row in rows[:limit]:
            a_t.add_row(*row)
        out.print(a_t)
        _more(len(rows), len(rows[:limit]), "argument values")

    caps = profile.facts.get("capabilities", {})
    if caps:
        c_t = Table(title="capabilities", title_justify="left", show_edge=False)
        for col in ("capability", "granted", "denied", "checked during", "how known"):
            c_t.add_column(col)
        for cap, e in sorted(caps.items()):
            how = "inferred: " + "; ".join(e.get("reasons", [])) if e.get("inferred") else \
                f"kernel check ({e.get('audited', 0)} audited, {e.get('noaudit', 0)} no-audit)"
            c_t.add_row(cap, str(e.get("granted", 0)), str(e.get("denied", 0)), Text(", ".join(e.get("syscalls", []))),
                        Text(how))
        out.print(c_t)

    files = profile.facts.get("files", {})
    if files:
        f_t = Table(title=f"files: {len(files)}", title_justify="left", show_edge=False)
        f_t.add_column("path")
        f_t.add_column("access")
        f_t.add_column("runs")
        rows = sorted(files.items())
        for p, e in rows[:limit]:
            f_t.add_row(escape(p), ",".join(e["access"]), f"{e['runs']}/{nruns}")
        out.print(f_t)
        _more(len(rows), len(rows[:limit]), "files")
    net = profile.facts.get("network", [])
    if net:
        n_t = Table(title="network", title_justify="left", show_edge=False)
        for col in ("op", "proto", "family", "address", "port", "runs"):
            n_t.add_column(col)
        for e in net[:limit]:
            n_t.add_row(e["op"], e.get("proto", "?"), e["family"], escape(e["address"]), str(e.get("port") or ""),
                        f"{e['runs']}/{nruns}")
        out.print(n_t)
        _more(len(net), len(net[:limit]), "endpoints")
    unknown = profile.facts.get("unknown_syscalls", {})
    if any(unknown.values()):
        out.print("[yellow]unknown syscall numbers (not in the tables; reported, not allowed by name):[/] " +
                  "; ".join(f"{a}: {', '.join(map(str, v))}" for a, v in unknown.items() if v))
    _runtime_base(profile)   # containers: what the OCI runtime needs, apart from what the app needs
    loose = profile.rules.loose
    if loose:
        out.print("[yellow]argument rules left loose:[/]")
        for line in loose:
            out.print(f"  - {line}", markup=False)
    rare = profile.seen_in_one_run()
    if rare:
        out.print(f"[yellow]seen in only one of {len(runs)} runs (look at these: an input-specific path, or "
                  "something that should not be there):[/] " + ", ".join(rare).replace("[", "\\["))
    if profile.facts.get("executables"):
        from ..reach.coverage import review_section
        from .reach import render_section
        with live_status("static reachability of the executables (first time per build-id: seconds)"):
            sec = review_section(profile.facts, profile.runs)
        render_section(sec)
    out.print("[dim]A trace proves what ran, not what never will. Facts marked * appeared in only some runs; "
              "capabilities marked inferred were deduced from syscalls, not seen as kernel checks.[/]")


def _generalization(profile: Profile) -> None:
    """What the rules allow beyond the facts: harmless siblings (and why)."""
    sibs = profile.rules.siblings
    if profile.rules.exact:
        out.print("[bold]generalization[/]: none (--exact: only the syscalls traced)")
        return
    for arch, rows in sorted(sibs.items()):
        if not rows:
            continue
        by_of: dict[str, list[str]] = {}
        for r in rows:
            by_of.setdefault(f"{r.family}: sibling of {r.sibling_of}", []).append(r.name)
        out.print(f"[bold]added by generalization[/] ({arch}, {len(rows)} harmless siblings of what was used; "
                  "export --exact leaves them out):")
        for k, names in sorted(by_of.items()):
            out.print(f"  + {' '.join(names)}  [dim]({k})[/]")
    plines = path_lines(profile)
    if plines:
        out.print("[bold]path patterns[/] (the next run's temporary names fit them; Landlock grants each on its "
                  "nearest existing directory):")
        for line in plines:
            out.print("  " + escape(line))


def _runtime_base(profile: Profile) -> None:
    """The runtime base an oci/docker/k8s export adds, listed apart from the app's needs."""
    nnp = profile.rules.no_new_privileges
    for arch in profile.host_arches or ["x86_64"]:
        try:
            rb = runtime_base("runc", None, nnp, arch)
        except UserError:
            continue
        app = profile.syscall_names(arch)
        extra = [n for n in rb.syscalls if n not in app]
        out.print(f"[bold]runtime base[/] (runc {rb.version}, noNewPrivileges={str(nnp).lower()}, {arch}): "
                  f"{len(rb.syscalls)} syscalls runc makes after installing the filter, added at export "
                  f"(--runtime none to leave out); not already needed by the app: {' '.join(extra) or 'none'}")
