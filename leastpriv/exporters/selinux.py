"""SELinux: a CIL module in the shape udica writes, for running the workload as a container.

udica (containers/udica) turns a container's mounts, ports and capabilities
into a CIL block that inherits container-selinux's templates
(``/usr/share/udica/templates/*.cil``, from the container-selinux package).
This exporter writes the same block from what the trace saw::

    (block NAME
        (blockinherit container)                 ; base_container.cil: the domain NAME.process
        (blockinherit restricted_net_container)  ; net_container.cil: when it used TCP/UDP
        (allow process process ( capability ( chown net_bind_service )))
        (allow process http_port_t ( tcp_socket ( name_bind )))
        (allow process etc_t ( file ( getattr ioctl lock open read map )))
        ...)

* **files**: each path the profile read, wrote, created or executed is
  labelled by the target policy's file_contexts (selinux_policy.TargetPolicy);
  the rule grants that *type* the permissions of what was done (read: open
  read getattr ioctl lock map; write: + write append; create: create on the
  file and add_name/write on its directory; exec: the refpolicy
  exec_file_perms, and ``entrypoint`` on the workload's own program, which
  the runtime executes to enter the domain), and ``search`` on the types of the directories above it
  (path lookup needs it). A path marked ``<<none>>`` in file_contexts
  (``/tmp/...``) gets its directory's type: a new file takes it when no type
  transition applies. The class (file, dir, chr_file, lnk_file, ...) is read
  on this host; a path that does not exist here is a ``file``.
* **network**: ``name_bind`` for the TCP/UDP ports bound, ``name_connect``
  for the TCP ports connected to, on the port's type in the policy (first
  portcon that contains it, as the kernel picks).
* **capabilities**: the profile's capability set (``capability2`` for 32+).

A rule is granted on a *type*, so every file of that type is granted too:
that is SELinux's granularity (udica's too), wider than a path rule. Every
path from the profile is untrusted input: it reaches the module only inside
``;`` comments, with anything but printable characters escaped; types and
the module name are checked against CIL's identifier syntax, and what cannot
be expressed is left out with a note.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..kernel import constants
from ..errors import UserError
from ..policy import paths as pathfacts
from ..policy.rules import FileRules, PathPattern
from .apparmor import attachment   # the workload's executable, as the AppArmor profile attaches to it
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from .selinux_policy import TargetPolicy

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_GLOB = re.compile(r"[*?\[{]")
_PROC_SELF = re.compile(r"^/proc/(\d+|self|thread-self)(/|$)")
_SO = re.compile(r"\.so(\.\d+)*$")
TEMPLATES = "/usr/share/udica/templates"
MAX_PATHS_IN_COMMENT = 4

# permission sets (udica's perms.py where it has one; refpolicy's exec_file_perms for exec)
READ = {"dir": "getattr ioctl lock open read search", "file": "getattr ioctl lock map open read",
        "other": "getattr ioctl lock open read"}
WRITE = {"dir": "add_name getattr ioctl lock open read remove_name search write",
         "file": "append getattr ioctl lock open write", "other": "append getattr ioctl lock open write"}
CREATE = {"dir": "add_name create getattr open read search write", "file": "append create getattr open setattr write",
          "other": "create getattr open setattr"}
EXEC = "execute execute_no_trans getattr ioctl map open read"
SO_EXEC = "execute"            # a shared object is mmapped PROT_EXEC
ENTRYPOINT = "entrypoint"      # the first program: the runtime's exec into NAME.process needs it
PARENT_CREATE = "add_name getattr search write"
TRAVERSE = "search"
DIR_RW = "add_name create getattr ioctl lock open read remove_name rmdir search setattr write"   # udica dir_rw
FILE_RW = "append create getattr ioctl lock map open read rename setattr unlink write"           # udica file_rw
LINK = "getattr read"

GENERIC_TYPES = frozenset({"default_t", "file_t", "unlabeled_t"})   # what unlabelled files carry
_CLASS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "lnk_file", stat.S_IFCHR: "chr_file",
          stat.S_IFBLK: "blk_file", stat.S_IFIFO: "fifo_file", stat.S_IFSOCK: "sock_file"}


def comment(text: str) -> str:
    """Text safe inside a CIL ``;`` comment: one line, printable, backslash-escaped otherwise."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


@dataclass
class _Grant:
    perms: set[str] = field(default_factory=set)
    why: dict[str, list[str]] = field(default_factory=dict)   # what -> paths

    def add(self, perms: str, what: str, path: str) -> None:
        self.perms.update(perms.split())
        paths = self.why.setdefault(what, [])
        if path not in paths:
            paths.append(path)


@dataclass(frozen=True)
class Module:
    """The module's parts, before rendering (tests read these)."""

    name: str
    net: bool
    capabilities: tuple[tuple[str, tuple[str, ...]], ...]          # (class, perms)
    ports: tuple[tuple[str, str, str, str], ...]                    # (type, class, perm, why)
    files: tuple[tuple[str, str, tuple[str, ...], str], ...]        # (type, class, perms, why)
    notes: tuple[str, ...]
    complain: bool = False


def host_mode(path: str) -> int:
    """The kind of PATH on this host (lstat), 0 when it does not exist here."""
    try:
        return os.lstat(path).st_mode
    except (OSError, ValueError):
        return 0


def _class_of(mode: int) -> str:
    return _CLASS.get(stat.S_IFMT(mode), "file")


def _perms(table: Mapping[str, str], cls: str) -> str:
    return table.get(cls, table["other"])


def _literal_prefix(pattern: str) -> str:
    """The directory a glob pattern lives in (/var/cache/app/*.db -> /var/cache/app)."""
    m = _GLOB.search(pattern)
    head = pattern[:m.start()] if m else pattern
    return head.rsplit("/", 1)[0] or "/"


def _pattern_entries(items: Iterable[PathPattern], kind: str) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """The profile's ``patterns``/``owned`` rules (learner/patterns.py) as (access, pattern, kind, base,
    example paths)."""
    out = []
    for e in items:
        base = e.base or _literal_prefix(e.pattern)
        access = [a for a in e.access if a in ("read", "write", "create", "exec")]
        if kind == "owned":
            access = ["owned"]
        out += [(a, e.pattern, kind, base, e.paths) for a in sorted(set(access))]
    return out


def file_grants(files: FileRules, label: Callable[[str, int], str | None],
                mode_of: Callable[[str], int] = host_mode, patterns: Iterable[PathPattern] = (),
                owned: Iterable[PathPattern] = (),
                entry: str | None = None, realpath: Callable[[str], str] = os.path.realpath
                ) -> tuple[dict[tuple[str, str], _Grant], list[str]]:
    """{(type, class): grant} for the profile's files (literal paths), path patterns and owned directories
    (when the profile has them, learner/patterns.py: the type of the pattern's literal base directory and of
    its example paths); notes on what was left out and why."""
    grants: dict[tuple[str, str], _Grant] = {}
    notes: list[str] = []
    self_proc: list[str] = []
    genfs: list[str] = []
    refused: list[str] = []
    unlabelled: list[str] = []

    def grant(t: str, cls: str, perms: str, what: str, path: str) -> None:
        grants.setdefault((t, cls), _Grant()).add(perms, what, path)

    def typed(path: str, mode: int) -> tuple[str | None, str]:
        """The path's type, or its nearest labelled directory's (and how it was found)."""
        t = label(path, mode)
        if t:
            return t, ""
        d = path
        while d != "/":
            d = os.path.dirname(d)
            t = label(d, stat.S_IFDIR)
            if t:
                return t, f"labelled at creation: the type of {d}"
        return None, ""

    def traverse(path: str) -> None:
        d = os.path.dirname(path)
        while True:
            t, _ = typed(d, stat.S_IFDIR)
            if t:
                grant(t, "dir", TRAVERSE, "path lookup", d)
            if d == "/":
                break
            d = os.path.dirname(d)

    def listed(table: FileRules, access: str) -> list:
        return sorted(set(table.of(access)))

    def bad(path: str) -> bool:
        return not path.startswith("/") or "\0" in path or "/../" in path + "/" or "/./" in path + "/"

    entries = [(access, path, "path", path, ()) for access in ("read", "write", "create", "exec")
               for path in listed(files, access)]
    entries += _pattern_entries(patterns, "pattern") + _pattern_entries(owned, "owned")
    for access, path, kind, base, examples in entries:
        if kind != "path":
            if bad(base) or bad(path):
                refused.append(path)
                continue
            if base.startswith(("/proc/", "/sys/")) or base in ("/proc", "/sys"):
                genfs.append(path)
                continue
            t, how = typed(base, stat.S_IFDIR)
            if t is None:
                unlabelled.append(path)
                continue
            if kind == "owned":
                what = f"owned directory {path} (created by the workload: anything beneath it)"
                grant(t, "dir", DIR_RW, what, base)
                grant(t, "file", FILE_RW, what, base)
                pt, _ = typed(os.path.dirname(base), stat.S_IFDIR)
                if pt:
                    grant(pt, "dir", PARENT_CREATE, "create in this directory", os.path.dirname(base))
            else:
                what = f"{access} (pattern {path})"
                grant(t, "dir", READ["dir"], what, base)
                table = {"read": READ, "write": WRITE, "create": CREATE}.get(access)
                for ft in sorted({t} | {typed(x, 0)[0] for x in examples if not bad(x)} - {None}):
                    grant(ft, "file", _perms(table, "file") if table else EXEC, what, path)
                if access == "create":
                    grant(t, "dir", PARENT_CREATE, "create in this directory", base)
            traverse(base + "/x")
            continue
        if bad(path):
            refused.append(path)
            continue
        if _PROC_SELF.match(path):
            self_proc.append(path)
            continue
        if path == "/proc" or path.startswith(("/proc/", "/sys/")) or path == "/sys":
            genfs.append(path)
            continue
        target = path
        mode = mode_of(target)
        if stat.S_ISLNK(mode):   # the link is read, then what it points to
            lt, _ = typed(target, stat.S_IFLNK)
            if lt:
                grant(lt, "lnk_file", LINK, f"{access} (symbolic link)", path)
            target = realpath(target)
            mode = mode_of(target)
        cls = _class_of(mode) if mode else ("dir" if path.endswith("/") else "file")
        t, how = typed(target, mode)
        if t is None:
            unlabelled.append(path)
            continue
        what = access + (f" ({how})" if how else "")
        if access == "read":
            grant(t, cls, _perms(READ, cls), what, path)
            if cls == "file" and _SO.search(os.path.basename(target)):
                grant(t, cls, SO_EXEC, "shared object (mapped executable)", path)
        elif access == "write":
            grant(t, cls, _perms(WRITE, cls), what, path)
        elif access == "create":
            grant(t, cls, _perms(CREATE, cls), what, path)
            pt, _ = typed(os.path.dirname(target), stat.S_IFDIR)
            if pt:
                grant(pt, "dir", PARENT_CREATE, "create in this directory", os.path.dirname(target))
        else:
            grant(t, "file", EXEC, what, path)
            if entry and os.path.realpath(target) == entry:
                grant(t, "file", ENTRYPOINT, "the workload's program: the runtime enters the domain by executing it",
                      path)
        traverse(target)
    if self_proc:
        notes.append(f"{len(self_proc)} path(s) under /proc/<pid>, /proc/self: a process's own /proc entries carry "
                     "its domain's type, granted to every domain by the base policy; no rule written")
    if genfs:
        notes.append(f"{len(genfs)} path(s) under /proc or /sys are labelled by their filesystem (genfscon), not "
                     "file_contexts: /proc reads are granted by the container template (proc_type); left out: "
                     + ", ".join(comment(p) for p in genfs[:MAX_PATHS_IN_COMMENT])
                     + (" ..." if len(genfs) > MAX_PATHS_IN_COMMENT else ""))
    if unlabelled:
        notes.append(f"{len(unlabelled)} path(s) have no label in the policy's file_contexts, nor any directory "
                     "above them; left out: " + ", ".join(comment(p) for p in unlabelled[:MAX_PATHS_IN_COMMENT]))
    if refused:
        notes.append(f"{len(refused)} path(s) are not absolute, normalized paths; refused: "
                     + ", ".join(comment(p) for p in refused[:MAX_PATHS_IN_COMMENT]))
    return grants, notes


def capability_rules(caps: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """CAP_* -> ("capability", names) for 0-31 and ("capability2", names) for 32 and up."""
    by_class: dict[str, list[str]] = {}
    for c in sorted(set(caps)):
        try:
            nr = constants.value("capability", c)
        except (KeyError, ValueError):
            raise UserError(f"--format selinux: unknown capability {c!r} in the profile") from None
        by_class.setdefault("capability" if nr < 32 else "capability2", []).append(c.removeprefix("CAP_").lower())
    return tuple((k, tuple(v)) for k, v in sorted(by_class.items()))


def port_rules(profile: Any, port_type: Callable[[str, int], str | None]) -> tuple[list[tuple], list[str], bool]:
    """(type, class, perm, why) for the ports bound/connected; notes; whether TCP/UDP networking is used."""
    net_rules = profile.rules.network
    wanted: list[tuple[str, str, int]] = []   # (proto, op, port)
    for op in ("bind", "connect"):
        wanted += [("tcp", op, int(p)) for p in net_rules.tcp(op)]
    for e in profile.facts.get("network", []):   # UDP binds: the rules keep TCP only
        if e.get("proto") == "udp" and e.get("op") == "bind" and e.get("port") is not None:
            wanted.append(("udp", "bind", int(e["port"])))
    out: dict[tuple[str, str, str], list[int]] = {}
    notes: list[str] = []
    for proto, op, port in sorted(set(wanted)):
        if port == 0:
            continue   # an ephemeral port: no name_bind check
        t = port_type(proto, port)
        if t is None:
            notes.append(f"{proto} port {port}: no portcon in the policy covers it; {op} left out")
            continue
        out.setdefault((t, f"{proto}_socket", "name_bind" if op == "bind" else "name_connect"), []).append(port)
    rules = [(t, cls, perm, f"{perm} {', '.join(map(str, ports))}") for (t, cls, perm), ports in sorted(out.items())]
    families = set(net_rules.families)
    net = bool(wanted) or bool(families & {"AF_INET", "AF_INET6"})
    other = sorted(families - {"AF_INET", "AF_INET6", "AF_UNIX"})
    if other:
        notes.append(f"socket families {', '.join(other)}: no rule written; the container domain's policy decides")
    return rules, notes, net


def default_name(profile: Any) -> str:
    for run in getattr(profile, "runs", ()):
        cmd = run.get("command") or []
        if cmd:
            base = re.sub(r"[^A-Za-z0-9_]", "_", os.path.basename(str(cmd[0])))[:48].strip("_")
            if base:
                return f"leastpriv_{base}"
    return "leastpriv_container"


def build(profile: Any, name: str, policy: Any, *, complain: bool = False,
          mode_of: Callable[[str], int] = host_mode, realpath: Callable[[str], str] = os.path.realpath) -> Module:
    """The module's rules from the profile's rules and the target policy's labels (``policy.lookup``,
    ``policy.port_type``)."""
    if not NAME.match(name):
        raise UserError(f"--name: {name!r} is not a CIL name (a letter, then letters, digits or _; at most 64)")
    rules = profile.rules
    grants, notes = file_grants(rules.files, policy.lookup, mode_of, rules.patterns, rules.owned,
                                attachment(profile), realpath)
    ports, port_notes, net = port_rules(profile, policy.port_type)
    files = []
    for (t, cls), g in sorted(grants.items()):
        whys = []
        for what, paths in g.why.items():
            shown = ", ".join(paths[:MAX_PATHS_IN_COMMENT])
            more = f" (+{len(paths) - MAX_PATHS_IN_COMMENT} more)" if len(paths) > MAX_PATHS_IN_COMMENT else ""
            whys.append(f"{what}: {shown}{more}")
        files.append((t, cls, tuple(sorted(g.perms)), "; ".join(whys)))
    generic = sorted({t for t, _cls in grants} & GENERIC_TYPES)
    if generic:
        notes.append(f"granted {', '.join(generic)}: the policy has no label for some of the paths (see the "
                     "module's comments), and every file it knows nothing about carries that type; label them "
                     "instead (semanage fcontext -a -t TYPE 'DIR(/.*)?'; restorecon -R DIR) and export again")
    return Module(name=name, net=net, capabilities=capability_rules(rules.capabilities),
                  ports=tuple(ports), files=tuple(files), notes=tuple(notes + port_notes), complain=complain)


def usage(name: str, net: bool) -> list[str]:
    templates = [f"{TEMPLATES}/base_container.cil"] + ([f"{TEMPLATES}/net_container.cil"] if net else [])
    return [f"load:       semodule -i {name}.cil {' '.join(templates)}",
            f"podman:     podman run --security-opt label=type:{name}.process IMAGE",
            f"kubernetes: securityContext: {{seLinuxOptions: {{type: {name}.process}}}}"]


def render(module: Module, source: str = "", runs: int = 0) -> str:
    lines = [f"; SELinux CIL module for a container, in the shape udica writes; generated by leastpriv"
             + (f" from {comment(source)}" if source else ""),
             f"; {runs} run(s); a trace shows what ran, not what never will. Rules grant types: every file of a "
             "type is granted, not only the paths named in the comments.",
             *(f"; {line}" for line in usage(module.name, module.net)),
             f"(block {module.name}",
             "    (blockinherit container)"]
    if module.net:
        lines.append("    (blockinherit restricted_net_container)")
    if module.complain:
        lines.append("    ; complain mode: the domain is permissive, denials are logged (AVC), nothing is denied")
        lines.append("    (typepermissive process)")
    for cls, names in module.capabilities:
        lines.append("    ; the profile's capability set")
        lines.append(f"    (allow process process ( {cls} ( {' '.join(names)} )))")
    for t, cls, perm, why in module.ports:
        lines.append(f"    ; {comment(why)}")
        lines.append(f"    (allow process {t} ( {cls} ( {perm} )))")
    for t, cls, perms, why in module.files:
        lines.append(f"    ; {comment(why)}")
        lines.append(f"    (allow process {t} ( {cls} ( {' '.join(perms)} )))")
    lines.append(")")
    return "\n".join(lines) + "\n"


@register
class SELinuxExporter(Exporter):
    name = "selinux"
    description = "SELinux CIL module for a container (udica's shape; --complain: typepermissive)"
    suffix = ".cil"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        name = options.name or default_name(profile)
        with TargetPolicy(options.extra.get("selinux_policy") or None) as policy:
            facts = pathfacts.of(profile)   # what the paths are, as recorded when learned: not this host's files
            module = build(profile, name, policy, complain=options.complain, mode_of=facts.mode,
                           realpath=facts.realpath)
            enforcing_here = policy.kernel_enforces()
            root = policy.root
        text = render(module, str(options.extra.get("profile_path", "")), len(profile.runs))
        notes += list(module.notes)
        notes.append(f"labels and port types from the policy in {root}: build the module with the target's "
                     "policy (--selinux-policy DIR) when it differs (Fedora/RHEL 'targeted')")
        if any(str(r.get("target", "")).startswith(("bundle:", "image:")) for r in profile.runs):
            notes.append("learned inside a container: files of the image are labelled container_file_t, which the "
                         "container template grants; the file rules matter where a path is a bind mount of the host")
        notes += usage(name, module.net)
        if not enforcing_here:
            notes.append("this kernel has no SELinux: the module cannot be loaded or tried here (check it with "
                         "secilc against the policy); load it on an SELinux host")
        return ExportResult(text, tuple(notes))
