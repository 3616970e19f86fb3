"""The fast gate: a seccomp filter that lets the kernel allow what a baseline already explains.

``check --baseline B`` (and ``learn --fast`` into an existing profile) need to
see only what could be *new*. A call whose facts cannot grow — its syscall is
in the baseline, it has no tracked argument and no path, address or exec to
look at — can run at native speed: the filter built here (with libseccomp,
via pyseccomp) answers it SECCOMP_RET_ALLOW in the kernel, and returns
SECCOMP_RET_TRACE (a ptrace stop) for everything else:

* syscalls the baseline does not have (and numbers no table names);
* tracked-argument syscalls (clone, mmap, ioctl, ...) unless the exact
  register values are a tuple the baseline has (libseccomp compares them:
  a call with the same values cannot add an argument fact);
* calls the tracer must look into: ``stop_always`` (opens, execs, sockets,
  bind/connect, path-changing calls, clone3);
* every other ABI than the host's (i386 and x32 calls on x86_64).

What it costs: calls the kernel allows are not counted and their results are
not sampled; a check built on it cannot report that a syscall of the
baseline was no longer used. The Recording says so in its notes.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass

from ..kernel import syscalls
from .base import Known


@dataclass(frozen=True)
class FastFilter:
    """A classic-BPF program (bytes of struct sock_filter) and what it allows without a stop."""
    bpf: bytes
    arch: str
    allowed: frozenset[str]               # syscalls allowed whatever their arguments
    allowed_args: frozenset[tuple]        # (syscall, values) allowed for exactly these values

    def describe(self) -> str:
        n = len(self.allowed) + len({s for s, _ in self.allowed_args})
        return (f"fast gate: the kernel allowed {n} {self.arch} syscalls the baseline explains without a stop "
                f"({len(self.allowed_args)} of them only with the argument values the baseline has); "
                f"the calls it allowed were not counted")


def build(known: Known, stop_always: frozenset[str], trap_action: int) -> FastFilter:
    """The filter for the host's ABI: ALLOW what ``known`` explains, ``trap_action`` for the rest."""
    import pyseccomp

    arch = syscalls.host_arch()
    f = pyseccomp.SyscallFilter(trap_action)
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, trap_action)    # other ABIs: always look
    f.set_attr(pyseccomp.Attr.CTL_NNP, 0)                   # ptrace_abi.install_filter decides about NNP
    allowed: set[str] = set()
    allowed_args: set[tuple] = set()
    for (a, name) in sorted(known.syscalls):
        if a != arch or name in stop_always or name.startswith("#") or not syscalls.exists(arch, name):
            continue
        spec = syscalls.tracked_args(arch, name)
        if spec is None:
            f.add_rule(pyseccomp.ALLOW, name)
            allowed.add(name)
            continue
        for (a2, n2, vals) in sorted(known.args):
            if a2 != arch or n2 != name or len(vals) != len(spec.indexes):
                continue
            f.add_rule(pyseccomp.ALLOW, name,
                       *[pyseccomp.Arg(i, pyseccomp.EQ, v & 0xFFFFFFFFFFFFFFFF) for i, v in zip(spec.indexes, vals)])
            allowed_args.add((name, vals))
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        bpf = tmp.read()
    return FastFilter(bpf, arch, frozenset(allowed), frozenset(allowed_args))
