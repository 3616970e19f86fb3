"""Choosing a backend: auto picks eBPF when running as root with bcc usable, else ptrace."""
from __future__ import annotations

import os

from ..errors import UserError
from .base import Backend, Command, Target

BACKENDS = ("auto", "ptrace", "ebpf")


def load(name: str) -> type[Backend]:
    """The backend class by name (imported on first use: bcc only when eBPF is asked for)."""
    if name == "ptrace":
        from .ptrace import PtraceBackend
        return PtraceBackend
    if name == "ebpf":
        from .ebpf import EbpfBackend
        return EbpfBackend
    raise UserError(f"--backend: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")


def choose(name: str, target: Target) -> tuple[Backend, str]:
    """(backend instance, one line saying which was chosen and why)."""
    if name != "auto":
        cls = load(name)
        ok, why = cls.usable()
        if not ok:
            hint = ", or use --backend ptrace (for a command)" if name == "ebpf" and isinstance(target, Command) else ""
            raise UserError(f"--backend {name}: not usable here: {why}{hint}")
        return cls(), f"backend {name} (asked for)"
    try:
        ebpf = load("ebpf")
        ok, why = ebpf.usable()
    except (ImportError, UserError) as exc:
        ok, why = False, str(exc)
    if ok:
        return ebpf(), "backend ebpf (auto: root and bcc usable)"
    if not isinstance(target, Command):
        raise UserError(f"attaching to a running process or cgroup needs the ebpf backend (ptrace traces only a "
                        f"command it starts), which is not usable here: {why}")
    reason = "not root" if os.geteuid() != 0 else why
    return load("ptrace")(), f"backend ptrace (auto: ebpf not usable: {reason})"
