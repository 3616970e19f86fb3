"""The BPF program: whether it can run here, its C source (package data), compiling and loading it with bcc,
and the tables userspace fills before the run (what each syscall means, the fast gate's known calls).

The C source is ``ebpf.c`` beside this file, prefixed by ``ebpf_semantics.h``, generated from
``kernel/semantics.py`` by ``tools/gen_ebpf_semantics.py`` (``make tables``). Sizes and kernel struct
offsets are passed as ``-D`` defines (:mod:`.layouts`). bcc is imported only here and in :mod:`.session`,
and only when a program is loaded.
"""
from __future__ import annotations

import ctypes as ct
import os
import platform
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from ...errors import UserError
from ...kernel import semantics, syscalls
from .layouts import FMODE_CREATED, NARCH, NO_ARG, PBUF, SLOTS, WORDS, EvBig, EvPath, abi_arch, kernel_offsets

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
SOURCE = "ebpf.c"
SEMANTICS_HEADER = "ebpf_semantics.h"    # written by tools/gen_ebpf_semantics.py

USER_SLOTS = 4096           # process slots userspace fills (the command, attached processes)
PROCS_PER_TRACE = 32768     # process slots the kernel fills (forks, cgroup newcomers), split over CPUs
MAX_PATHS = 32768
NO_RETURN = ("exit", "exit_group")   # never return: the full trace counts them at the task's exit
RB_PAGES = int(os.environ.get("LEASTPRIV_EBPF_RB_PAGES", "2048"))   # 8 MiB ring buffer (~24000 path events)


def wake_every(ncpu: int) -> int:
    """Every how many records a CPU wakes userspace (ebpf.c: rb_flags), a power of two: that many of the
    largest records from every CPU fill at most a quarter of the ring between two of its reads."""
    biggest = max(ct.sizeof(EvPath), ct.sizeof(EvBig)) + PBUF + 8    # + a path, + the ring's record header
    n = RB_PAGES * 4096 // (4 * ncpu * biggest)
    return 1 << max(n.bit_length() - 1, 0)


# --- environment --------------------------------------------------------------

def tracefs() -> str | None:
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
    tfs = tracefs()
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


def _kernel_at_least(major: int, minor: int) -> bool:
    nums = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(nums) and (int(nums[1]), int(nums[2])) >= (major, minor)


def source(with_caps: bool = True) -> str:
    """The program's C text: the generated semantics header, then ebpf.c (without the capability
    programs when the kernel can report no capability checks)."""
    here = resources.files(__package__)
    text = here.joinpath(SEMANTICS_HEADER).read_text() + here.joinpath(SOURCE).read_text()
    if not with_caps:
        text = text[:text.index("static __always_inline void record_cap(")]
    return text


# --- loading ------------------------------------------------------------------

@dataclass
class Program:
    """A compiled, attached (not yet enabled) BPF program and the sizes it was built with."""
    bpf: Any                       # bcc.BPF
    archs: dict[int, str]          # ABI number -> libseccomp architecture
    have_caps: bool                # capability checks are recorded
    ncpu: int
    per_cpu: int                   # process slots per CPU the kernel fills
    pidmap_size: int
    compile_seconds: float
    tracefs: str = ""
    have_gate: bool = False        # the fast gate's programs (lp_gate_*) are compiled: see gate.py


def load(cgroup: tuple[int, int] | None, note: Callable[[str], None], wake_on_exit: bool = False) -> Program:
    """Compile and attach the program: following the processes userspace puts in its table, or, with
    ``cgroup`` = (cgroup id, level), every task of that cgroup v2 and its descendants. ``note`` hears
    what this kernel cannot record; ``wake_on_exit``: a process's exit wakes userspace."""
    from bcc import BPF
    from bcc.utils import get_possible_cpus

    tfs = tracefs()
    if tfs is None:
        raise UserError(f"--backend ebpf: not usable here: {usable_reason()}")
    have_group_dead = "group_dead" in Path(tfs, "events/sched/sched_process_exit/format").read_text()
    cap_kprobe = 0
    have_caps = True
    if not os.path.isdir(os.path.join(tfs, "events/capability/cap_capable")) or os.environ.get(
            "LEASTPRIV_EBPF_CAP_KPROBE") == "compile-only":
        if os.path.exists(os.path.join(tfs, "kprobe_events")) or os.environ.get("LEASTPRIV_EBPF_CAP_KPROBE"):
            cap_kprobe = 1       # kprobe + kretprobe on cap_capable (they also show CAP_OPT_NOAUDIT)
        else:
            note("this kernel has neither the capability:cap_capable tracepoint nor kprobes: "
                 "capability checks were not recorded")
            have_caps = False
    ncpu = max(get_possible_cpus()) + 1
    per_cpu = max(1024, PROCS_PER_TRACE // ncpu)
    try:
        pidmap_size = max(int(Path("/proc/sys/kernel/pid_max").read_text()), 32768)
    except (OSError, ValueError):
        pidmap_size = 4194304
    cg_id, cg_level = cgroup or (0, 0)
    old = bool(os.environ.get("LEASTPRIV_EBPF_OLD_KERNEL"))
    defs = {
        "MODE_CGROUP": int(cgroup is not None), "CGROUP_ID": f"{cg_id}ULL", "CGROUP_LEVEL": cg_level,
        "COMPAT_X86": int(syscalls.host_arch() == "x86_64"), "HAVE_GROUP_DEAD": int(have_group_dead),
        "CAP_KPROBE": cap_kprobe, "SLOTS": SLOTS, "NARCH": NARCH,
        "PIDMAP_SIZE": pidmap_size, "USER_SLOTS": USER_SLOTS, "PER_CPU": per_cpu,
        "MAX_PROCS": USER_SLOTS + per_cpu * ncpu, "MAX_PATHS": MAX_PATHS, "RB_PAGES": RB_PAGES,
        "WAKE_EVERY": wake_every(ncpu), "WAKE_ON_EXIT": int(wake_on_exit),
        "HAVE_READ_USER": int(_kernel_at_least(5, 5)), "FMODE_CREATED_": hex(FMODE_CREATED),
        # the gate's events and bpf_task_pt_regs (Linux 5.15); LEASTPRIV_EBPF_OLD_KERNEL=1 compiles as for an
        # older kernel (tests: the registers found by calibration, no typed loads, no fast gate)
        "HAVE_GATE": int(gate_usable(tfs) and not old),
        # typed task and register pointers (plain loads instead of helper calls on the hot path); the
        # variable forces the probe-read variant (tests check both)
        "HAVE_TASK_BTF": int(_kernel_at_least(5, 15) and not os.environ.get("LEASTPRIV_EBPF_PROBE_READ")
                             and not old),
        **kernel_offsets(),
    }
    text = source(have_caps)
    cflags = [f"-D{k}={v}" for k, v in defs.items()] + ["-Wno-macro-redefined", "-w"]
    t0 = time.monotonic()
    # bcc prints clang warnings to stderr; keep the user's terminal clean
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as dn:
            os.dup2(dn.fileno(), 2)
            try:
                bpf = BPF(text=text.encode(), cflags=cflags)
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
        bpf.load_func(b"lp_cap_entry", BPF.KPROBE)
        bpf.load_func(b"lp_cap_return", BPF.KPROBE)
    elif cap_kprobe:
        try:
            bpf.attach_kprobe(event=b"cap_capable", fn_name=b"lp_cap_entry")
            bpf.attach_kretprobe(event=b"cap_capable", fn_name=b"lp_cap_return")
        except Exception as exc:
            note(f"capability checks not recorded: cannot attach kprobes to cap_capable ({exc})")
    # the path walker, tail-called by the programs that send paths (ebpf.c: lp_walk)
    walker = bpf.load_func(b"lp_walk", BPF.RAW_TRACEPOINT)
    walkers = bpf[b"walkers"]
    walkers[ct.c_int(0)] = ct.c_int(walker.fd)
    return Program(bpf=bpf, archs=abi_arch(), have_caps=have_caps, ncpu=ncpu, per_cpu=per_cpu,
                   pidmap_size=pidmap_size, compile_seconds=time.monotonic() - t0, tracefs=tfs,
                   have_gate=bool(defs["HAVE_GATE"]))


# --- where the per-call programs attach -----------------------------------------

# which call returns from a signal frame of each kind (ebpf.c SIGFRAME_*: native, x32, i386 rt, i386)
SIGFRAMES = (("native", "rt_sigreturn"), ("x32", "rt_sigreturn"), ("x86", "rt_sigreturn"), ("x86", "sigreturn"))


def attach_calls(prog: Program) -> None:
    """Attach the full trace's per-call program (ebpf.c: on_sys_exit, full = 1) to raw_syscalls sys_exit:
    every call of every task, recorded at its return; what a return cannot show comes from the programs
    this turns on (``fulltrace``: sigreturns from the frames signal_deliver pushed, ``sigret``; exit and
    exit_group at the task's exit; an exec at sched_process_exec). (The fast gate attaches the per-call
    programs elsewhere: gate.py.)"""
    host = syscalls.host_arch()
    sig = prog.bpf[b"sigret"]
    for kind, (arch, name) in enumerate(SIGFRAMES):
        arch = host if arch == "native" else arch
        abi = next((a for a, n in prog.archs.items() if n == arch), None)
        nr = syscalls.number(arch, name) if abi is not None else None
        if nr is not None and 0 <= nr < SLOTS:
            sig[sig.Key(kind)] = sig.Leaf(abi * SLOTS + nr + 1)
    full = prog.bpf[b"fulltrace"]
    full[full.Key(0)] = full.Leaf(1)
    prog.bpf.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"lp_sys_exit")


def gate_usable(tfs: str) -> bool:
    """The fast gate's attach points (syscalls:* events; bpf_task_pt_regs, Linux 5.15) exist here."""
    return _kernel_at_least(5, 15) and os.path.isdir(os.path.join(tfs, "events", "syscalls"))


def syscall_events(tfs: str, arch: str) -> dict[str, str]:
    """Syscall name (the table's) -> the name of its syscalls:sys_enter_/sys_exit_ events, for the syscalls of
    ``arch`` (the host's) that have events. The kernel names an event after the syscall's SYSCALL_DEFINE,
    which differs from the table for a few (stat: newstat, sendfile: sendfile64, umount2: umount); a syscall
    this kernel does not implement (sys_ni_syscall) has none."""
    have = {n[len("sys_enter_"):] for n in os.listdir(os.path.join(tfs, "events", "syscalls"))
            if n.startswith("sys_enter_")}
    out = {}
    for name in syscalls.table(arch):
        for ev in (name, "new" + name, name + "64", name.rstrip("0123456789")):
            if ev in have:
                out[name] = ev
                break
    return out


# --- the tables userspace fills -----------------------------------------------

def _set_slots(prog: Program, rows: dict[int, Callable[[Any], None]]) -> None:
    """Apply ``rows`` (slot -> a function that edits the slot's entry) to every CPU's copy of the entry."""
    slots = prog.bpf[b"slots"]
    for slot, edit in rows.items():
        key = slots.Key(slot)
        per_cpu = slots[key]
        for leaf in per_cpu:
            edit(leaf)
        slots[key] = per_cpu


def fill_specs(prog: Program) -> None:
    """The in-kernel table of what each syscall means, from kernel/semantics.py (as ptrace reads it):
    the ``sp`` of each slot's entry, on every CPU."""
    rows: dict[int, Callable[[Any], None]] = {}
    for abi, arch in prog.archs.items():
        for name, nr in syscalls.table(arch).items():
            row = semantics.of(arch, name)
            if row is None or nr < 0 or nr >= SLOTS:
                continue

            def edit(leaf, row=row) -> None:
                sp = leaf.sp
                sp.kind = semantics.KIND[row.kind]
                if row.tracked is not None:
                    sp.nargs = 1 if row.ptr_flags else len(row.tracked.indexes)
                    for i, ix in enumerate(row.tracked.indexes[:3]):
                        sp.idx[i] = ix
                sp.ptrarg = int(row.ptr_flags)
                sp.fidx = NO_ARG if row.flags is None else row.flags
                for i in range(2):
                    pa = row.paths[i] if i < len(row.paths) and row.kind == "pathop" else None
                    sp.pidx[i] = NO_ARG if pa is None else pa.index
                    sp.didx[i] = NO_ARG if pa is None or pa.dirfd is None else pa.dirfd
                    sp.acc[i] = 0 if pa is None else sum(semantics.ACCESS_BITS[a] for a in pa.access)
            rows[abi * SLOTS + nr] = edit
        for name in NO_RETURN:
            nr = syscalls.number(arch, name)
            if nr is not None and 0 <= nr < SLOTS:
                def mark(leaf, then=rows.get(abi * SLOTS + nr)) -> None:
                    leaf.noret = 1
                    if then is not None:
                        then(leaf)
                rows[abi * SLOTS + nr] = mark
    _set_slots(prog, rows)


def known_bitmap(archs: dict[int, str], known) -> tuple[list[int], int]:
    """The fast gate's bitmap words and how many calls they hold: a bit per (abi, nr) the baseline
    ``known`` has and whose facts cannot grow (no tracked argument, no path or address, not an exec)."""
    words = [0] * WORDS
    n = 0
    for abi, arch in archs.items():
        for a, name in known.syscalls:
            if a != arch or semantics.of(arch, name) is not None:   # values, paths, execs, forks: facts
                continue
            nr = syscalls.number(arch, name)
            if nr is None or not 0 <= nr < SLOTS:
                continue
            slot = abi * SLOTS + nr
            words[slot >> 6] |= 1 << (slot & 63)
            n += 1
    return words, n


def fill_known(prog: Program, known) -> int:
    """The fast gate where gate.py's cannot run (a target that is not a command, an old kernel): the program,
    attached to raw_syscalls, counts a call of :func:`known_bitmap` and stops there (the ``known`` flag of
    the slot's entry, on every CPU). Returns how many."""
    words, n = known_bitmap(prog.archs, known)

    def mark(leaf) -> None:
        leaf.known = 1
    _set_slots(prog, {w * 64 + b: mark for w, v in enumerate(words) for b in range(64) if v >> b & 1})
    return n


def enable(prog: Program) -> None:
    """Start recording (the programs are attached but idle until this)."""
    en = prog.bpf[b"enabled"]
    en[en.Key(0)] = en.Leaf(1)
