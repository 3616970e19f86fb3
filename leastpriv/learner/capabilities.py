"""The minimal capability set, from kernel checks or inferred from syscalls. Pure functions.

Two sources, never mixed up:

* **kernel checks** (eBPF, ``capability:cap_capable``): a capability is
  *needed* when a check for it was granted and audited. Checks made with
  CAP_OPT_NOAUDIT are the kernel asking "could I?" (e.g. overcommit
  accounting, ``ptrace_may_access`` probes): they are not needs. Denied
  audited checks are reported as *wanted* (the workload asked and ran
  without it), not added.
* **inference** (ptrace recordings, which see no checks): deduced from the
  syscalls, their arguments and results (bind below 1024 ->
  CAP_NET_BIND_SERVICE, raw/packet sockets -> CAP_NET_RAW, chown ->
  CAP_CHOWN, setuid/setgid, mount -> CAP_SYS_ADMIN, ...). Every inferred
  capability carries ``inferred: true`` and its reasons; a call whose every
  observed result was EPERM counts as *denied*, not needed.

Inference runs in ``aggregate.facts_of`` for recordings without kernel
checks, so a profile's facts show inferred capabilities with their reasons
just like observed ones.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..kernel import constants
from ..policy.risks import DOCKER_DEFAULT_CAPS

# syscall -> (capability, reason). Calls that need a capability only in some
# cases say so in the reason; the set errs towards listing them (a reviewer
# can drop one; a missing one breaks the workload).
SYSCALL_CAPS: dict[str, tuple[str, str]] = {}


def _add(names: str, cap: str, reason: str) -> None:
    for n in names.split():
        SYSCALL_CAPS[n] = (cap, reason)


_add("chown fchown lchown fchownat chown32 fchown32 lchown32", "CAP_CHOWN",
     "{sc} succeeded (needed to give a file away or to change its group to one the user is not in; "
     "the trace cannot tell which)")
_add("setuid setreuid setresuid setfsuid setuid32 setreuid32 setresuid32 setfsuid32", "CAP_SETUID",
     "{sc} succeeded (needed to switch to another user id)")
_add("setgid setregid setresgid setfsgid setgroups setgid32 setregid32 setresgid32 setfsgid32 setgroups32",
     "CAP_SETGID", "{sc} succeeded (needed to switch group ids)")
_add("mount umount umount2 pivot_root fsopen fsmount fsconfig fspick move_mount open_tree mount_setattr "
     "sethostname setdomainname swapon swapoff quotactl quotactl_fd fanotify_init lookup_dcookie",
     "CAP_SYS_ADMIN", "{sc} succeeded")
_add("chroot", "CAP_SYS_CHROOT", "{sc} succeeded")
_add("mknod mknodat", "CAP_MKNOD", "{sc} succeeded (needed for device nodes; FIFOs and sockets need no capability)")
_add("settimeofday clock_settime clock_settime64 stime clock_adjtime clock_adjtime64", "CAP_SYS_TIME",
     "{sc} succeeded")
_add("reboot kexec_load kexec_file_load", "CAP_SYS_BOOT", "{sc} succeeded")
_add("init_module finit_module delete_module", "CAP_SYS_MODULE", "{sc} succeeded")
_add("iopl ioperm", "CAP_SYS_RAWIO", "{sc} succeeded")
_add("acct", "CAP_SYS_PACCT", "{sc} succeeded")
_add("bpf", "CAP_BPF", "{sc} succeeded (CAP_SYS_ADMIN before Linux 5.8; some program types need more)")
_add("perf_event_open", "CAP_PERFMON", "{sc} succeeded (needed unless kernel.perf_event_paranoid allows it)")
_add("syslog", "CAP_SYSLOG", "{sc} succeeded (reading the kernel log needs it when dmesg_restrict=1)")
_add("capset", "CAP_SETPCAP", "{sc} succeeded (needed to add capabilities to the inheritable set)")
_add("vhangup", "CAP_SYS_TTY_CONFIG", "{sc} succeeded")
_add("open_by_handle_at", "CAP_DAC_READ_SEARCH", "{sc} succeeded")

DENIAL_ERRNOS = ("EPERM", "EACCES")


def _entry(reasons: list[str], syscalls: list[str], granted: int, denied: int) -> dict:
    return {"granted": granted, "denied": denied, "audited": granted + denied, "noaudit": 0, "needed": granted,
            "syscalls": sorted(set(syscalls)), "exes": [], "inferred": True, "reasons": sorted(set(reasons)),
            "runs": 1}


def _merge(out: dict, cap: str, reason: str, sc: str, granted: int, denied: int) -> None:
    e = out.get(cap)
    if e is None:
        out[cap] = _entry([reason], [sc] if sc else [], granted, denied)
        return
    e["granted"] += granted
    e["denied"] += denied
    e["audited"] += granted + denied
    e["needed"] += granted
    e["reasons"] = sorted(set(e["reasons"]) | {reason})
    if sc:
        e["syscalls"] = sorted(set(e["syscalls"]) | {sc})


def _outcome(stat: Mapping) -> tuple[int, int]:
    """(calls that succeeded or whose result is unknown, calls denied with EPERM/EACCES)."""
    count, results, ok = int(stat.get("count", 0)), int(stat.get("results", 0)), int(stat.get("ok", 0))
    denied = sum(int(stat.get("errnos", {}).get(e, 0)) for e in DENIAL_ERRNOS)
    unknown = max(count - results, 0)
    return ok + unknown, denied


def infer(facts: Mapping, uid: int = 0) -> dict[str, dict]:
    """Capabilities deduced from one recording's facts (profile-shaped, see aggregate.facts_of)."""
    out: dict[str, dict] = {}
    who = "" if uid == 0 else f"; the run was uid {uid}, so it may have needed none"
    for arch, table in sorted(facts.get("syscalls", {}).items()):
        for sc, stat in sorted(table.items()):
            if sc in SYSCALL_CAPS:
                cap, reason = SYSCALL_CAPS[sc]
                granted, denied = _outcome(stat)
                if granted or denied:
                    _merge(out, cap, reason.format(sc=sc) + (who if granted else ""), sc, granted,
                           denied if not granted else 0)
        args = facts.get("args", {}).get(arch, {})
        packet = constants.group("socket_family").get("AF_PACKET")
        inet = {constants.group("socket_family").get("AF_INET"), constants.group("socket_family").get("AF_INET6")}
        raw_types = {constants.value("socket_type", "SOCK_RAW"), constants.value("socket_type", "SOCK_PACKET")}
        for e in args.get("socket", []):
            dom, typ = int(e["values"][0]), int(e["values"][1]) & 0xF
            if dom == packet or (dom in inet and typ in raw_types):
                what = constants.describe("socket_family", dom) + ", " + constants.describe("socket_type", typ)
                _merge(out, "CAP_NET_RAW", f"socket({what}) (packet and raw sockets need CAP_NET_RAW)",
                       "socket", int(e.get("count", 1)), 0)
        ns_admin = 0
        g = constants.group("clone")
        for n in constants.CLONE_NAMESPACES:
            if n != "CLONE_NEWUSER":
                ns_admin |= g.get(n, 0)
        for sc in ("unshare", "clone", "setns"):
            for e in args.get(sc, []):
                v = int(e["values"][0])
                bits = v & ns_admin & (~0xFF if sc == "clone" else ~0)
                if bits and not v & g["CLONE_NEWUSER"] and (sc != "setns" or v):
                    _merge(out, "CAP_SYS_ADMIN",
                           f"{sc}({constants.describe('clone', bits)}) without a new user namespace", sc,
                           int(e.get("count", 1)), 0)
    for e in facts.get("network", []):
        port = e.get("port")
        if e.get("op") == "bind" and e.get("family") in ("AF_INET", "AF_INET6") and port and 0 < port < 1024:
            _merge(out, "CAP_NET_BIND_SERVICE",
                   f"bind to port {port} (below 1024, unless net.ipv4.ip_unprivileged_port_start is lower)",
                   "bind", 1, 0)
    return out


def needed(entry: Mapping) -> bool:
    """A capability entry (profile facts) is a need: granted and audited, or inferred from a success."""
    if "needed" in entry:
        return int(entry["needed"]) > 0
    # entries written before "needed" existed
    return int(entry.get("granted", 0)) > 0 and (bool(entry.get("inferred")) or int(entry.get("audited", 0)) > 0)


def capability_set(facts: Mapping) -> list[str]:
    """The minimal capability set the facts support, sorted."""
    return sorted(c for c, e in facts.get("capabilities", {}).items() if needed(e))


def wanted_not_granted(facts: Mapping) -> list[str]:
    """Capabilities the workload asked for and was refused (it ran without them)."""
    return sorted(c for c, e in facts.get("capabilities", {}).items()
                  if not needed(e) and int(e.get("denied", 0)) > 0 and int(e.get("audited", 0)) > 0)


def docker_defaults_unused(caps: list[str] | set[str]) -> list[str]:
    """Docker's 14 default capabilities this workload never needed (drop them)."""
    return sorted(set(DOCKER_DEFAULT_CAPS) - set(caps))


def explain(facts: Mapping) -> list[dict]:
    """One row per capability in the facts: cap, needed, how known, reasons."""
    rows = []
    for cap, e in sorted(facts.get("capabilities", {}).items()):
        rows.append({
            "cap": cap, "needed": needed(e), "inferred": bool(e.get("inferred")),
            "granted": int(e.get("granted", 0)), "denied": int(e.get("denied", 0)),
            "noaudit": int(e.get("noaudit", 0)), "syscalls": list(e.get("syscalls", [])),
            "reasons": list(e.get("reasons", [])),
            "how": ("inferred: " + "; ".join(e.get("reasons", []))) if e.get("inferred") else
                   ("kernel check granted and audited" if needed(e) else
                    "only no-audit checks (not a need)" if not int(e.get("denied", 0)) else "denied: wanted, ran without"),
        })
    return rows
