"""Syscall name <-> number per architecture, and which arguments matter.

The numbers come from ``kernel/syscall_tables/`` (a file per architecture, read when that architecture is
first met), generated from libseccomp's syscalls.csv by ``tools/gen_syscalls.py`` (``make tables``); nothing here is
typed by hand but the naming conventions between the kernel's audit
architectures, libseccomp and the OCI spec.

Architecture names are libseccomp's: x86_64, x86 (i386), x32, aarch64, arm,
riscv64, s390x, ppc64le, ... An unknown syscall number is named ``#<nr>``
so it is recorded, never dropped.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

from .data import get_data
from . import constants

X32_SYSCALL_BIT = 0x40000000


@lru_cache(maxsize=None)
def _index() -> frozenset[str]:
    return frozenset(json.loads(get_data(__package__, "syscall_tables/index.json"))["arches"])


def arches() -> list[str]:
    """Every architecture the tables know."""
    return sorted(_index())


@lru_cache(maxsize=None)
def table(arch: str) -> dict[str, int]:
    """name -> number for ``arch`` (KeyError for an unknown architecture)."""
    if arch not in _index():   # (a name from a profile is never made into a file name unchecked)
        raise KeyError(arch)
    return json.loads(get_data(__package__, f"syscall_tables/{arch}.json"))


@lru_cache(maxsize=None)
def reverse_table(arch: str) -> dict[int, str]:
    """number -> name for ``arch``."""
    return {nr: name for name, nr in table(arch).items()}


def name(arch: str, nr: int) -> str:
    """The syscall's name, or ``#<nr>`` when the table does not know it."""
    return reverse_table(arch).get(nr, f"#{nr}")


def number(arch: str, syscall: str) -> int | None:
    """The syscall's number on ``arch``; None when it does not exist there."""
    if syscall.startswith("#"):
        return int(syscall[1:])
    return table(arch).get(syscall)


def exists(arch: str, syscall: str) -> bool:
    return syscall.startswith("#") or syscall in table(arch)


# --- architectures -------------------------------------------------------

# AUDIT_ARCH_* constant name (linux/audit.h) -> libseccomp architecture name.
_AUDIT_NAMES = {
    "AUDIT_ARCH_X86_64": "x86_64",
    "AUDIT_ARCH_I386": "x86",
    "AUDIT_ARCH_AARCH64": "aarch64",
    "AUDIT_ARCH_ARM": "arm",
    "AUDIT_ARCH_RISCV64": "riscv64",
    "AUDIT_ARCH_S390X": "s390x",
    "AUDIT_ARCH_S390": "s390",
    "AUDIT_ARCH_PPC64LE": "ppc64le",
    "AUDIT_ARCH_PPC64": "ppc64",
    "AUDIT_ARCH_PPC": "ppc",
    "AUDIT_ARCH_MIPS": "mips",
    "AUDIT_ARCH_MIPSEL": "mipsel",
    "AUDIT_ARCH_MIPS64": "mips64",
    "AUDIT_ARCH_MIPSEL64": "mipsel64",
    "AUDIT_ARCH_MIPS64N32": "mips64n32",
    "AUDIT_ARCH_MIPSEL64N32": "mipsel64n32",
    "AUDIT_ARCH_LOONGARCH64": "loongarch64",
    "AUDIT_ARCH_PARISC": "parisc",
    "AUDIT_ARCH_PARISC64": "parisc64",
    "AUDIT_ARCH_M68K": "m68k",
    "AUDIT_ARCH_SH": "sh",
}


@lru_cache(maxsize=None)
def _audit_map() -> dict[int, str]:
    values = constants.group("audit_arch")
    return {values[k]: v for k, v in _AUDIT_NAMES.items() if k in values}


def audit_arch_value(arch: str) -> int:
    """AUDIT_ARCH_* value of ``arch`` (x32 shares x86_64's)."""
    if arch == "x32":
        arch = "x86_64"
    for value, name_ in _audit_map().items():
        if name_ == arch:
            return value
    raise KeyError(arch)


def from_audit(audit_arch: int, nr: int) -> tuple[str, int]:
    """Turn PTRACE_GET_SYSCALL_INFO's (arch, nr) into (arch name, table number).

    x32 calls arrive with AUDIT_ARCH_X86_64 and bit 30 set in the number.
    An architecture the tables do not know is named ``audit:0x...``.
    """
    arch = _audit_map().get(audit_arch, f"audit:{audit_arch:#x}")
    if arch == "x86_64" and nr & X32_SYSCALL_BIT and nr != -1:
        return "x32", nr & ~X32_SYSCALL_BIT
    return arch, nr


_MACHINE = {
    "x86_64": "x86_64", "amd64": "x86_64", "i386": "x86", "i686": "x86",
    "aarch64": "aarch64", "arm64": "aarch64", "armv7l": "arm", "armv6l": "arm",
    "riscv64": "riscv64", "s390x": "s390x", "ppc64le": "ppc64le", "ppc64": "ppc64",
    "loongarch64": "loongarch64", "mips64": "mips64",
}


def host_arch() -> str:
    """This machine's native architecture, by libseccomp's name."""
    machine = os.uname().machine   # platform.machine() on Linux, without importing platform (~1.3 ms)
    return _MACHINE.get(machine, machine)


# The ABIs a kernel of the native architecture also runs, as runtimes list
# them in a seccomp profile's "architectures" (Docker's archMap).
COMPAT = {
    "x86_64": ("x86", "x32"),
    "aarch64": ("arm",),
    "s390x": ("s390",),
    "ppc64le": (),
    "ppc64": ("ppc",),
    "riscv64": (),
    "mips64": ("mips", "mips64n32"),
    "mipsel64": ("mipsel", "mipsel64n32"),
    "loongarch64": (),
}


def oci_arch(arch: str) -> str:
    """libseccomp name -> OCI/Docker ``SCMP_ARCH_*`` name."""
    return "SCMP_ARCH_" + arch.upper()


def from_oci_arch(scmp: str) -> str:
    return scmp.removeprefix("SCMP_ARCH_").lower()


# --- arguments worth learning (design.md) ---------------------------------


# Which argument values are recorded is one column of the syscall semantics table (kernel/semantics.py).
from .semantics import TrackedArgs, tracked_args, tracked_syscalls  # noqa: E402,F401
