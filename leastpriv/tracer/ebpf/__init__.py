"""The eBPF backend (bcc): the kernel counts, userspace hears only news.

One module per concern:

    backend.py       EbpfBackend: start a command (launch.py) or attach to a pid / a cgroup, wait, build the Recording
    session.py       Session: one loaded program's run: the processes it follows, its events, the counts at the end
    program.py       the BPF program: usable here?, its C source (ebpf.c + ebpf_semantics.h), compile/load, its tables
    layouts.py       what userspace shares with ebpf.c: sizes, event types and structs, kernel offsets from BTF
    capabilities.py  capability checks: audited or not from the kernel call site, kernel symbol names
    targets.py       /proc and cgroup v2 lookups (descendants, a process's executable, a cgroup's id and processes)
    btf.py           reading struct member offsets from the running kernel's BTF
    ebpf.c           the BPF program (C, compiled by bcc at each run)
    ebpf_semantics.h generated from kernel/semantics.py by tools/gen_ebpf_semantics.py (make tables)
"""
from .backend import EbpfBackend
from .capabilities import classify_check
from .program import usable_reason

__all__ = ["EbpfBackend", "classify_check", "usable_reason"]
