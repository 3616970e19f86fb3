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

* the sandboxing directives the profile earns (:func:`hardening`): PrivateDevices,
  ProtectClock, ProtectKernel*, ProtectControlGroups, ProtectHostname,
  PrivateMounts, PrivateNetwork, IPAddressDeny/Allow, PrivateTmp, PrivateUsers,
  ProtectHome, ProtectProc, ProcSubset, MemoryDenyWriteExecute, LockPersonality,
  RestrictRealtime, RestrictSUIDSGID, UMask -- each written with its reason as a
  comment, or left out with a comment saying what in the profile needs it.

``--complain``: systemd has no log-only seccomp mode in a drop-in; the
filter is written with ``SystemCallLog=`` (systemd 247+) listing nothing and a
comment -- use ``leastpriv run --complain`` to stage instead.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..kernel import groups, syscalls
from ..text import plural
from .base import ExportOptions, ExportResult, Exporter, prepare, register
from ..policy.landlock import _PROC_PID
from ..kernel import constants
from ..policy.libseccomp import library
from ..policy.rules import Denylist
from .escape import expressible, expressible_files, for_comment

_API_FS = ("/dev/", "/proc/", "/sys/")
_PLAIN = re.compile(r"^[A-Za-z0-9_./@+,:=~-]+$")
_NOT_NORMALIZED = re.compile(r"//|/\./|/\.\./|/\.{1,2}$")


def unit_path(path: str) -> str | None:
    """One path as a word of a unit file's path list (ReadWritePaths=), or None when none can say it.

    systemd splits these lists at whitespace, unquotes "..." (a backslash takes the next character
    as is), expands %-specifiers, and refuses relative or unnormalized paths. A newline or control
    character cannot be written at all.
    """
    if not expressible(path) or not path.startswith("-/") or _NOT_NORMALIZED.search(path[1:]):
        return None
    path = path.replace("%", "%%")
    if _PLAIN.match(path):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
        lib = library()
    except Exception:  # noqa: BLE001 - no libseccomp here: nothing to say
        return []
    return sorted(n for n in names if lib.seccomp_syscall_resolve_name(n.encode()) < 0
                  and lib.seccomp_syscall_resolve_name(n.encode()) > -10000)


_NS_TYPES = {"CLONE_NEWCGROUP": "cgroup", "CLONE_NEWIPC": "ipc", "CLONE_NEWNET": "net", "CLONE_NEWNS": "mnt",
             "CLONE_NEWPID": "pid", "CLONE_NEWUSER": "user", "CLONE_NEWUTS": "uts"}


def namespaces_used(facts: dict) -> list[str]:
    """systemd namespace type names the workload created or joined (clone/unshare/setns flags)."""

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
    for g, members in sorted(groups.groups().items()):
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
    names = set(rules.allowed(arch))
    argnames = sorted({n for r in rules.conditional_of(arch) for n in r.names})
    names |= set(argnames)
    if "clone" in names and syscalls.exists(arch, "clone3"):
        names.add("clone3")
    names = {n for n in names if not n.startswith("#")}
    full, partial = covered_groups(names, arch)
    caps = sorted(rules.capabilities)
    non_root = bool(profile.runs) and all(int(r.get("uid", 0)) != 0 for r in profile.runs)
    fams = sorted(f for f in rules.network.families if re.fullmatch(r"AF_[A-Z0-9_]+", f))
    files = rules.files
    rw = set()
    for p in files.write:
        if not p.startswith(_API_FS) and not _PROC_PID.match(p):
            rw.add(p)
    for p in files.create:
        d = os.path.dirname(p) or "/"
        if not d.startswith(_API_FS):
            rw.add(d)
    for o in list(rules.owned) + [p for p in rules.patterns if {"write", "create"} & set(p.access)]:
        if not o.base.startswith(_API_FS):   # the owned roots (and written patterns): their literal base
            rw.add(o.base)
    rw = {p for p in rw if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in rw)}
    lines = [
        f"# systemd drop-in generated by leastpriv{f' from {for_comment(source)}' if source else ''} "
        f"({plural(len(profile.runs), 'run')})",
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
    if rules.style == "denylist":
        deny = (rules.denylist or {}).get(arch, Denylist())
        denied = sorted(n for n in deny.names if n in syscalls.table(arch))
        # every line starts with "~": a later line without it would take names back out of the deny list
        lines += [line.replace("SystemCallFilter=", "SystemCallFilter=~", 1)
                  for line in _wrap("SystemCallFilter", denied)] if denied else []
        conds = sorted({n for r in deny.conditional for n in r.names})
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
    lines.append(f"NoNewPrivileges={'yes' if rules.no_new_privileges else 'no'}")
    lines.append(f"RestrictAddressFamilies={' '.join(fams) if fams else 'none'}")
    if files.all_paths():
        lines.append("ProtectSystem=strict")
        words = []
        for p in sorted(rw):
            w = unit_path(f"-{p}")
            if w is None:
                notes.append(f"systemd: ReadWritePaths cannot express {for_comment(p)} (relative, unnormalized or "
                             "a control character): left out")
            else:
                words.append(w)
        lines += _wrap("ReadWritePaths", words) if words else []
    else:
        notes.append("systemd: the profile has no file facts: no file-system rules written")
    if profile.facts.get("files"):
        lines += hardening_lines(hardening(profile, names))
    else:
        lines.append("# the profile has no file facts (learned without them): no sandboxing directive is decided")
    notes.append(f"SystemCallFilter covers fully: {', '.join(full) or 'no systemd group'}")
    return "\n".join(lines) + "\n", notes


@register
class SystemdExporter(Exporter):
    name = "systemd"
    description = "systemd [Service] drop-in: SystemCallFilter, capabilities, address families, ProtectSystem"
    suffix = ".conf"

    def export(self, profile: Any, options: ExportOptions) -> ExportResult:
        profile, options, notes = prepare(profile, options)
        profile, dropped = expressible_files(profile)   # names the program chose that this format cannot hold
        notes += dropped
        text, more = render(profile, options, str(options.extra.get("profile_path", "")))
        return ExportResult(text, tuple(notes + more))


# ------------------------------------------------------------------ sandboxing directives decided from the profile
#
# Each function below looks at what the workload did (the profile's facts and the
# syscalls its filter allows) and returns the directives it earns, each with the
# reason, or no directive and the reason it is left out. A directive is written
# only when the profile shows the workload does not need what it takes away.

@dataclass(frozen=True)
class Directive:
    """One drop-in line (``key=value``; value None: not written) and why."""

    key: str
    value: str | None
    why: str


@dataclass(frozen=True)
class _Seen:
    """What the hardening decisions read from a profile."""

    names: frozenset[str]                 # syscalls the filter allows (native ABI)
    caps: frozenset[str]
    files: Mapping[str, frozenset[str]]   # path -> accesses (read/write/exec/create)
    args: Mapping[str, list]              # syscall -> recorded value tuples (all ABIs)
    families: frozenset[str]
    endpoints: tuple[Mapping, ...]        # bind/connect facts


def _seen(profile: Any, names: set[str]) -> _Seen:
    args: dict[str, list] = {}
    for arch_args in profile.facts.get("args", {}).values():
        for sc, entries in arch_args.items():
            args.setdefault(sc, []).extend(tuple(e["values"]) for e in entries)
    files = {p: frozenset(e.get("access", ())) for p, e in profile.facts.get("files", {}).items()}
    fams = frozenset(profile.rules.network.families)
    return _Seen(frozenset(names), frozenset(profile.rules.capabilities), files, args, fams,
                 tuple(profile.facts.get("network", [])))


def _under(path: str, *roots: str) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _paths(s: _Seen, roots: tuple[str, ...], access: tuple[str, ...] = ("read", "write", "exec", "create")) -> list[str]:
    return sorted(p for p, acc in s.files.items() if _under(p, *roots) and acc & set(access))


def _first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _blocked(key: str, reasons: list[str]) -> Directive:
    return Directive(key, None, "; ".join(reasons))


# /dev entries PrivateDevices= keeps (its private /dev), and entries of /dev that are not devices
_PSEUDO_DEV = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx")
_NOT_DEV = ("/dev/shm", "/dev/mqueue", "/dev/hugepages", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr",
            "/dev/log", "/dev/pts")
# DevicePolicy=closed allows these without a DeviceAllow= line
_CLOSED_DEV = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _devices(s: _Seen) -> list[Directive]:
    real = [p for p in s.files if p.startswith("/dev/") and not _under(p, *_PSEUDO_DEV, *_NOT_DEV)]
    caps = sorted(s.caps & {"CAP_MKNOD", "CAP_SYS_RAWIO"})
    rawio = sorted(s.names & {"ioperm", "iopl", "pciconfig_read", "pciconfig_write", "pciconfig_iobase"})
    if not real and not caps and not rawio:
        return [Directive("PrivateDevices", "yes", "opened no device but the pseudo devices a private /dev keeps "
                          "(null, zero, full, random, urandom, tty, ptmx, pts)")]
    why = [f"opened devices {_first(sorted(real))}"] if real else []
    why += [f"needs {', '.join(caps)}"] if caps else []
    why += [f"called {', '.join(rawio)}"] if rawio else []
    out = [_blocked("PrivateDevices", why)]
    allow = []
    for p in sorted(s.files):
        if not p.startswith("/dev/") or _under(p, *_CLOSED_DEV, *(d for d in _NOT_DEV if d != "/dev/pts")):
            continue
        acc = s.files[p]
        mode = ("r" if acc & {"read", "exec"} else "") + ("w" if acc & {"write", "create"} else "")
        allow.append(("char-pts" if _under(p, "/dev/pts") else p, mode or "r"))
    out.append(Directive("DevicePolicy", "closed", "only the devices it opened (and null, zero, full, random, "
                         "urandom, which closed keeps)"))
    merged: dict[str, set[str]] = {}
    for dev, mode in allow:
        merged.setdefault(dev, set()).update(mode)
    for dev, modes in sorted(merged.items()):
        out.append(Directive("DeviceAllow", f"{dev} {''.join(m for m in 'rw' if m in modes)}",
                             f"opened {dev} for {'read and write' if len(modes) == 2 else 'read' if 'r' in modes else 'write'}"))
    return out


_CLOCK_SET = {"clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex", "settimeofday", "stime"}


def _clock(s: _Seen) -> Directive:
    why = []
    if s.names & _CLOCK_SET:
        why.append(f"calls {', '.join(sorted(s.names & _CLOCK_SET))} (reads or sets the clock's state)")
    if s.caps & {"CAP_SYS_TIME", "CAP_WAKE_ALARM"}:
        why.append(f"needs {', '.join(sorted(s.caps & {'CAP_SYS_TIME', 'CAP_WAKE_ALARM'}))}")
    rtc = [p for p in s.files if p.startswith("/dev/rtc")]
    if rtc:
        why.append(f"opened {_first(sorted(rtc))}")
    if why:
        return _blocked("ProtectClock", why)
    return Directive("ProtectClock", "yes", "never set or adjusted the clock (no clock_settime, clock_adjtime, "
                     "adjtimex, settimeofday; no CAP_SYS_TIME, /dev/rtc)")


def _kernel_logs(s: _Seen) -> Directive:
    why = [f"opened {p}" for p in sorted(s.files) if p in ("/dev/kmsg", "/proc/kmsg")]
    why += ["calls syslog(2)"] if "syslog" in s.names else []
    why += ["needs CAP_SYSLOG"] if "CAP_SYSLOG" in s.caps else []
    if why:
        return _blocked("ProtectKernelLogs", why)
    return Directive("ProtectKernelLogs", "yes", "never read the kernel log (no /dev/kmsg, /proc/kmsg, syslog(2))")


_MODULE_CALLS = {"init_module", "finit_module", "delete_module"}


def _kernel_modules(s: _Seen) -> Directive:
    why = [f"calls {', '.join(sorted(s.names & _MODULE_CALLS))}"] if s.names & _MODULE_CALLS else []
    why += ["needs CAP_SYS_MODULE"] if "CAP_SYS_MODULE" in s.caps else []
    mods = _paths(s, ("/lib/modules", "/usr/lib/modules"))
    why += [f"reads {_first(mods)}"] if mods else []
    if why:
        return _blocked("ProtectKernelModules", why)
    return Directive("ProtectKernelModules", "yes", "never loaded a module nor read /usr/lib/modules")


# what ProtectKernelTunables= makes read-only (systemd's namespace.c) and what it hides
_TUNABLES_RO = ("/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                "/proc/latency_stats", "/proc/mtrr", "/proc/scsi", "/proc/sys", "/proc/sysrq-trigger",
                "/proc/timer_stats", "/sys")
_TUNABLES_HIDDEN = ("/proc/kallsyms", "/proc/kcore")
_CGROUP = ("/sys/fs/cgroup",)


def _kernel_tunables(s: _Seen) -> Directive:
    written = [p for p in _paths(s, _TUNABLES_RO, ("write", "create")) if not _under(p, *_CGROUP, "/sys/fs/selinux")]
    hidden = _paths(s, _TUNABLES_HIDDEN)
    why = [f"writes {_first(written)}"] if written else []
    why += [f"reads {_first(hidden)}"] if hidden else []
    why += ["calls _sysctl"] if "_sysctl" in s.names else []
    if why:
        return _blocked("ProtectKernelTunables", why)
    return Directive("ProtectKernelTunables", "yes", "wrote nothing under /proc/sys or /sys, read no /proc/kallsyms")


def _control_groups(s: _Seen) -> Directive:
    written = _paths(s, _CGROUP, ("write", "create"))
    if written:
        return _blocked("ProtectControlGroups", [f"writes {_first(written)}"])
    return Directive("ProtectControlGroups", "yes", "wrote nothing under /sys/fs/cgroup")


def _hostname(s: _Seen) -> Directive:
    calls = sorted(s.names & {"sethostname", "setdomainname"})
    written = _paths(s, ("/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname"), ("write",))
    if calls or written:
        return _blocked("ProtectHostname", [f"calls {', '.join(calls)}"] if calls else [f"writes {_first(written)}"])
    return Directive("ProtectHostname", "yes", "never set the host or domain name")


_MOUNT_CALLS = {"mount", "umount", "umount2", "move_mount", "fsmount", "fsopen", "fsconfig", "fspick", "open_tree",
                "mount_setattr", "pivot_root"}


def _mounts(s: _Seen) -> Directive:
    calls = sorted(s.names & _MOUNT_CALLS)
    if calls:
        return _blocked("PrivateMounts", [f"calls {', '.join(calls)}: its mounts may be meant for the host"])
    return Directive("PrivateMounts", "yes", "mounted nothing")


def _is_loopback(addr: str) -> bool:
    import ipaddress
    try:
        a = ipaddress.ip_address(addr)
    except ValueError:
        return False
    mapped = getattr(a, "ipv4_mapped", None)
    return (mapped or a).is_loopback


def _is_any(addr: str) -> bool:
    return addr in ("0.0.0.0", "::", "::ffff:0.0.0.0")


def _network(s: _Seen) -> list[Directive]:
    inet = sorted(f for f in s.families if f != "AF_UNIX")
    abstract = sorted({e["address"] for e in s.endpoints if e.get("family") == "AF_UNIX"
                       and str(e.get("address", "")).startswith("@")})
    out = []
    if inet or abstract:
        why = [f"creates {', '.join(inet)} sockets"] if inet else []
        why += [f"uses abstract unix sockets {_first(abstract)} (they live in the network namespace)"] if abstract else []
        out.append(_blocked("PrivateNetwork", why))
    else:
        out.append(Directive("PrivateNetwork", "yes", "no socket but AF_UNIX on paths (or none): loopback-only "
                             "network namespace"))
    ip_fams = {"AF_INET", "AF_INET6"} & set(inet)
    if not ip_fams:
        out.append(Directive("IPAddressDeny", "any", "no AF_INET/AF_INET6 socket: no IP traffic to allow"))
        return out
    ips = [e for e in s.endpoints if e.get("family") in ("AF_INET", "AF_INET6")]
    wild = sorted({f"{e['address']}:{e.get('port')}" for e in ips if e["op"] == "bind" and _is_any(e["address"])})
    public_bind = sorted({f"{e['address']}:{e.get('port')}" for e in ips if e["op"] == "bind"
                          and not _is_any(e["address"]) and not _is_loopback(e["address"])})
    sendto = sorted(s.names & {"sendto", "sendmsg", "sendmmsg"})
    dgram = any(len(v) > 1 and (v[1] & 0xF) in (2, 3) for sc in ("socket",) for v in s.args.get(sc, [])
                if len(v) > 0 and v[0] in (2, 10))
    if wild or public_bind:
        out.append(_blocked("IPAddressDeny", [f"listens on {_first(wild + public_bind)}: the peers it serves are "
                                              "not in the profile"]))
        return out
    if dgram and sendto:
        out.append(_blocked("IPAddressDeny", [f"sends datagrams ({', '.join(sendto)}) whose destinations the trace "
                                              "does not record"]))
        return out
    if not ips:
        out.append(_blocked("IPAddressDeny", [f"creates {', '.join(sorted(ip_fams))} sockets but no bind or connect "
                                              "address was recorded"]))
        return out
    out.append(Directive("IPAddressDeny", "any", "IP traffic only with the addresses it bound or connected to"))
    local = any(_is_loopback(e["address"]) for e in ips)
    addrs = sorted({e["address"] for e in ips if not _is_loopback(e["address"])})
    if local:
        out.append(Directive("IPAddressAllow", "localhost", "bound or connected to a loopback address"))
    for a in addrs:
        out.append(Directive("IPAddressAllow", a, "connected to it in the runs (a name that resolves elsewhere "
                             "next time is refused: widen to a prefix if so)"))
    return out


_TMP = ("/tmp", "/var/tmp")


def _tmp(s: _Seen) -> Directive:
    created = {p for p, acc in s.files.items() if "create" in acc}
    unix = {e["address"] for e in s.endpoints if e.get("family") == "AF_UNIX"}
    foreign = []
    for p in sorted(set(s.files) | unix):
        if p in _TMP or not _under(p, *_TMP):
            continue
        parts = p.split("/")
        own = any("/".join(parts[:i]) in created for i in range(3, len(parts) + 1))
        if not own:
            foreign.append(p)
    if foreign:
        return _blocked("PrivateTmp", [f"uses {_first(foreign)} in the shared /tmp, which it did not create"])
    return Directive("PrivateTmp", "yes", "used only files it created in /tmp and /var/tmp (or none)")


_ID_CALLS = {"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
             "setgroups", "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32",
             "setfsuid32", "setfsgid32", "setgroups32", "chown", "fchown", "lchown", "fchownat", "chown32",
             "fchown32", "lchown32"}


def _users(s: _Seen) -> Directive:
    why = [f"needs {', '.join(sorted(s.caps))} (a user namespace leaves no capability on the host)"] if s.caps else []
    ids = sorted(s.names & _ID_CALLS)
    why += [f"calls {', '.join(ids)} (other users are unmapped in a user namespace)"] if ids else []
    if why:
        return _blocked("PrivateUsers", why)
    return Directive("PrivateUsers", "yes", "needs no capability and never changed user, group or owner")


_HOME = ("/home", "/root", "/run/user")


def _home(s: _Seen) -> Directive:
    written = _paths(s, _HOME, ("write", "create"))
    if written:
        return _blocked("ProtectHome", [f"writes {_first(written)}"])
    read = _paths(s, _HOME)
    if read:
        return Directive("ProtectHome", "read-only", f"only reads {_first(read)}")
    return Directive("ProtectHome", "yes", "never touched /home, /root or /run/user")


_PID_DIR = re.compile(r"^/proc/(\d+|self|thread-self)(/|$)")


def _proc(s: _Seen) -> list[Directive]:
    out = []
    procs = [p for p in s.files if _under(p, "/proc")]
    if "/proc" in s.files:
        out.append(_blocked("ProtectProc", ["lists /proc: it looks at other processes"]))
    else:
        out.append(Directive("ProtectProc", "invisible", "never listed /proc: other users' processes can stay "
                             "hidden"))
    other = sorted(p for p in procs if p != "/proc" and not _PID_DIR.match(p))
    if other:
        out.append(_blocked("ProcSubset", [f"reads {_first(other)} (not a process's own /proc entry)"]))
    else:
        out.append(Directive("ProcSubset", "pid", "read no /proc file but processes' own /proc/PID entries"))
    return out


def _wx(s: _Seen) -> Directive:
    prot_w, prot_x = 2, 4
    why = []
    for sc in ("mmap", "mmap2"):
        if sc in s.names and not s.args.get(sc):
            why.append(f"{sc}'s protection argument was not recorded")
        if any(v[0] & prot_w and v[0] & prot_x for v in s.args.get(sc, []) if v):
            why.append(f"maps memory writable and executable ({sc} PROT_WRITE|PROT_EXEC)")
    for sc in ("mprotect", "pkey_mprotect"):
        if sc in s.names and not s.args.get(sc):
            why.append(f"{sc}'s protection argument was not recorded")
        if any(v[0] & prot_x for v in s.args.get(sc, []) if v):
            why.append(f"makes memory executable ({sc} PROT_EXEC; systemd refuses any)")
    if "shmat" in s.names:
        why.append("calls shmat (its SHM_EXEC flag is not recorded)")
    if why:
        return _blocked("MemoryDenyWriteExecute", why)
    return Directive("MemoryDenyWriteExecute", "yes", "never mapped memory writable and executable, never "
                     "mprotect()ed to PROT_EXEC")


def _personality(s: _Seen) -> Directive:
    if "personality" not in s.names:
        return Directive("LockPersonality", "yes", "never called personality(2)")
    vals = {v[0] for v in s.args.get("personality", []) if v}
    if not s.args.get("personality"):
        return _blocked("LockPersonality", ["calls personality(2); its argument was not recorded"])
    other = sorted(v for v in vals if v not in (0, 0xFFFFFFFF))
    if other:
        return _blocked("LockPersonality", ["sets personality " + ", ".join(constants.describe("personality", v)
                                                                          for v in other)])
    return Directive("LockPersonality", "yes", "personality(2) only queried or kept at PER_LINUX")


def _realtime(s: _Seen) -> Directive:
    calls = sorted(s.names & {"sched_setscheduler", "sched_setattr"})
    if calls:
        return _blocked("RestrictRealtime", [f"calls {', '.join(calls)} (its policy argument is not recorded)"])
    return Directive("RestrictRealtime", "yes", "never changed its scheduling policy")


_CHMOD = {"chmod", "fchmod", "fchmodat", "fchmodat2"}


def _suid(s: _Seen) -> Directive:
    calls = sorted(s.names & _CHMOD)
    if calls:
        return _blocked("RestrictSUIDSGID", [f"calls {', '.join(calls)} (the mode is not recorded: it may set "
                                             "set-user-ID bits)"])
    return Directive("RestrictSUIDSGID", "yes", "never chmod()ed; a file created with a set-user-ID mode would "
                     "be refused (open/mkdir modes are not recorded)")


def _umask(s: _Seen) -> Directive:
    created = sorted(p for p, acc in s.files.items() if "create" in acc)
    if not created:
        return Directive("UMask", "0077", "created no file")
    return Directive("UMask", "0027", f"creates {_first(created)}: group keeps read, others lose it (use 0022 if "
                     "other users must read them)")


def hardening(profile: Any, names: set[str]) -> list[Directive]:
    """The sandboxing directives this profile earns, and those it does not (value None), each with its reason."""
    s = _seen(profile, names)
    out: list[Directive] = []
    out += _devices(s)
    out += [_clock(s), _kernel_logs(s), _kernel_modules(s), _kernel_tunables(s), _control_groups(s),
            _hostname(s), _mounts(s)]
    out += _network(s)
    out += [_tmp(s), _users(s), _home(s)]
    out += _proc(s)
    out += [_wx(s), _personality(s), _realtime(s), _suid(s), _umask(s)]
    return out


def hardening_lines(directives: list[Directive]) -> list[str]:
    """Each directive with its reason as a comment; left-out ones as a comment only."""
    lines = []
    for d in directives:
        if d.value is None:
            lines.append(f"# {d.key}= not set: {d.why}")
        else:
            lines.append(f"# {d.why}")
            lines.append(f"{d.key}={d.value}")
    return lines
