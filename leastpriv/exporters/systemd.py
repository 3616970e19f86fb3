"""systemd: a ``[Service]`` drop-in confining a unit to the profile.

* ``SystemCallFilter=`` the learned syscalls of the native ABI, listed by name
  (systemd's @groups grow with systemd versions; the comment says which groups
  the list covers fully), ``SystemCallArchitectures=native``,
  ``SystemCallErrorNumber=EPERM``. systemd cannot check arguments: names with
  argument rules are allowed whole (said in a comment), and clone3 is allowed
  with clone, because systemd would answer it EPERM (not ENOSYS) and glibc
  only falls back to clone on ENOSYS; unchecked, clone3 gives nothing clone
  does not.
* ``CapabilityBoundingSet=`` the learned set (empty: none),
  ``AmbientCapabilities=`` when the runs were not root and needed some,
  ``NoNewPrivileges=``.
* ``RestrictAddressFamilies=`` the socket families used (``none`` if none);
  ``RestrictNamespaces=`` the namespace types the workload created or joined
  (``yes``: none) -- systemd's own way to write the clone/unshare/setns flag
  rules (it answers clone3 with ENOSYS itself).
* ``--style denylist``: ``SystemCallFilter=~`` the denylist's names.
* ``ProtectSystem=strict`` with ``ReadWritePaths=`` for what was written (a
  created file's directory), each ``-``-prefixed so a missing path does not
  stop the unit; /dev, /proc and /sys stay as ProtectSystem leaves them.

``--complain``: systemd has no log-only seccomp mode in a drop-in; the
filter is written with ``SystemCallLog=`` (systemd 247+) listing nothing and a
comment -- use ``leastpriv run --complain`` to stage instead.
"""
from __future__ import annotations

import os
from typing import Any

from .. import syscall_groups, syscalls
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from .landlock import _PROC_PID

_API_FS = ("/dev/", "/proc/", "/sys/")


def _wrap(key: str, values: list[str], width: int = 100) -> list[str]:
    """``KEY=a b c`` lines, split so each stays readable (systemd merges repeated keys)."""
    if not values:
        return [f"{key}="]
    lines, cur = [], []
    for v in values:
        if cur and len(key) + 1 + len(" ".join(cur + [v])) > width:
            lines.append(f"{key}={' '.join(cur)}")
            cur = []
        cur.append(v)
    lines.append(f"{key}={' '.join(cur)}")
    return lines


def _unknown_to_libseccomp(names: set[str]) -> list[str]:
    """Names the host's libseccomp cannot resolve (systemd, built on it, would ignore them)."""
    try:
        from ..enforce.seccomp import _lib
        lib = _lib()
    except Exception:  # noqa: BLE001 - no libseccomp here: nothing to say
        return []
    return sorted(n for n in names if lib.seccomp_syscall_resolve_name(n.encode()) < 0
                  and lib.seccomp_syscall_resolve_name(n.encode()) > -10000)


_NS_TYPES = {"CLONE_NEWCGROUP": "cgroup", "CLONE_NEWIPC": "ipc", "CLONE_NEWNET": "net", "CLONE_NEWNS": "mnt",
             "CLONE_NEWPID": "pid", "CLONE_NEWUSER": "user", "CLONE_NEWUTS": "uts"}


def namespaces_used(facts: dict) -> list[str]:
    """systemd namespace type names the workload created or joined (clone/unshare/setns flags)."""
    from .. import constants

    bits = constants.group("clone")
    used = 0
    for arch_args in facts.get("args", {}).values():
        for sc in ("clone", "unshare", "setns"):
            for e in arch_args.get(sc, []):
                used |= int(e["values"][0])
    return sorted(t for flag, t in _NS_TYPES.items() if flag in bits and used & bits[flag])


def covered_groups(names: set[str], arch: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Groups whose every syscall (that exists on ``arch``) is allowed; and coverage of the others."""
    full, partial = [], {}
    for g, members in sorted(syscall_groups.groups().items()):
        here = {m for m in members if not m.startswith("@") and syscalls.exists(arch, m)}
        if not here:
            continue
        have = len(here & names)
        if have == len(here):
            full.append(g)
        elif have:
            partial[g] = (have, len(here))
    return full, partial


def render(profile: Any, options: ExportOptions, source: str = "") -> tuple[str, list[str]]:
    rules = profile.rules
    arch = options.arch or syscalls.host_arch()
    notes: list[str] = []
    names = set(rules.get("syscalls", {}).get(arch, []))
    argnames = sorted({n for r in rules.get("conditional", {}).get(arch, []) for n in r["names"]})
    names |= set(argnames)
    if "clone" in names and syscalls.exists(arch, "clone3"):
        names.add("clone3")
    names = {n for n in names if not n.startswith("#")}
    full, partial = covered_groups(names, arch)
    caps = sorted(rules.get("capabilities", []))
    non_root = bool(profile.runs) and all(int(r.get("uid", 0)) != 0 for r in profile.runs)
    fams = sorted(f for f in rules.get("network", {}).get("families", []) if f.startswith("AF_"))
    files = rules.get("files", {})
    rw = set()
    for p in files.get("write", []):
        if not p.startswith(_API_FS) and not _PROC_PID.match(p):
            rw.add(p)
    for p in files.get("create", []):
        d = os.path.dirname(p) or "/"
        if not d.startswith(_API_FS):
            rw.add(d)
    rw = {p for p in rw if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in rw)}
    lines = [
        f"# systemd drop-in generated by leastpriv{f' from {source}' if source else ''} "
        f"({len(profile.runs)} run(s))",
        "# Install as /etc/systemd/system/UNIT.service.d/leastpriv.conf, then: systemctl daemon-reload",
        f"# SystemCallFilter covers these systemd groups fully: {' '.join(full) or '(none)'}",
    ]
    if partial:
        lines.append("# and partly: " + " ".join(f"{g}({a}/{b})" for g, (a, b) in sorted(partial.items())))
    if argnames:
        lines.append(f"# systemd cannot check arguments: allowed whole here: {' '.join(argnames)}")
    if options.complain:
        lines.append("# --complain: systemd has no log-only filter for a drop-in; stage with `leastpriv run "
                     "--complain` and enforce here")
        notes.append("systemd: --complain has no systemd equivalent; the drop-in enforces (stage with leastpriv "
                     "run --complain)")
    unknown = _unknown_to_libseccomp(names) if arch == syscalls.host_arch() else []
    if unknown:
        lines.append(f"# this host's libseccomp does not know {' '.join(unknown)}: systemd here ignores them "
                     f"(the workload then gets EPERM for them)")
        notes.append(f"systemd: this host's libseccomp does not know {', '.join(unknown)}; systemd built with it "
                     f"ignores those names")
    lines += ["[Service]", "SystemCallArchitectures=native", "SystemCallErrorNumber=EPERM"]
    if rules.get("style") == "denylist":
        deny = rules.get("denylist", {}).get(arch, {})
        denied = sorted(n for n in deny.get("names", []) if n in syscalls.table(arch))
        # every line starts with "~": a later line without it would take names back out of the deny list
        lines += [line.replace("SystemCallFilter=", "SystemCallFilter=~", 1)
                  for line in _wrap("SystemCallFilter", denied)] if denied else []
        conds = sorted({n for r in deny.get("conditional", []) for n in r["names"]})
        if conds:
            notes.append(f"systemd: argument denials cannot be written for {', '.join(conds)}; namespaces and "
                         f"address families are restricted by RestrictNamespaces=/RestrictAddressFamilies=")
    else:
        lines += _wrap("SystemCallFilter", sorted(names))
    ns = namespaces_used(profile.facts)
    lines.append(f"RestrictNamespaces={' '.join(ns) if ns else 'yes'}")
    lines += [f"CapabilityBoundingSet={' '.join(caps)}"]
    if caps and non_root:
        lines.append(f"AmbientCapabilities={' '.join(caps)}")
    lines.append(f"NoNewPrivileges={'yes' if rules.get('no_new_privileges', True) else 'no'}")
    lines.append(f"RestrictAddressFamilies={' '.join(fams) if fams else 'none'}")
    if any(files.get(k) for k in ("read", "write", "exec", "create")):
        lines.append("ProtectSystem=strict")
        lines += _wrap("ReadWritePaths", [f"-{p}" for p in sorted(rw)]) if rw else []
    else:
        notes.append("systemd: the profile has no file facts: no file-system rules written")
    notes.append(f"SystemCallFilter covers fully: {', '.join(full) or 'no systemd group'}")
    return "\n".join(lines) + "\n", notes


@register
class SystemdExporter(Exporter):
    name = "systemd"
    description = "systemd [Service] drop-in: SystemCallFilter, capabilities, address families, ProtectSystem"
    suffix = ".conf"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        text, more = render(profile, options, str(options.extra.get("profile_path", "")))
        return ExportResult(text, tuple(notes + more))
