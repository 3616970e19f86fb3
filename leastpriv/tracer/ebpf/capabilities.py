"""Capability checks: which ``cap_capable`` calls are needs, and the kernel functions that made them.

The BPF program keys every ``cap_capable`` of a tracked task by the capability, granted/denied, the
syscall in progress (``orig_ax`` of the task's saved user registers) and the top six kernel stack
frames. The tracepoint does not carry ``CAP_OPT_NOAUDIT`` and fentry/LSM programs cannot be loaded on
this kernel (lockdown), so *audited* is decided from the call site (:func:`classify_check`): the first
frame below the capability plumbing names the function that asked; ``ns_capable_noaudit``,
``has_[ns_]capability_noaudit`` and the overcommit accounting (``security_vm_enough_memory_mm``) ask
without audit. Where the kprobe fallback runs (no tracepoint), it sees the option itself.

Also used by ``enforce/capwatch.py`` (the same rule for a run under ``leastpriv run``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from ...errors import UserError
from ...fileio import CACHE_MODE, write_atomic
from ...kernel import constants, syscalls
from ..recording import CapCheck
from .layouts import ABI_NATIVE, cache_dir

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
        self.path = cache_dir() / f"ksyms-{boot}.json" if boot else None
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


def read_checks(caps, archs: dict[int, str], exe_of: Callable[[int, int], str]) -> Iterator[CapCheck | int]:
    """The program's ``caps`` map as CapChecks; an int for checks on another task's credentials (the
    kernel checking a signal's target, ...: not the workload's needs), counted by the caller."""
    sym_cache = KernelSymbols()
    sym = sym_cache.name
    for k, v in caps.items():
        if k.other_cred:
            yield v.value
            continue
        cap = constants.name_of("capability", k.cap) or f"CAP_{k.cap}"
        arch = archs.get(k.abi, archs[ABI_NATIVE])
        sc = syscalls.name(arch, k.nr) if k.nr >= 0 else ""
        frames = [sym(k.ip[i]) for i in range(min(k.nframes, 6))]
        if k.audit:     # the kprobe saw the option itself
            audited = k.audit == 1
            callers = [f.split(".")[0] for f in frames if f.split(".")[0] not in PLUMBING][:2]
            reason = (("audited" if audited else "no-audit (CAP_OPT_NOAUDIT)") + " check"
                      + (" from " + " <- ".join(callers) if callers else ""))
        else:
            audited, reason = classify_check(frames, cap, sc)
        yield CapCheck(cap=cap, granted=not k.denied, audited=audited, syscall=sc,
                       exe=exe_of(k.tgid, k.gen), count=v.value, reason=reason)
    sym_cache.save()
