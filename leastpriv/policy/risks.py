"""The risk catalogue: syscalls, argument values and capabilities a reviewer must see.

One table, read by ``review`` (what is present and why it matters), by the
denylist style (what to deny when the workload never used it) and by
``check`` (growth in one of these is called out as dangerous).

Each entry says why it matters and names a known CVE or exploit class, so a
reviewer can defend or challenge it. Names that do not exist on an
architecture are simply skipped there (``syscalls.exists``).
"""
from __future__ import annotations

from ..kernel import constants
from ..values import Value, value


@value
class Risk(Value):
    key: str                # syscall name, "CAP_*", or "syscall:ARG" for an argument value
    why: str
    example: str            # a CVE or an exploit class
    deny: bool = True       # part of the denylist style when the workload never used it


def _r(names: str, why: str, example: str, deny: bool = True) -> list[Risk]:
    return [Risk(n, why, example, deny) for n in names.split()]


# --- syscalls -----------------------------------------------------------------------------
SYSCALLS: dict[str, Risk] = {r.key: r for r in (
    _r("bpf", "loads programs into the kernel's eBPF verifier and JIT, a large attack surface",
       "CVE-2021-3490, CVE-2022-23222 (verifier bugs -> kernel code execution)")
    + _r("perf_event_open", "exposes the perf subsystem and kernel addresses",
         "CVE-2013-2094, CVE-2023-2235 (perf use-after-free -> root)")
    + _r("ptrace", "reads and writes the memory and registers of other processes",
         "CVE-2019-13272 (PTRACE_TRACEME -> root); seccomp bypass before kernel 4.8")
    + _r("process_vm_readv process_vm_writev", "reads/writes another process's memory directly",
         "credential and key theft from neighbouring processes")
    + _r("pidfd_getfd kcmp", "steals or inspects file descriptors of other processes",
         "fd theft across processes (container escape helpers)")
    + _r("keyctl add_key request_key", "the kernel keyring is not namespaced",
         "CVE-2016-0728 (keyring refcount overflow -> root); key leakage between containers")
    + _r("unshare setns", "creates or joins namespaces; user namespaces unlock root-only kernel code to anyone",
         "CVE-2022-0185, CVE-2024-1086 (user namespace + nf_tables/fs bugs -> root)")
    + _r("mount umount umount2 pivot_root fsopen fsmount fsconfig fspick move_mount open_tree mount_setattr",
         "changes the filesystem view; with privileges, escapes the container's root",
         "CVE-2022-0185 (fsconfig heap overflow); mount-based container escapes")
    + _r("userfaultfd", "lets a process stall kernel page faults at a chosen moment",
         "race-widening primitive in many kernel exploits (CVE-2016-5195 variants, CVE-2021-22555)")
    + _r("_sysctl", "obsolete binary sysctl interface", "CVE-2011-1080 class; removed in Linux 5.5")
    + _r("open_by_handle_at name_to_handle_at", "opens files by handle, bypassing the mount namespace",
         "Shocker container escape (2014, CAP_DAC_READ_SEARCH)")
    + _r("kexec_load kexec_file_load", "replaces the running kernel", "boots an attacker's kernel")
    + _r("init_module finit_module delete_module create_module",
         "loads or removes kernel code", "rootkit loading")
    + _r("io_uring_setup io_uring_enter io_uring_register",
         "io_uring performs I/O outside the syscall path, so seccomp never sees its operations",
         "CVE-2022-29582, CVE-2023-2598 (io_uring -> root); seccomp bypass")
    + _r("acct", "turns process accounting on or off", "host-wide information leak")
    + _r("swapon swapoff", "changes the host's swap", "denial of service")
    + _r("reboot", "reboots the host (or a pid namespace)", "denial of service")
    + _r("iopl ioperm", "raw I/O port access", "hardware access bypassing the kernel")
    + _r("lookup_dcookie quotactl quotactl_fd nfsservctl uselib vm86 vm86old",
         "obsolete or rarely needed interfaces with a history of bugs", "legacy interfaces rarely audited (uselib: CVE-2004-1235)")
    + _r("syslog", "reads the kernel log (addresses, other tenants' messages)", "KASLR bypass via dmesg")
    + _r("settimeofday clock_settime clock_settime64 adjtimex clock_adjtime clock_adjtime64 stime",
         "the clock is not namespaced: changes the host's time", "TLS/Kerberos validity attacks")
    + _r("fanotify_init", "watches the whole filesystem", "information disclosure")
    + _r("move_pages migrate_pages mbind set_mempolicy", "changes memory placement of other processes",
         "CVE-2010-0415 (move_pages info leak)")
    + _r("socketcall", "multiplexes socket calls behind a pointer, hiding the family from seccomp",
         "bypass of socket family rules on 32-bit x86")
    + _r("personality", "changes the execution domain (see its argument values)", "ASLR disabling")
)}
# personality itself is denied only by argument value in the denylist style
SYSCALLS["personality"] = Risk("personality", SYSCALLS["personality"].why, SYSCALLS["personality"].example, deny=False)

# --- argument values ------------------------------------------------------------------------
# clone/unshare namespace flags: denied one flag per rule (alternatives need separate rules)
NAMESPACE_WHY = ("creating namespaces (above all CLONE_NEWUSER) gives an unprivileged process root in a new "
                 "namespace, reaching kernel code otherwise limited to root")
NAMESPACE_EXAMPLE = "CVE-2022-0185, CVE-2023-32233, CVE-2024-1086 (unprivileged user namespace -> root)"

PERSONALITY_FLAGS = {
    "ADDR_NO_RANDOMIZE": ("turns off ASLR for the process and what it executes",
                          "makes memory-corruption exploits deterministic"),
    "READ_IMPLIES_EXEC": ("makes every readable mapping executable", "defeats W^X/NX"),
    "MMAP_PAGE_ZERO": ("maps page zero", "NULL-pointer dereference exploits (CVE-2009-2692 class)"),
}

FAMILIES = {
    "AF_PACKET": ("raw link-layer access: sniffing and spoofing on the host's network namespace",
                  "CVE-2016-8655, CVE-2017-7308, CVE-2020-14386 (af_packet -> root)"),
    "AF_ALG": ("the kernel crypto API from userspace", "CVE-2013-7421, CVE-2019-8912 (af_alg use-after-free)"),
    "AF_VSOCK": ("host/guest sockets", "CVE-2021-26708 (vsock race -> root)"),
    "AF_RDS": ("RDS protocol, autoloaded module", "CVE-2010-3904 (RDS -> root)"),
    "AF_KEY": ("IPsec key management", "CVE-2022-1353 (af_key info leak)"),
    "AF_TIPC": ("TIPC protocol, autoloaded module", "CVE-2021-43267 (TIPC heap overflow)"),
    "AF_CAN": ("CAN bus protocol", "CVE-2021-3609 (CAN BCM race -> root)"),
    "AF_BLUETOOTH": ("Bluetooth sockets", "CVE-2020-12351 (BleedingTooth)"),
    "AF_LLC": ("LLC protocol", "CVE-2017-6345 class"),
    "AF_X25": ("X.25 protocol", "CVE-2020-35519 (x25 out-of-bounds)"),
    "AF_AX25": ("AX.25 amateur radio", "CVE-2022-1204 class"),
    "AF_NETROM": ("NET/ROM amateur radio", "autoloaded legacy protocol modules"),
    "AF_ROSE": ("ROSE amateur radio", "autoloaded legacy protocol modules"),
    "AF_APPLETALK": ("AppleTalk", "autoloaded legacy protocol modules"),
    "AF_IPX": ("IPX", "autoloaded legacy protocol modules"),
    "AF_ATMPVC": ("ATM PVC", "autoloaded legacy protocol modules"),
    "AF_ATMSVC": ("ATM SVC", "autoloaded legacy protocol modules"),
    "AF_PPPOX": ("PPP over X", "CVE-2017-15649 class"),
    "AF_XDP": ("XDP sockets", "kernel network fast path exposure"),
    "AF_SMC": ("SMC-R sockets", "CVE-2023-1118 class"),
    "AF_NFC": ("NFC sockets", "CVE-2021-23134 (nfc use-after-free)"),
    "AF_IEEE802154": ("802.15.4 sockets", "autoloaded protocol modules"),
    "AF_PHONET": ("Phonet sockets", "autoloaded protocol modules"),
    "AF_QIPCRTR": ("Qualcomm IPC router", "autoloaded protocol modules"),
    "AF_RXRPC": ("RxRPC (AFS)", "CVE-2022-1671 class"),
    "AF_KCM": ("kernel connection multiplexor", "autoloaded protocol module with a history of bugs"),
    "AF_CAIF": ("CAIF sockets", "autoloaded protocol modules"),
    "AF_IRDA": ("IrDA sockets", "autoloaded protocol modules"),
    "AF_ISDN": ("ISDN sockets", "autoloaded protocol modules"),
}
RAW_TYPES = {
    "SOCK_RAW": ("raw IP packets: spoofing, sniffing", "CVE-2020-14386 (raw/packet sockets)"),
    "SOCK_PACKET": ("obsolete link-layer packets", "as AF_PACKET"),
}
IOCTLS = {
    "TIOCSTI": ("injects input into the controlling terminal", "CVE-2017-5226 (sandbox escape by TIOCSTI)"),
    "TIOCLINUX": ("virtual console control, including text selection injection", "CVE-2023-1076 class"),
}
PROT_EXEC_WHY = ("creating executable memory at run time (JIT, self-modifying code) is what shellcode needs; "
                 "a program that never does it gains W^X from the rule")

# --- capabilities -------------------------------------------------------------------------
CAPABILITIES: dict[str, Risk] = {r.key: r for r in (
    Risk("CAP_SYS_ADMIN", "the catch-all capability: mount, namespaces, BPF, many ioctls",
         "most container escapes (cgroup release_agent CVE-2022-0492)"),
    Risk("CAP_SYS_PTRACE", "ptrace and process_vm_* on any process of the namespace",
         "process injection; escape with host PID namespace"),
    Risk("CAP_SYS_MODULE", "loads kernel modules", "rootkit; immediate host compromise"),
    Risk("CAP_SYS_RAWIO", "raw device and I/O port access", "direct host memory/disk access"),
    Risk("CAP_DAC_READ_SEARCH", "bypasses read permission; enables open_by_handle_at", "Shocker escape (2014)"),
    Risk("CAP_DAC_OVERRIDE", "bypasses file permission checks", "reading/writing any file in reach"),
    Risk("CAP_NET_ADMIN", "configures interfaces, routes, firewall", "CVE-2022-1015, CVE-2023-32233 (nf_tables)"),
    Risk("CAP_NET_RAW", "raw and packet sockets", "CVE-2020-14386; ARP/DNS spoofing in the pod network"),
    Risk("CAP_BPF", "loads BPF programs", "verifier bugs (CVE-2021-3490)"),
    Risk("CAP_PERFMON", "perf events and kernel address exposure", "KASLR bypass"),
    Risk("CAP_SETUID", "changes user ids", "privilege escalation inside the container"),
    Risk("CAP_SETGID", "changes group ids", "privilege escalation inside the container"),
    Risk("CAP_SETPCAP", "changes capability bounding sets", "capability regain"),
    Risk("CAP_SETFCAP", "sets file capabilities; maps root in user namespaces", "setting file capabilities on a binary hands privileges to whoever runs it"),
    Risk("CAP_SYS_CHROOT", "chroot: can help escape or confuse path checks", "chroot-based privilege tricks"),
    Risk("CAP_MKNOD", "creates device nodes", "raw disk access through a new block device node"),
    Risk("CAP_FOWNER", "bypasses ownership checks", "changing modes of files it does not own"),
    Risk("CAP_CHOWN", "changes file ownership", "taking over other users' files"),
    Risk("CAP_SYS_TIME", "sets the host clock", "certificate validity attacks"),
    Risk("CAP_SYS_BOOT", "reboots the host", "denial of service"),
    Risk("CAP_MAC_ADMIN", "changes MAC (AppArmor/SELinux) policy", "disables confinement"),
    Risk("CAP_MAC_OVERRIDE", "overrides MAC policy", "disables confinement"),
    Risk("CAP_SYSLOG", "reads kernel logs and addresses", "KASLR bypass"),
    Risk("CAP_LINUX_IMMUTABLE", "changes immutable/append-only flags", "log tampering"),
    Risk("CAP_SYS_RESOURCE", "overrides resource limits", "denial of service"),
    Risk("CAP_IPC_OWNER", "bypasses IPC permission checks", "reading other processes' shared memory"),
    Risk("CAP_KILL", "signals any process", "killing neighbouring processes"),
)}

# Docker's default capability set (moby oci/caps/defaults.go, 14 capabilities).
DOCKER_DEFAULT_CAPS = (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
)


def namespace_flags() -> list[tuple[str, int]]:
    g = constants.group("clone")
    return [(n, g[n]) for n in constants.CLONE_NAMESPACES if n in g]


def dangerous_values(syscall: str, values: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(what, why, example) for each dangerous thing in one recorded argument tuple."""
    out = []
    if not values:
        return out
    v0 = values[0]
    if syscall in ("clone", "unshare"):
        for n, bit in namespace_flags():
            if syscall == "clone" and bit <= 0xFF:
                continue   # clone's low byte is the exit signal (CLONE_NEWTIME is unshare/clone3 only)
            if v0 & bit:
                out.append((f"{syscall}({n})", NAMESPACE_WHY, NAMESPACE_EXAMPLE))
    elif syscall == "setns":
        name = constants.name_of("clone", v0) if v0 else "any namespace (nstype 0)"
        out.append((f"setns({name})", NAMESPACE_WHY, NAMESPACE_EXAMPLE))
    elif syscall == "personality":
        if v0 != 0xFFFFFFFF:
            for n, (why, ex) in PERSONALITY_FLAGS.items():
                if v0 & constants.value("personality", n):
                    out.append((f"personality({n})", why, ex))
    elif syscall in ("socket", "socketpair"):
        fam = constants.name_of("socket_family", v0) or str(v0)
        if fam in FAMILIES:
            out.append((f"{syscall}({fam})", *FAMILIES[fam]))
        if len(values) > 1:
            base = constants.name_of("socket_type", values[1] & 0xF) or ""
            if base in RAW_TYPES and fam != "AF_PACKET":
                out.append((f"{syscall}({fam}, {base})", *RAW_TYPES[base]))
    elif syscall == "ioctl":
        n = constants.name_of("ioctl", v0 & 0xFFFFFFFF)
        if n in IOCTLS:
            out.append((f"ioctl({n})", *IOCTLS[n]))
    elif syscall in ("mprotect", "pkey_mprotect"):
        if v0 & constants.value("mmap_prot", "PROT_EXEC"):
            out.append((f"{syscall}(PROT_EXEC)", PROT_EXEC_WHY, "shellcode staging; JIT spraying"))
    return out
