"""AppArmor: a profile from the learned capabilities, sockets, files and execs.

``#include <tunables/global>`` and ``<abstractions/base>``, an attachment on
the workload's executable (when the profile knows it), capability rules,
``network FAMILY TYPE`` rules from the sockets the workload made, file rules
with modes from what it did (r read, w write/create, m for shared objects it
maps, ix for programs it executed), and globbing the way aa-logprof offers it:

* /proc/<pid>, /proc/self, /proc/thread-self -> ``@{PROC}/@{pid}/...``
  (AppArmor sees the resolved pid);
* /home/<user>/... and /root/... -> ``@{HOME}/...``;
* /dev/pts/<n> -> ``/dev/pts/[0-9]*`` (the terminal differs from run to run);
* versioned shared objects (``libpcre2-8.so.0.11.2``) -> ``libpcre2-8.so*``;
* three or more files read in one directory of packaged code/data (/usr,
  /lib*, /opt; never /etc, /home, /var, /tmp) -> ``dir/*``; twenty or more
  read-only rules under a directory the workload listed -> ``dir/{,**}``.

``--complain`` writes ``flags=(complain)``. Locks (k) and links (l) are not
observed by the tracers, so they are never granted; ``a`` is not used because
the trace does not tell append from write.

:func:`path_rules` is shared with the Kubernetes AppArmorProfile exporter.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..kernel import constants
from ..policy import paths
from ..policy.landlock import globbable_dir
from ..policy.paths import PathFacts
from ..policy.pod_security import default_name
from ..policy.rules import Rules
from ..errors import UserError
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from .escape import expressible, expressible_files, for_comment

GLOB_MIN_FILES = 3
TREE_MIN_RULES = 20      # read-only rules under one listed directory -> dir/{,**}
_SO = re.compile(r"\.so(\.\d+)*$")
_PROC = re.compile(r"^/proc/(\d+|self|thread-self)(?=/|$)")
_HOME = re.compile(r"^(/home/[^/]+|/root)(?=/|$)")
_SO_VERSION = re.compile(r"^(.*\.so)(\.\d+)+$")
_SAFE = re.compile(r"^[A-Za-z0-9_./@{}*+:=~-]+$")   # no "," (it ends a rule), "#", space, quote
_SPECIAL = re.compile(r'([\[\]?*{}"^\\])')   # AppArmor glob characters in observed paths


def _escape(path: str) -> str:
    return _SPECIAL.sub(r"\\\1", path)


def glob_path(path: str) -> str:
    """One observed path -> its AppArmor form (escaped, per-process/user parts globbed)."""
    m = _PROC.match(path)
    if m:
        return "@{PROC}/@{pid}" + _escape(path[m.end():])
    m = _HOME.match(path)
    if m:
        rest = path[m.end():].lstrip("/")
        return "@{HOME}/" + _escape(rest) if rest else "@{HOME}/"
    if path.startswith("/proc/"):
        return "@{PROC}/" + _escape(path[len("/proc/"):])
    if re.match(r"^/dev/pts/\d+$", path):
        return "/dev/pts/[0-9]*"
    base = os.path.basename(path)
    m = _SO_VERSION.match(base)
    if m:
        return _escape(os.path.dirname(path)) + "/" + _escape(m.group(1)) + "*"
    return _escape(path)


def _quote(p: str) -> str:
    """An AppArmor path expression (already escaped by _escape/glob_path) as one token: quoted when it
    holds anything but plain characters (space, '#', ',' ...). Inside quotes AppArmor reads \\x as x."""
    return p if _SAFE.match(p) else '"' + p + '"'


@dataclass(frozen=True)
class FileRule:
    path: str      # AppArmor path expression
    modes: str     # in AppArmor order


_ORDER = "rwamklix"


def _modes(s: set[str]) -> str:
    out = "".join(c for c in "rwamkl" if c in s)
    if "ix" in s:
        out += "ix"
    return out


def path_rules(rules: Rules, attach: str | None = None, facts: PathFacts | None = None) -> list[FileRule]:
    """File rules from the profile's files, globbed (shared with k8s-apparmorprofile). ``facts``: what the
    paths are, as recorded when the profile was learned (policy/paths.py)."""
    facts = facts or PathFacts(None)
    files = rules.files
    perms: dict[str, set[str]] = {}

    def add(expr: str, *modes: str) -> None:
        perms.setdefault(expr, set()).update(modes)

    reads = sorted(set(files.read))
    plain: list[str] = []
    for p in reads:
        g = glob_path(p)
        if facts.is_dir(p):
            add(g.rstrip("/") + "/", "r")
        elif g != _escape(p) or not os.path.dirname(p):
            add(g, "r", *(["m"] if _SO.search(os.path.basename(p)) else []))
        else:
            plain.append(p)
    by_dir: dict[str, list[str]] = {}
    for p in plain:
        by_dir.setdefault(os.path.dirname(p), []).append(p)
    for d, ps in sorted(by_dir.items()):
        so = any(_SO.search(os.path.basename(p)) for p in ps)
        if len(ps) >= GLOB_MIN_FILES and globbable_dir(d):
            add(_escape(d) + "/*", "r", *(["m"] if so else []))
        else:
            for p in ps:
                add(glob_path(p), "r", *(["m"] if _SO.search(os.path.basename(p)) else []))
    _collapse_trees(perms, [p for p in reads if facts.is_dir(p)])
    for p in sorted(set(files.write) | set(files.create)):
        add(glob_path(p) + ("/" if facts.is_dir(p) else ""), "w")
    for o in rules.owned:   # created by the workload: it may create, write, remove beneath (no l/k)
        add(o.pattern + "/", "r", "w")
        add(o.pattern + "/**", "r", "w", *(["ix"] if "exec" in o.access else []))
    for pat in rules.patterns:
        acc = set(pat.access)
        add(pat.pattern, *(["r"] if acc & {"read", "exec"} else []), *(["w"] if acc & {"write", "create"} else []),
            *(["ix"] if "exec" in acc else []))
    for p in sorted(set(files.exec)):
        if attach and facts.realpath(p) == attach:
            add(glob_path(attach), "r", "m")
        else:
            add(glob_path(p), "r", "ix")
        interp = facts.interpreter(p)
        if interp:   # AppArmor sees the resolved path (/bin/sh -> /usr/bin/dash)
            add(glob_path(facts.realpath(interp)), "r", "m", "ix")
    return [FileRule(p, _modes(m)) for p, m in sorted(perms.items())]


def _collapse_trees(perms: dict[str, set[str]], listed_dirs: list[str]) -> None:
    """Many read-only rules under one directory the workload listed -> ``dir/{,**}`` (aa-logprof's ** glob)."""
    for d in sorted(listed_dirs, key=len):
        if not globbable_dir(d):
            continue
        prefix = _escape(d.rstrip("/")) + "/"
        if prefix not in perms:
            continue   # already collapsed into a parent
        under = [k for k, m in perms.items() if k.startswith(prefix) and m <= {"r", "m"}]
        if len(under) >= TREE_MIN_RULES:
            modes = set().union(*(perms.pop(k) for k in under))
            perms[prefix + "{,**}"] = modes


# the network domains apparmor_parser knows (AF_* without the prefix, lowercase)
AA_FAMILIES = frozenset("""unix inet ax25 ipx appletalk netrom bridge atmpvc x25 inet6 rose netbeui security key
netlink packet ash econet atmsvc rds sna irda pppox wanpipe llc ib mpls can tipc bluetooth iucv rxrpc isdn phonet
ieee802154 caif alg nfc vsock kcm qipcrtr smc xdp mctp""".split())


def network_rules(facts: Mapping[str, Any]) -> list[str]:
    """``FAMILY TYPE`` pairs from the socket()/socketpair() values seen (families AppArmor knows)."""
    out = set()
    for arch_args in facts.get("args", {}).values():
        for sc in ("socket", "socketpair"):
            for e in arch_args.get(sc, []):
                vals = e["values"]
                fam = constants.name_of("socket_family", vals[0]) or ""
                typ = constants.name_of("socket_type", vals[1] & 0xF) if len(vals) > 1 else None
                if not fam.startswith("AF_"):
                    continue
                family = fam[3:].lower()
                if family not in AA_FAMILIES:
                    continue
                kind = (typ or "").removeprefix("SOCK_").lower()
                out.add(f"{family} {kind}".strip() if kind in ("stream", "dgram", "seqpacket", "raw", "rdm",
                                                                 "packet") else family)
    return sorted(out)


def attachment(profile: Any) -> str | None:
    """The workload's executable (its real path, as recorded when learned), when the profile knows it.

    A container's command names a path inside its image: it is never looked up on this machine; the
    executable the kernel ran is the one exec the run recorded (e.g. /bin/sh -> /bin/busybox).
    """
    execs = profile.rules.files.exec
    facts = paths.of(profile)
    for run in getattr(profile, "runs", ()):
        cmd = run.get("command") or []
        if str(run.get("target", "")).startswith(("image:", "bundle:")):
            named = [e for e in execs if cmd and os.path.basename(e) == os.path.basename(cmd[0])]
            return (named or execs)[0] if len(named or execs) == 1 else None
        if cmd and cmd[0].startswith("/"):
            return facts.realpath(cmd[0])
        for e in execs:
            if cmd and os.path.basename(e) == os.path.basename(cmd[0]):
                return facts.realpath(e)
    return None




def render(profile: Any, name: str, *, complain: bool = False, attach: str | None = None,
           source: str = "") -> str:
    rules = profile.rules
    flags = ["complain"] if complain else []
    if not expressible(name):
        raise UserError(f"--name {for_comment(name)!r}: an AppArmor profile name cannot hold control characters")
    head = f"profile {_quote(_escape(name))}" + (f" {_quote(_escape(attach))}" if attach and expressible(attach)
                                                  else "")
    if flags:
        head += f" flags=({','.join(flags)})"
    lines = [
        f"# AppArmor profile generated by leastpriv{f' from {for_comment(source)}' if source else ''}",
        f"# {len(profile.runs)} run(s); a trace shows what ran, not what never will.",
        "abi <abi/3.0>,",
        "",
        "include <tunables/global>",
        "",
        head + " {",
        "  include <abstractions/base>",
    ]
    all_paths = rules.files.all_paths()
    if any(p == "/dev/tty" or p.startswith("/dev/pts/") for p in all_paths):
        lines.append("  include <abstractions/consoles>")
    lines.append("")
    caps = sorted(rules.capabilities)
    for c in caps:
        lines.append(f"  capability {c.removeprefix('CAP_').lower()},")
    if caps:
        lines.append("")
    net = network_rules(profile.facts)
    for n in net:
        lines.append(f"  network {n},")
    if net:
        lines.append("")
    for fr in path_rules(rules, attach, paths.of(profile)):
        lines.append(f"  {_quote(fr.path)} {fr.modes},")
    lines.append("}")
    return "\n".join(lines) + "\n"


@register
class AppArmorExporter(Exporter):
    name = "apparmor"
    description = "AppArmor profile (apparmor_parser; --complain for flags=(complain))"
    suffix = ""

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        profile, dropped = expressible_files(profile)   # names the program chose that this format cannot hold
        notes += dropped
        name = options.name or default_name(profile)
        attach = options.extra.get("attach") or attachment(profile)
        text = render(profile, name, complain=options.complain, attach=attach,
                      source=str(options.extra.get("profile_path", "")))
        if "abstractions/consoles" not in text:
            notes.append("the runs opened no terminal: a workload writing to a terminal it inherits needs "
                         "`include <abstractions/consoles>` (AppArmor revalidates inherited files at exec)")
        if not attach:
            notes.append("no attachment: the profile has no absolute path for the workload; load it and use it by "
                         f"name ({name})")
        notes.append(f"load with: apparmor_parser -r FILE; confine with: aa-exec -p {name} -- CMD")
        return ExportResult(text, tuple(notes))
