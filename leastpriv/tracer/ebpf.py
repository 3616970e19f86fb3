"""eBPF backend (bcc): the kernel counts, userspace hears only news.

The BPF program (``ebpf.c`` beside this file) attaches to the raw syscall
tracepoints, ``sched:sched_process_{fork,exec,exit}`` and
``capability:cap_capable``. It keeps only the workload's processes (a tgid
set that follows forks, or every task of one cgroup v2), counts syscalls,
results and errnos per (ABI, number) in per-CPU maps, records the values of
``syscalls.tracked_args`` per tuple in a hash map, keeps per process image a
bitmap of its syscalls (for attribution to executables), and sends through a
ring buffer only what is new: a syscall or argument tuple seen for the first
time, an absolute path not sent before, a bind/connect, an exec, a fork, an
exit. Counts are read from the maps at the end. A full ring buffer is counted
in the kernel and reported (``Recording.lost_events`` and a note); facts whose
event was dropped are retried, and counts never depend on events.

Capability checks: every ``cap_capable`` of a tracked task with the
capability, granted/denied, the syscall in progress (``orig_ax`` of the
task's saved user registers) and the top six kernel stack frames. The
tracepoint does not carry ``CAP_OPT_NOAUDIT`` and fentry/LSM programs cannot
be loaded on this kernel (lockdown), so *audited* is decided from the call
site (see :func:`classify_check`): the first frame below the capability
plumbing names the function that asked; ``ns_capable_noaudit``,
``has_[ns_]capability_noaudit`` and the overcommit accounting
(``security_vm_enough_memory_mm``) ask without audit.

Kernel struct layouts come from the running kernel's BTF (:mod:`.btf`), not
from the (possibly mismatched) headers bcc compiles against.
"""
from __future__ import annotations

import ctypes as ct
import json
import os
import platform
import re
import select
import signal
import threading
import time
from importlib import resources
from pathlib import Path

from ..kernel import constants, semantics, syscalls
from .. import launch
from ..launch import resolve_command
from ..errors import UserError
from ..fileio import CACHE_MODE, write_atomic
from .base import Backend, Cgroup, Command, Pid, Target, TraceOptions
from .recording import CapCheck, Endpoint, Recording, RecordingBuilder
from .btf import BtfError, kernel_btf
from .paths import in_root, resolve_in_root, root_of
from .sockaddr import endpoint, record_endpoint
from .base import processes

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
CGROUP2_MAGIC = 0x63677270

ABI_NATIVE, ABI_I386, ABI_X32 = 0, 1, 2
NARCH = 3
SLOTS = 640                 # syscall numbers per ABI counted in arrays (others in a hash)
WORDS = 32                  # bitmap words (>= NARCH * SLOTS / 64; as in ebpf.c)
PBUF = 4096                 # a path event's buffer (PATH_MAX)
MAX_DEPTH = 32 * 8          # components and mount crossings the kernel walks (ebpf.c: WALK_CHUNK * MAX_CHUNKS)
USER_SLOTS = 4096           # process slots userspace fills (the command, attached processes)
PR_SET_PDEATHSIG = constants.value("prctl", "PR_SET_PDEATHSIG")
PROCS_PER_TRACE = 32768     # process slots the kernel fills (forks, cgroup newcomers), split over CPUs
MAX_PATHS = 32768
POLL_MS = 25                # userspace reads the ring buffer this often
RB_PAGES = int(os.environ.get("LEASTPRIV_EBPF_RB_PAGES", "2048"))   # 8 MiB ring buffer (~24000 path events)

EV_SYSCALL, EV_ARGS, EV_PATH, EV_ADDR, EV_EXEC, EV_FORK, EV_EXIT, EV_NEWPROC, EV_SCRIPT, EV_EXE = range(1, 11)
ST_TRUNC, ST_OUTSIDE, ST_JOIN, ST_CWD = 1, 2, 4, 8      # path status bits (ebpf.c)
ADDR_MAX = 128
NO_ARG = 255
# file->f_mode bit the kernel sets when an open created the file (include/linux/fs.h; not in BTF, which has
# no macros; stable since 4.19 and checked by tests/test_backend_parity.py on the running kernel)
FMODE_CREATED = 0x100000
LOST_NAMES = ("ring buffer full", "process table full", "argument map full", "capability map full",
              "in-flight map full (a path or address was not captured)", "syscall-number map full",
              "errno map full", "an opened fd was not in the task's fd table (a path was not captured)",
              "the path walker could not be called (a path was not captured)")

# --- the audited / no-audit rule (see the module docstring and README) -----
# Frames that are the capability machinery itself, skipped to find who asked.
PLUMBING = frozenset({"cap_capable", "cap_capable_helper", "security_capable", "ns_capable_common",
                      "call_int_hook"})
# Who asks with CAP_OPT_NOAUDIT: a "could I?" probe, not a need.
NOAUDIT_CALLERS = frozenset({"ns_capable_noaudit", "has_ns_capability_noaudit", "has_capability_noaudit",
                             "security_vm_enough_memory_mm", "cap_vm_enough_memory", "__vm_enough_memory",
                             "kallsyms_show_value"})
# Who asks with audit (CAP_OPT_NONE / CAP_OPT_INSETID): a denial would be logged, a grant is a need.
AUDITED_CALLERS = frozenset({
    "capable", "ns_capable", "ns_capable_setid", "file_ns_capable", "has_capability", "has_ns_capability",
    "capable_wrt_inode_uidgid", "privileged_wrt_inode_uidgid", "sk_ns_capable", "sk_capable", "sk_net_capable",
    "netlink_ns_capable", "netlink_capable", "netlink_net_capable", "bpf_token_capable", "perfmon_capable",
    "bpf_capable", "checkpoint_restore_ns_capable", "inode_owner_or_capable", "ptracer_capable",
})
# Without a stack: CAP_SYS_ADMIN asked during these syscalls is the overcommit accounting probe.
NOAUDIT_FALLBACK = {"CAP_SYS_ADMIN": frozenset({"mmap", "mmap2", "brk", "mremap", "execve", "execveat", "clone",
                                                "clone3", "fork", "vfork", "shmat", "mprotect", "munmap"})}


def classify_check(frames: list[str], cap: str, syscall: str) -> tuple[bool | None, str]:
    """(audited, reason) of one capability check from the kernel functions on its stack (innermost first)."""
    names = [f.split(".")[0] for f in frames if f]
    callers = [n for n in names if n not in PLUMBING]
    if callers:
        site = " <- ".join(callers[:2])
        first = callers[0]
        if first in NOAUDIT_CALLERS:
            return False, f"no-audit check from {site}"
        if first in AUDITED_CALLERS:
            return True, f"audited check from {site}"
        if "security_capable" in names or "cap_capable" in names[:1]:
            return None, (f"{first} calls security_capable directly (its audit option cannot be seen here): "
                          f"counted as needed; from {site}")
    if syscall in NOAUDIT_FALLBACK.get(cap, ()):
        return False, f"no stack; {cap} during {syscall} is the overcommit accounting probe (no-audit)"
    return None, "no stack: audit option unknown, counted as needed"


# --- environment --------------------------------------------------------------

def _tracefs() -> str | None:
    for d in TRACEFS:
        if os.path.isdir(os.path.join(d, "events", "raw_syscalls")):
            return d
    return None


def usable_reason() -> str:
    """'' when eBPF tracing works here, else what is missing and how to fix it."""
    if os.geteuid() != 0:
        return "needs root (run with sudo)"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return ("bcc is not importable from this Python: run `make install` (installs python3-bpfcc and "
                "links /usr/lib/python3/dist-packages/bcc into the venv)")
    except Exception as exc:  # libbcc.so missing
        return f"bcc does not load ({exc}): install Debian's libbpfcc / python3-bpfcc (`make install`)"
    tfs = _tracefs()
    if tfs is None:
        return "tracefs is not mounted: `mount -t tracefs nodev /sys/kernel/tracing` (make install does it)"
    if not os.path.isdir(os.path.join(tfs, "events", "sched", "sched_process_fork")):
        return f"{tfs}/events/sched is missing: the kernel lacks sched tracepoints"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "/sys/kernel/btf/vmlinux is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"
    kdir = f"/lib/modules/{platform.release()}"
    if not (os.path.exists(f"{kdir}/build/include") or os.path.exists(f"{kdir}/source/include")):
        return (f"no kernel headers at {kdir}/build: install linux-headers-$(uname -r), or, for a kernel "
                f"without a headers package, run `make install` (links Debian's nearest headers there)")
    return ""


# --- BTF offsets, cached per kernel ------------------------------------------

def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "leastpriv"


def kernel_offsets() -> dict[str, int]:
    """task_struct offsets the BPF program needs, from the running kernel's BTF (cached)."""
    import hashlib
    with open("/sys/kernel/btf/vmlinux", "rb") as f:   # keyed by the BTF itself: a rebuilt kernel misses
        key = hashlib.blake2b(f.read(), digest_size=12).hexdigest()
    cache = _cache_dir() / f"btf-offsets-v2-{platform.release()}-{key}.json"
    try:
        got = json.loads(cache.read_text())
        if isinstance(got, dict) and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 16
                                         for v in got.values()):
            return got
    except (OSError, ValueError):
        pass
    try:
        b = kernel_btf()
        off = {
            "OFF_TI_STATUS": b.offset("task_struct", "thread_info") + b.offset("thread_info", "status")
            if syscalls.host_arch() == "x86_64" else 0,
            "OFF_PID": b.offset("task_struct", "pid"),
            "OFF_TGID": b.offset("task_struct", "tgid"),
            "OFF_CRED": b.offset("task_struct", "cred"),
            "OFF_STACK": b.offset("task_struct", "stack"),
            # the path walk (ebpf.c: walk, fd_file, path_of)
            "OFF_TASK_FS": b.offset("task_struct", "fs"),
            "OFF_TASK_FILES": b.offset("task_struct", "files"),
            "OFF_TASK_MM": b.offset("task_struct", "mm"),
            "OFF_FS_ROOT": b.offset("fs_struct", "root"),
            "OFF_FS_PWD": b.offset("fs_struct", "pwd"),
            "OFF_FILES_FDT": b.offset("files_struct", "fdt"),
            "OFF_FDT_FD": b.offset("fdtable", "fd"),
            "OFF_FDT_MAX": b.offset("fdtable", "max_fds"),
            "OFF_FILE_PATH": b.offset("file", "f_path"),
            "OFF_FILE_MODE": b.offset("file", "f_mode"),
            "OFF_DENTRY_PARENT": b.offset("dentry", "d_parent"),
            "OFF_DENTRY_NAME": b.offset("dentry", "d_name"),
            "OFF_QSTR_LEN": b.offset("qstr", "len"),
            "OFF_QSTR_NAME": b.offset("qstr", "name"),
            "OFF_MOUNT_MNT": b.offset("mount", "mnt"),
            "OFF_MOUNT_PARENT": b.offset("mount", "mnt_parent"),
            "OFF_MOUNT_MOUNTPOINT": b.offset("mount", "mnt_mountpoint"),
            "OFF_VFSMOUNT_ROOT": b.offset("vfsmount", "mnt_root"),
            "OFF_MM_EXE_FILE": b.offset("mm_struct", "exe_file"),
            "OFF_BPRM_FILENAME": b.offset("linux_binprm", "filename"),
            "OFF_BPRM_INTERP": b.offset("linux_binprm", "interp"),
        }
        if (b.offset("path", "mnt"), b.offset("path", "dentry")) != (0, 8):
            raise BtfError("struct path is not {mnt, dentry} as ebpf.c expects")
        if syscalls.host_arch() == "x86_64":
            want = {"r10": 56, "r9": 64, "r8": 72, "bx": 40, "bp": 32, "cx": 88, "dx": 96, "si": 104, "di": 112,
                    "orig_ax": 120}
            got = {f: b.offset("pt_regs", f) for f in want}
            if got != want:
                raise BtfError(f"struct pt_regs is not laid out as ebpf.c expects: {got}")
    except (BtfError, OSError, ValueError) as exc:
        raise UserError(f"/sys/kernel/btf/vmlinux: cannot read task_struct offsets ({exc})") from None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(off), mode=CACHE_MODE)
    except (OSError, UserError):
        pass
    return off


# --- ctypes views of the events (layouts as in ebpf.c) ------------------------

class SockInfo(ct.Structure):
    _fields_ = [("domain", ct.c_uint32), ("type", ct.c_uint32), ("protocol", ct.c_uint32), ("pad", ct.c_uint32)]


class EvSmall(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("tgid", ct.c_uint32), ("tid", ct.c_uint32), ("abi", ct.c_uint32),
                ("nr", ct.c_int32), ("gen", ct.c_uint32), ("parent", ct.c_uint32), ("pgen", ct.c_uint32),
                ("v", ct.c_uint64 * 3), ("comm", ct.c_char * 16)]


_HEADER = [("type", ct.c_uint32), ("tgid", ct.c_uint32), ("tid", ct.c_uint32), ("abi", ct.c_uint32),
           ("nr", ct.c_int32), ("gen", ct.c_uint32), ("status", ct.c_uint32), ("len", ct.c_uint32),
           ("acc", ct.c_uint64), ("ret", ct.c_int64), ("sock", SockInfo), ("comm", ct.c_char * 16)]


class EvPath(ct.Structure):
    """struct ev_path's header; ``len`` bytes of buf follow it (a path with its NUL, or a sockaddr)."""
    _fields_ = _HEADER


class EvBig(ct.Structure):
    """struct ev_big's header and bitmap; ``len`` bytes of a path follow."""
    _fields_ = _HEADER + [("seen", ct.c_uint64 * WORDS)]


def _payload(data, size: int, header: type, n: int) -> bytes:
    """The ``n`` bytes after an event's header (never past the record's ``size``)."""
    start = ct.sizeof(header)
    n = max(0, min(n, size - start))
    return ct.string_at(data + start, n) if n else b""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="surrogateescape")


class KernelSymbols:
    """Kernel address -> function name for capability-check stacks, cached for this boot.

    bcc resolves a kernel address by reading all of /proc/kallsyms (~120,000 symbols, ~0.12 s at
    every run). Core kernel text does not move until the next boot, so its names are kept in a
    cache keyed by the boot id (mode 0600: kernel addresses are secrets under KASLR); addresses in
    modules, which can be reloaded elsewhere, are always asked of bcc.
    """

    def __init__(self) -> None:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            boot = ""
        self.path = _cache_dir() / f"ksyms-{boot}.json" if boot else None
        self.cached: dict[str, str] = {}
        self.fresh: dict[str, str] = {}
        self.names: dict[int, str] = {}
        if self.path is not None:
            try:
                got = json.loads(self.path.read_text())
                if isinstance(got, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in got.items()):
                    self.cached = got
            except (OSError, ValueError):
                pass

    def name(self, ip: int) -> str:
        got = self.names.get(ip)
        if got is not None:
            return got
        got = self.cached.get(hex(ip))
        if got is None:
            from bcc import BPF
            full = BPF.ksym(ip, show_module=True).decode(errors="replace")
            got, _, module = full.partition(" [")
            if module == "kernel]":
                self.fresh[hex(ip)] = got
        self.names[ip] = got
        return got

    def save(self) -> None:
        if not self.fresh or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for old in self.path.parent.glob("ksyms-*.json"):   # earlier boots' addresses mean nothing now
                if old != self.path:
                    old.unlink(missing_ok=True)
            write_atomic(self.path, json.dumps({**self.cached, **self.fresh}), mode=CACHE_MODE)
        except (OSError, UserError):
            pass


def _kernel_at_least(major: int, minor: int) -> bool:
    nums = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(nums) and (int(nums[1]), int(nums[2])) >= (major, minor)


def _abi_arch() -> dict[int, str]:
    host = syscalls.host_arch()
    if host == "x86_64":
        return {ABI_NATIVE: "x86_64", ABI_I386: "x86", ABI_X32: "x32"}
    return {ABI_NATIVE: host}


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _deleted(p: str | None) -> str | None:
    return p[:-len(" (deleted)")] if p and p.endswith(" (deleted)") else p


def _proc_exe(pid: int) -> str | None:
    """The executable of a process that was running before the trace saw it exec (attach modes, cgroup
    newcomers), as the process sees it (inside its root); an exec during the trace comes from the kernel."""
    return in_root(root_of(pid), _deleted(_readlink(f"/proc/{pid}/exe")) or "") or None


def _fmt_cgroup(path: str) -> tuple[int, int, str]:
    """(cgroup id, level, canonical path) of a cgroup v2 directory."""
    p = os.path.realpath(path)
    try:
        st = os.stat(p)
        sfs = os.statvfs(p)  # noqa: F841 - existence/permission check
    except OSError as exc:
        raise UserError(f"--cgroup {path}: {exc.strerror}") from None
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[:1] == ["cgroup2"]:
            mp, root = fields[4], fields[3]
            if p == mp or p.startswith(mp.rstrip("/") + "/"):
                if mount is None or len(mp) > len(mount[0]):
                    mount = (mp, root)
    if mount is None:
        mounts = sorted({line.split(" - ")[0].split()[4]
                         for line in Path("/proc/self/mountinfo").read_text().splitlines()
                         if line.partition(" - ")[2].split()[:1] == ["cgroup2"]})
        if mounts:
            raise UserError(f"--cgroup {path}: not in a cgroup v2 hierarchy; cgroup2 is mounted at "
                            f"{', '.join(mounts)}: give a cgroup under it")
        raise UserError(f"--cgroup {path}: not in a cgroup v2 hierarchy, and none is mounted: mount one on a "
                        f"directory of its own (mkdir -p /run/cgroup2 && mount -t cgroup2 none /run/cgroup2); "
                        f"not over /sys/fs/cgroup, which would hide the cgroup v1 controllers")
    mp, root = mount
    rel = os.path.relpath(p, mp)
    parts = [x for x in root.split("/") if x] + ([x for x in rel.split("/") if x and x != "."])
    return st.st_ino, len(parts), p


def _cgroup_procs(path: str) -> list[int]:
    """The processes in a cgroup v2 directory and its descendants."""
    out: list[int] = []
    for d, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                out += [int(x) for x in Path(d, "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pass
    return out


def _status_field(pid: int, field: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _descendants(pid: int) -> list[int]:
    """pid's process and all its descendant processes (tgids), from /proc/*/task/*/children.

    leastpriv itself (when attached to one of its ancestors, e.g. the shell that runs it) is left out.
    """
    out, todo, seen = [], [pid], {os.getpid()}
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(k) for k in kids)
    return out


class _Session:
    """One loaded BPF program and what userspace learnt from its events."""

    def __init__(self, target: Target, options: TraceOptions, builder: RecordingBuilder):
        from bcc import BPF

        self.builder = builder
        self.options = options
        self.archs = _abi_arch()
        self.exe: dict[tuple[int, int], str] = {}
        self.live: set[int] = set()
        self.launcher: tuple[int, int] | None = None   # (tgid, gen) of the command's child before its exec
        self.pending_exec: dict[int, tuple] = {}       # tgid -> (gen, bitmap, comm) of an image that exec'd
        # paths and addresses of these tasks (by comm) are not the workload's: a container runtime's init
        # before it execs the workload (its syscalls are removed by attribution, see tracer/container.py)
        self.ignore_comms = frozenset(c.encode() if isinstance(c, str) else c
                                      for c in options.extra.get("ignore_comms", ()))
        self.unresolved: list[str] = []    # names that are not paths from the task's root (examples)
        self.truncated: list[str] = []     # paths deeper or longer than the kernel's walk (examples)
        self.n_unresolved = 0
        self.n_truncated = 0
        self.news = 0
        mode_cgroup, cg_id, cg_level = 0, 0, 0
        if isinstance(target, Cgroup):
            cg_id, cg_level, _ = _fmt_cgroup(target.path)
            mode_cgroup = 1
        tfs = _tracefs()
        have_group_dead = "group_dead" in Path(tfs, "events/sched/sched_process_exit/format").read_text()
        cap_kprobe = 0
        self.have_caps = True
        if not os.path.isdir(os.path.join(tfs, "events/capability/cap_capable")) or os.environ.get(
                "LEASTPRIV_EBPF_CAP_KPROBE") == "compile-only":
            if os.path.exists(os.path.join(tfs, "kprobe_events")) or os.environ.get("LEASTPRIV_EBPF_CAP_KPROBE"):
                cap_kprobe = 1       # kprobe + kretprobe on cap_capable (they also show CAP_OPT_NOAUDIT)
            else:
                builder.note("this kernel has neither the capability:cap_capable tracepoint nor kprobes: "
                             "capability checks were not recorded")
                self.have_caps = False
        from bcc.utils import get_possible_cpus
        self.ncpu = max(get_possible_cpus()) + 1
        self.per_cpu = max(1024, PROCS_PER_TRACE // self.ncpu)
        try:
            self.pidmap_size = max(int(Path("/proc/sys/kernel/pid_max").read_text()), 32768)
        except (OSError, ValueError):
            self.pidmap_size = 4194304
        self.next_user_slot = 0
        defs = {
            "MODE_CGROUP": mode_cgroup, "CGROUP_ID": f"{cg_id}ULL", "CGROUP_LEVEL": cg_level,
            "COMPAT_X86": int(syscalls.host_arch() == "x86_64"), "HAVE_GROUP_DEAD": int(have_group_dead),
            "CAP_KPROBE": cap_kprobe, "SLOTS": SLOTS, "NARCH": NARCH,
            "PIDMAP_SIZE": self.pidmap_size, "USER_SLOTS": USER_SLOTS, "PER_CPU": self.per_cpu,
            "MAX_PROCS": USER_SLOTS + self.per_cpu * self.ncpu, "MAX_PATHS": MAX_PATHS, "RB_PAGES": RB_PAGES,
            "HAVE_READ_USER": int(_kernel_at_least(5, 5)), "FMODE_CREATED_": hex(FMODE_CREATED),
            **kernel_offsets(),
        }
        here = resources.files("leastpriv.tracer")
        text = here.joinpath("ebpf_semantics.h").read_text() + here.joinpath("ebpf.c").read_text()
        if not self.have_caps:
            start = text.index("static __always_inline void record_cap(")
            text = text[:start]
        cflags = [f"-D{k}={v}" for k, v in defs.items()] + ["-Wno-macro-redefined", "-w"]
        t0 = time.monotonic()
        # bcc prints clang warnings to stderr; keep the user's terminal clean
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as dn:
                os.dup2(dn.fileno(), 2)
                try:
                    self.bpf = BPF(text=text.encode(), cflags=cflags)
                finally:
                    os.dup2(saved, 2)
        except Exception as exc:
            build = os.path.realpath(f"/lib/modules/{platform.release()}/build")
            raise UserError(f"--backend ebpf: the BPF program does not load here ({exc}); bcc compiled it "
                            f"against the headers in {build}: if they do not suit this kernel, install "
                            f"linux-headers-$(uname -r) or re-run `make install`; else use --backend ptrace") from None
        finally:
            os.close(saved)
        if cap_kprobe and os.environ.get("LEASTPRIV_EBPF_CAP_KPROBE") == "compile-only":
            # tests: have the verifier check the fallback on a kernel that has the tracepoint
            self.bpf.load_func(b"lp_cap_entry", BPF.KPROBE)
            self.bpf.load_func(b"lp_cap_return", BPF.KPROBE)
        elif cap_kprobe:
            try:
                self.bpf.attach_kprobe(event=b"cap_capable", fn_name=b"lp_cap_entry")
                self.bpf.attach_kretprobe(event=b"cap_capable", fn_name=b"lp_cap_return")
            except Exception as exc:
                builder.note(f"capability checks not recorded: cannot attach kprobes to cap_capable ({exc})")
        # the path walker, tail-called by the programs that send paths (ebpf.c: lp_walk)
        walker = self.bpf.load_func(b"lp_walk", BPF.RAW_TRACEPOINT)
        walkers = self.bpf[b"walkers"]
        walkers[ct.c_int(0)] = ct.c_int(walker.fd)
        self.compile_seconds = time.monotonic() - t0
        EbpfBackend.last_startup = self.compile_seconds
        if options.progress:
            options.progress({"bpf": f"compiled and attached in {self.compile_seconds:.2f} s"})
        self._fill_specs()
        if options.known is not None:
            self._fill_known(options.known)
        en = self.bpf[b"enabled"]
        en[en.Key(0)] = en.Leaf(1)
        self.procs = self.bpf[b"procs"]
        self.pidmap = self.bpf[b"pidmap"]
        self.bpf[b"events"].open_ring_buffer(self._on_event)

    # -- setup ------------------------------------------------------------
    def _fill_specs(self) -> None:
        """The in-kernel table of what each syscall means, from kernel/semantics.py (as ptrace reads it)."""
        specs = self.bpf[b"specs"]
        for abi, arch in self.archs.items():
            for name, nr in syscalls.table(arch).items():
                row = semantics.of(arch, name)
                if row is None or nr < 0 or nr >= SLOTS:
                    continue
                leaf = specs.Leaf()
                leaf.kind = semantics.KIND[row.kind]
                if row.tracked is not None:
                    leaf.nargs = 1 if row.ptr_flags else len(row.tracked.indexes)
                    for i, ix in enumerate(row.tracked.indexes[:3]):
                        leaf.idx[i] = ix
                leaf.ptrarg = int(row.ptr_flags)
                leaf.fidx = NO_ARG if row.flags is None else row.flags
                for i in range(2):
                    pa = row.paths[i] if i < len(row.paths) and row.kind == "pathop" else None
                    leaf.pidx[i] = NO_ARG if pa is None else pa.index
                    leaf.didx[i] = NO_ARG if pa is None or pa.dirfd is None else pa.dirfd
                    leaf.acc[i] = 0 if pa is None else sum(semantics.ACCESS_BITS[a] for a in pa.access)
                specs[specs.Key(abi * SLOTS + nr)] = leaf

    def _fill_known(self, known) -> None:
        """The fast gate: a bit per (abi, nr) the baseline has and whose facts cannot grow (no tracked
        argument, no path or address, not an exec): the program counts such a call and stops there."""
        words = [0] * WORDS
        n = 0
        for abi, arch in self.archs.items():
            for a, name in known.syscalls:
                if a != arch or semantics.of(arch, name) is not None:   # values, paths, execs, forks: facts
                    continue
                nr = syscalls.number(arch, name)
                if nr is None or not 0 <= nr < SLOTS:
                    continue
                slot = abi * SLOTS + nr
                words[slot >> 6] |= 1 << (slot & 63)
                n += 1
        kt = self.bpf[b"known"]
        for w, v in enumerate(words):
            if v:
                kt[kt.Key(w)] = kt.Leaf(v)
        self.builder.note(f"fast gate: {n} syscalls the baseline explains were only counted in the kernel "
                          f"(no attribution to executables, results not sampled)")

    def track(self, tgid: int, gen: int = 0, pending: bool = False, exe: str | None = None) -> bool:
        if self.next_user_slot >= USER_SLOTS:
            return False
        slot = self.next_user_slot
        self.next_user_slot += 1
        leaf = self.procs.Leaf()
        leaf.gen = gen
        leaf.flags = 1 if pending else 0
        leaf.tgid = tgid
        leaf.live = 1
        try:
            self.procs[self.procs.Key(slot)] = leaf
            if tgid < self.pidmap_size:
                self.pidmap[self.pidmap.Key(tgid)] = self.pidmap.Leaf(slot + 1)
            else:
                big = self.bpf[b"bigpids"]
                big[big.Key(tgid)] = big.Leaf(slot + 1)
        except Exception:
            return False
        self.live.add(tgid)
        self.exe.setdefault((tgid, gen), exe or _proc_exe(tgid) or "")
        return True

    # -- events -----------------------------------------------------------
    def _exe_of(self, tgid: int, gen: int, comm: bytes = b"") -> str:
        e = self.exe.get((tgid, gen))
        if e:
            return e
        e = _proc_exe(tgid) or (f"[{comm.decode(errors='replace')}]" if comm else "?")
        self.exe[(tgid, gen)] = e
        return e

    def _attribute_bitmap(self, tgid: int, gen: int, seen, comm: bytes = b"") -> None:
        exe = self._exe_of(tgid, gen, comm)
        for w in range(WORDS):
            bits = seen[w]
            while bits:
                low = bits & -bits
                slot = w * 64 + low.bit_length() - 1
                bits ^= low
                abi, nr = divmod(slot, SLOTS)
                arch = self.archs.get(abi)
                if arch:
                    self.builder.attribute(exe, arch, syscalls.name(arch, nr))

    def _flush_exec(self, tgid: int) -> None:
        got = self.pending_exec.pop(tgid, None)
        if got is not None:
            self._attribute_bitmap(tgid, got[0], got[1], got[2])

    def _path(self, e, raw: bytes) -> str | None:
        """A path the kernel resolved (as the task sees it), or None when it is not one (counted)."""
        path = _text(raw)
        if e.status & ST_TRUNC:
            self.n_truncated += 1
            if len(self.truncated) < 3:
                self.truncated.append(path[:80] + "...")
            return None
        if e.status & ST_OUTSIDE or not path.startswith("/"):
            self.n_unresolved += 1
            if len(self.unresolved) < 3:
                self.unresolved.append(path or "?")
            return None
        if e.status & ST_JOIN:   # a directory's path + the name the call passed: . and .. (lexically)
            path = os.path.normpath(path)
            if path.startswith("//"):
                path = path[1:]
        return path

    def _on_event(self, ctx, data, size) -> None:
        try:
            self._handle(data, size)
        except Exception as exc:  # never let a callback error kill the trace
            self.builder.note(f"eBPF event handling error: {type(exc).__name__}: {exc}")

    def _handle(self, data, size) -> None:
        kind = ct.cast(data, ct.POINTER(ct.c_uint32)).contents.value
        b = self.builder
        self.news += 1
        if kind in (EV_SYSCALL, EV_ARGS, EV_FORK, EV_NEWPROC):
            e = ct.cast(data, ct.POINTER(EvSmall)).contents
            if kind == EV_FORK:
                self.exe.setdefault((e.tgid, 0), self._exe_of(e.parent, e.pgen))
                self.live.add(e.tgid)
            elif kind == EV_NEWPROC:
                self.live.add(e.tgid)
                self._exe_of(e.tgid, 0, e.comm)
            elif kind == EV_SYSCALL and self.options.progress:
                arch = self.archs.get(e.abi, "?")
                self.options.progress({"new": f"{syscalls.name(arch, e.nr)} ({arch})", "events": self.news})
            return
        if kind in (EV_EXEC, EV_EXIT):
            e = ct.cast(data, ct.POINTER(EvBig)).contents
            if kind == EV_EXIT:
                self._attribute_bitmap(e.tgid, e.gen, e.seen, e.comm)
                self.live.discard(e.tgid)
                return
            # the old image's syscalls: attributed when the new image's path follows (EV_EXE), so that the
            # command's own execve calls go to the program they started (as under ptrace)
            self._flush_exec(e.tgid)
            self.pending_exec[e.tgid] = (e.gen, list(e.seen), bytes(e.comm))
            return
        if kind == EV_EXE:
            e = ct.cast(data, ct.POINTER(EvPath)).contents
            exe = self._path(e, _payload(data, size, EvPath, e.len))
            if exe:      # the file the new image maps, resolved by the kernel at the exec
                if (e.tgid, e.gen) == self.launcher:
                    self.exe[self.launcher] = exe      # the launcher itself never appears
                self.exe[(e.tgid, e.gen + 1)] = exe
                b.exec_(exe)
            self._flush_exec(e.tgid)
            return
        e = ct.cast(data, ct.POINTER(EvPath)).contents
        if e.comm in self.ignore_comms:
            return
        raw = _payload(data, size, EvPath, e.len)
        if kind == EV_PATH:
            path = self._path(e, raw)
            if path:
                for acc, bit in semantics.ACCESS_BITS.items():
                    if e.acc & bit:
                        b.file(path, acc)
        elif kind == EV_SCRIPT:
            # the script an interpreter runs: its file is closed by the time of the exec, so the kernel
            # sends the name joined to the cwd; symlinks in it are resolved here, inside the task's root
            path = self._path(e, raw)
            if path:
                b.exec_(resolve_in_root(e.tgid, path))
        elif kind == EV_ADDR:
            cwd = _text(raw[ADDR_MAX:]) if e.status & ST_CWD else ""
            op = "bind" if syscalls.name(self.archs.get(e.abi, "x86_64"), e.nr) == "bind" else "connect"
            ep = _endpoint(op, raw[: min(e.acc, ADDR_MAX)], e.sock, cwd)
            if ep is not None:
                record_endpoint(b, ep)

    # -- the end ----------------------------------------------------------
    def poll(self, ms: int, fd: int | None = None) -> bool:
        """Wait up to ``ms`` (or until ``fd`` is readable), then read what the kernel sent.

        The program submits without waking us (BPF_RB_NO_WAKEUP): one wake-up per event would
        cost the workload a context switch each; reading every POLL_MS keeps that off its path.
        True when ``fd`` became readable.
        """
        ready = False
        if fd is not None:
            ready = bool(select.select([fd], [], [], ms / 1000)[0])
        else:
            time.sleep(ms / 1000)
        self.bpf.ring_buffer_consume()
        return ready

    def drain(self) -> None:
        self.bpf.ring_buffer_consume()

    def collect(self) -> None:
        b = self.builder
        for tgid in list(self.pending_exec):   # an exec whose path event was lost
            self._flush_exec(tgid)
        counts, results = self.bpf[b"counts"], self.bpf[b"results"]
        for abi, arch in self.archs.items():
            for nr in range(SLOTS):
                k = counts.Key(abi * SLOTS + nr)
                n = sum(counts[k])
                if not n:
                    continue
                name = syscalls.name(arch, nr)
                b.syscall(arch, name, n)
                stat = b.counts[arch][name]
                per_cpu = results[k]
                stat[1] += sum(r.results for r in per_cpu)
                stat[2] += sum(r.ok for r in per_cpu)
        for k, v in self.bpf[b"other"].items():
            arch = self.archs.get(k.abi)
            if arch is None or not v.count:
                continue
            name = syscalls.name(arch, k.nr) if k.nr >= 0 else f"#{k.nr}"
            b.syscall(arch, name, v.count)
            stat = b.counts[arch][name]
            stat[1] += v.results
            stat[2] += v.ok
        for k, v in self.bpf[b"errnos"].items():
            arch = self.archs.get(k.abi)
            if arch is None:
                continue
            name = syscalls.name(arch, k.nr) if k.nr >= 0 else f"#{k.nr}"
            stat = b.counts[arch].get(name)
            if stat is None:
                continue
            en = constants.name_of("errno", k.err) or f"E{k.err}"
            stat[3][en] = stat[3].get(en, 0) + v.value
        for k, v in self.bpf[b"argcounts"].items():
            arch = self.archs.get(k.abi)
            if arch is None:
                continue
            name = syscalls.name(arch, k.nr)
            ta = syscalls.tracked_args(arch, name)
            n = 1 if name == "clone3" else len(ta.indexes) if ta is not None else 0
            if n:
                b.arg(arch, name, tuple(int(k.v[i]) for i in range(n)), v.value)
        # images still alive (or whose exit event was lost): their bitmaps
        used = list(range(self.next_user_slot))
        per_cpu_next = self.bpf[b"nextslot"][0]
        for cpu, n in enumerate(per_cpu_next):
            used += range(USER_SLOTS + cpu * self.per_cpu, USER_SLOTS + cpu * self.per_cpu + min(n, self.per_cpu))
        for slot in used:
            v = self.procs[self.procs.Key(slot)]
            if v.live:
                self._attribute_bitmap(v.tgid, v.gen, v.seen)
        if self.have_caps:
            self._collect_caps()
        lost = self.bpf[b"lost"]
        total = 0
        for i, what in enumerate(LOST_NAMES):
            n = sum(lost[lost.Key(i)])
            if n:
                total += n
                b.note(f"eBPF: {n} events lost ({what}); this run may miss facts")
        b.lost_events += total
        if self.n_truncated:
            b.note(f"eBPF: {self.n_truncated} paths deeper than {MAX_DEPTH} components or longer than {PBUF - 1} "
                   f"bytes were left out (not recorded), e.g. {', '.join(self.truncated)}")
        if self.n_unresolved:
            b.note(f"eBPF: {self.n_unresolved} paths not reachable from the process's root were left out, "
                   f"e.g. {', '.join(self.unresolved)}")

    def _collect_caps(self) -> None:
        b = self.builder
        other = 0
        sym_cache = KernelSymbols()
        sym = sym_cache.name
        for k, v in self.bpf[b"caps"].items():
            if k.other_cred:
                other += v.value
                continue
            cap = constants.name_of("capability", k.cap) or f"CAP_{k.cap}"
            arch = self.archs.get(k.abi, self.archs[ABI_NATIVE])
            sc = syscalls.name(arch, k.nr) if k.nr >= 0 else ""
            frames = [sym(k.ip[i]) for i in range(min(k.nframes, 6))]
            if k.audit:     # the kprobe saw the option itself
                audited = k.audit == 1
                callers = [f.split(".")[0] for f in frames if f.split(".")[0] not in PLUMBING][:2]
                reason = (("audited" if audited else "no-audit (CAP_OPT_NOAUDIT)") + " check"
                          + (" from " + " <- ".join(callers) if callers else ""))
            else:
                audited, reason = classify_check(frames, cap, sc)
            b.capability(CapCheck(cap=cap, granted=not k.denied, audited=audited, syscall=sc,
                                  exe=self._exe_of(k.tgid, k.gen), count=v.value, reason=reason))
        sym_cache.save()
        if other:
            b.note(f"eBPF: {other} capability checks on another task's credentials were left out "
                   f"(e.g. the kernel checking a signal's target): they are not the workload's needs")

    def lost_ringbuf(self) -> int:
        lost = self.bpf[b"lost"]
        return sum(lost[lost.Key(0)])

    def close(self) -> None:
        # Each classic tracepoint's detach waits for an RCU grace period in the kernel (~75 ms here;
        # raw tracepoints do not): detach them side by side so that the waits overlap.
        bpf = self.bpf

        def detach(tp: bytes) -> None:
            try:
                bpf.detach_tracepoint(tp)
            except Exception:
                pass

        threads = [threading.Thread(target=detach, args=(tp,)) for tp in list(bpf.tracepoint_fds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            bpf.cleanup()
        except Exception:
            pass


def _endpoint(op: str, raw: bytes, sock: SockInfo, cwd: str = "") -> Endpoint | None:
    return endpoint(op, raw, None if sock.type == 0xFFFFFFFF else sock.type, sock.protocol, cwd)


def _alive(pid: int) -> bool:
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _open_fds() -> set[int]:
    try:
        return {int(f) for f in os.listdir("/proc/self/fd")}
    except OSError:
        return {0, 1, 2}


class EbpfBackend(Backend):
    """bcc: in-kernel counting, capability checks, attach to a PID or a cgroup."""

    name = "ebpf"
    last_startup: float | None = None   # seconds the last BPF compile + load took (bench, status line)

    @classmethod
    def usable(cls) -> tuple[bool, str]:
        why = usable_reason()
        return (not why, why)

    def trace(self, target: Target, options: TraceOptions) -> Recording:
        why = usable_reason()
        if why:
            raise UserError(f"--backend ebpf: not usable here: {why}")
        if isinstance(target, Command):
            return self._trace_command(target, options)
        if isinstance(target, Pid):
            tgid = _status_field(target.pid, "Tgid") if target.pid > 0 else None
            if tgid is None:
                raise UserError(f"--pid {target.pid}: no such process")
            if int(tgid) == os.getpid():
                raise UserError(f"--pid {target.pid}: that is leastpriv itself")
            target = Pid(int(tgid))   # a thread id means its process
            return self._trace_attached(target, options, f"pid:{target.pid}", self._cmdline(target.pid))
        if isinstance(target, Cgroup):
            _, _, canon = _fmt_cgroup(target.path)
            return self._trace_attached(target, options, f"cgroup:{canon}", ("cgroup:" + canon,))
        raise UserError(f"--backend ebpf: cannot trace {target!r}", exit_code=2)

    @staticmethod
    def _cmdline(pid: int) -> tuple[str, ...]:
        try:
            parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            return tuple(p.decode(errors="replace") for p in parts if p) or (f"pid:{pid}",)
        except OSError:
            return (f"pid:{pid}",)

    # -- attach modes -----------------------------------------------------
    def _trace_attached(self, target, options: TraceOptions, label: str, command: tuple[str, ...]) -> Recording:
        uid = None
        if isinstance(target, Pid):
            ids = (_status_field(target.pid, "Uid") or "").split()
            uid = int(ids[1]) if len(ids) > 1 else None    # the effective uid the process runs as
        builder = RecordingBuilder(command, "ebpf", target=label, uid=uid)
        sess = _Session(target, options, builder)
        stop = options.extra.get("stop_event")
        ready = options.extra.get("ready_event")
        how = ""
        # Ctrl-C / SIGTERM end an attach-mode trace normally. A flag, not KeyboardInterrupt: an exception
        # raised inside bcc's ctypes callback would be printed and swallowed.
        signalled: list[int] = []
        old_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                old_handlers[sig] = signal.signal(sig, lambda n, _f: signalled.append(n))
        try:
            if isinstance(target, Pid):
                # insert before listing children: a fork after insertion is followed by the kernel
                for tgid in _descendants(target.pid):
                    if not sess.track(tgid):
                        builder.note(f"eBPF: could not track process {tgid}")
                builder.note("attached to running processes: what they did before the attach is not in this run")
            else:
                # processes already in the cgroup get their executable now (e.g. runc's init waiting to exec
                # the container's process), so that what they do is attributed to them, not to their next image
                for tgid in _cgroup_procs(target.path):
                    sess.track(tgid)
                builder.note("cgroup mode: processes of the cgroup (and its sub-cgroups) from the attach on")
            if ready is not None:
                ready.set()
            deadline = None if options.duration is None else time.monotonic() + options.duration
            last_check = time.monotonic()
            while True:
                sess.poll(POLL_MS)
                now = time.monotonic()
                if signalled:
                    how = signal.Signals(signalled[0]).name
                    break
                if stop is not None and stop.is_set():
                    how = "stopped"
                    break
                if deadline is not None and now >= deadline:
                    how = "duration"
                    break
                if isinstance(target, Pid) and now - last_check > 0.5:
                    last_check = now
                    sess.live = {p for p in sess.live if _alive(p)}
                    if not sess.live:
                        how = "exited"
                        break
        except KeyboardInterrupt:   # a signal the handlers did not get (another thread installed none)
            how = "SIGINT"
        except BaseException:
            sess.close()
            raise
        try:
            sess.drain()
            sess.collect()
        finally:
            sess.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        if how == "exited":
            builder.note("the traced processes all exited")
        return builder.build(exit_status=None, complete=True, interrupted="")

    # -- a command --------------------------------------------------------
    def _trace_command(self, target: Command, options: TraceOptions) -> Recording:
        if not target.argv:
            raise UserError("learn: no command given")
        path = resolve_command(target.argv[0])
        keep = _open_fds()
        builder = RecordingBuilder(target.argv, "ebpf", target="cmd")
        sess = _Session(target, options, builder)
        ready = options.extra.get("ready_event")
        stop = options.extra.get("stop_event")
        gate_r, gate_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        encoded = launch.encode(path, target.argv)   # before the fork: the child's opens would be traced
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child: wait until tracked, then exec
            try:
                os.close(gate_w)
                os.close(err_r)
                launch.child_setup(parent)
                for fd in _open_fds() - keep - {gate_r, err_w}:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                go = os.read(gate_r, 1)
                os.close(gate_r)
                if go != b"1":
                    os._exit(125)
                launch.exec_encoded(encoded)
            except OSError as exc:
                try:
                    os.write(err_w, str(exc.errno).encode())
                finally:
                    os._exit(launch.exit_code_for(exc.errno))
            except BaseException:
                pass
            os._exit(127)
        os.close(gate_r)
        os.close(err_w)
        interrupted = ""
        forwarded = {"sig": 0}

        def forward(signum, _frame):
            forwarded["sig"] = signum
            # a terminal's Ctrl-C already reached the workload (same process group): don't send it twice
            if not launch.from_terminal(signum):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        status = None
        try:
            sess.launcher = (pid, 0)
            if not sess.track(pid, pending=True, exe=os.path.realpath(path)):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise UserError("--backend ebpf: cannot add the command to the BPF process table")
            sess.live.add(pid)
            if ready is not None:
                ready.set()
            os.write(gate_w, b"1")
            os.close(gate_w)
            code = os.read(err_r, 16)
            os.close(err_r)
            if code:
                os.waitpid(pid, 0)
                en = int(code)
                raise UserError(f"{target.argv[0]}: {os.strerror(en)}", exit_code=launch.exit_code_for(en))
            pidfd = os.pidfd_open(pid)
            try:
                while True:
                    if sess.poll(POLL_MS, pidfd):
                        break
                    if stop is not None and stop.is_set():
                        os.kill(pid, signal.SIGTERM)
                        interrupted = "stopped"
                        stop = None
            finally:
                os.close(pidfd)
            _, wst = os.waitpid(pid, 0)
            status = launch.status_of(wst)
            # like ptrace (strace -f): the run ends when every traced process has ended
            left = [p for p in sess.live if p != pid and _alive(p)]
            if left and options.waiting is not None:
                procs = processes(left)
                if procs:
                    options.waiting(status, procs)
            last = 0.0
            while stop is None or not stop.is_set():
                now = time.monotonic()
                if now - last > 0.2:
                    last = now
                    sess.live = {p for p in sess.live if p != pid and _alive(p)}
                    if not sess.live:
                        break
                sess.poll(POLL_MS)
            sess.drain()
            sess.collect()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            sess.close()
        if forwarded["sig"] and not interrupted:
            interrupted = signal.Signals(forwarded["sig"]).name
        survivors = {p for p in sess.live if p != pid and _alive(p)}
        if survivors:
            builder.note(f"{len(survivors)} descendant processes were still running when the trace stopped")
        return builder.build(exit_status=status, complete=not interrupted, interrupted=interrupted)
