"""One row per syscall: what both tracers and the learner need to know about it.

strace keeps everything it knows about a syscall in one row of ``syscallent.h``;
this is that row for what leastpriv records. Each :class:`Semantics` says

* ``kind``: how a tracer handles the call (an open, a call that names paths
  without opening them, bind/connect, socket, exec, fork, ...);
* ``tracked``: the register arguments whose values are recorded (seccomp can
  compare them; design.md "Arguments worth learning");
* ``paths``: the arguments that name a path, each with the argument holding its
  directory fd (None: the cwd) and what the call does to that path;
* ``flags``: the argument holding open flags, mapped to access by
  :func:`open_access` (O_RDONLY -> read, O_WRONLY -> write, O_RDWR -> both;
  ``create`` only when the call really created the file: the kernel's
  FMODE_CREATED for eBPF, "did not exist before" for ptrace).

The ptrace backend reads these rows; the eBPF backend fills its in-kernel
``specs`` map from them and compiles against ``tracer/ebpf/ebpf_semantics.h``,
generated from this module by ``tools/gen_ebpf_semantics.py`` (``make tables``):
no number here is typed a second time in C.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from ..values import Value, value

# kinds; their numbers are the C program's K_* (generated)
KINDS = ("none", "open", "creat", "openat2", "bind", "connect", "socket", "close", "exec", "fork", "pathop")
KIND = {k: i for i, k in enumerate(KINDS)}

# access bits (ACC_* in C); the Recording's access kinds
ACCESS_BITS = {"read": 1, "write": 2, "create": 4, "exec": 8}

AT_FDCWD = -100
# creat(path, mode) is open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
CREAT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
# O_ACCMODE -> what the open lets the process do (3 is read + write for the kernel's permission checks)
OPEN_ACCMODE = {os.O_RDONLY: ("read",), os.O_WRONLY: ("write",), os.O_RDWR: ("read", "write"), 3: ("read", "write")}


@value
class TrackedArgs(Value):
    """Which register arguments of a syscall carry security meaning.

    ``names`` and ``indexes`` are parallel; the values of these arguments are
    recorded together (a tuple per call), because seccomp ANDs the conditions
    of one rule and alternatives need separate rules.
    """

    names: tuple[str, ...]
    indexes: tuple[int, ...]
    groups: tuple[str | None, ...]  # constants group used to name values


@value
class PathArg(Value):
    """An argument that names a path: its index, its dirfd's index (None: the cwd), what the call does to it."""

    index: int
    dirfd: int | None
    access: tuple[str, ...]


@value
class Semantics(Value):
    """The row of one syscall (see the module's docstring)."""

    name: str
    kind: str = "none"
    tracked: TrackedArgs | None = None
    paths: tuple[PathArg, ...] = ()
    flags: int | None = None          # open flags argument (openat2: the struct open_how pointer)
    ptr_flags: bool = False           # the tracked value is the u64 argument 0 points to (clone3)


def _p(index: int, dirfd: int | None, *access: str) -> PathArg:
    return PathArg(index, dirfd, tuple(access))


def _t(names, indexes, groups) -> TrackedArgs:
    return TrackedArgs(tuple(names), tuple(indexes), tuple(groups))


_CLONE = _t(("flags",), (0,), ("clone",))
_SOCKET = _t(("domain", "type", "protocol"), (0, 1, 2), ("socket_family", "socket_type", None))
_PROT = _t(("prot",), (2,), ("mmap_prot",))

_ROWS = (
    # the open family: the path is the opened file's (resolved by the kernel), access from the flags
    Semantics("open", "open", paths=(_p(0, None),), flags=1),
    Semantics("openat", "open", paths=(_p(1, 0),), flags=2),
    Semantics("creat", "creat", paths=(_p(0, None),)),
    Semantics("openat2", "openat2", paths=(_p(1, 0),), flags=2),
    # calls that name paths they create or modify, without opening them
    Semantics("mkdir", "pathop", paths=(_p(0, None, "create"),)),
    Semantics("mkdirat", "pathop", paths=(_p(1, 0, "create"),)),
    Semantics("rmdir", "pathop", paths=(_p(0, None, "write"),)),
    Semantics("unlink", "pathop", paths=(_p(0, None, "write"),)),
    Semantics("unlinkat", "pathop", paths=(_p(1, 0, "write"),)),
    Semantics("rename", "pathop", paths=(_p(0, None, "write"), _p(1, None, "create"))),
    Semantics("renameat", "pathop", paths=(_p(1, 0, "write"), _p(3, 2, "create"))),
    Semantics("renameat2", "pathop", paths=(_p(1, 0, "write"), _p(3, 2, "create"))),
    Semantics("link", "pathop", paths=(_p(0, None, "read"), _p(1, None, "create"))),
    Semantics("linkat", "pathop", paths=(_p(1, 0, "read"), _p(3, 2, "create"))),
    Semantics("symlink", "pathop", paths=(_p(1, None, "create"),)),
    Semantics("symlinkat", "pathop", paths=(_p(2, 1, "create"),)),
    Semantics("mknod", "pathop", paths=(_p(0, None, "create"),)),
    Semantics("mknodat", "pathop", paths=(_p(1, 0, "create"),)),
    Semantics("truncate", "pathop", paths=(_p(0, None, "write"),)),
    Semantics("truncate64", "pathop", paths=(_p(0, None, "write"),)),
    # network
    Semantics("bind", "bind"),
    Semantics("connect", "connect"),
    Semantics("socket", "socket", tracked=_SOCKET),
    Semantics("close", "close"),
    # processes
    Semantics("execve", "exec", paths=(_p(0, None, "exec"),)),
    Semantics("execveat", "exec", paths=(_p(1, 0, "exec"),)),
    Semantics("clone", "fork", tracked=_CLONE),
    Semantics("clone3", "fork", tracked=_CLONE, ptr_flags=True),
    Semantics("fork", "fork"),
    Semantics("vfork", "fork"),
    # tracked values only
    Semantics("unshare", tracked=_CLONE),
    Semantics("setns", tracked=_t(("nstype",), (1,), ("clone",))),
    Semantics("socketpair", tracked=_SOCKET),
    Semantics("personality", tracked=_t(("persona",), (0,), ("personality",))),
    Semantics("prctl", tracked=_t(("option",), (0,), ("prctl",))),
    Semantics("ioctl", tracked=_t(("request",), (1,), ("ioctl",))),
    Semantics("mmap", tracked=_PROT),
    Semantics("mmap2", tracked=_PROT),
    Semantics("mprotect", tracked=_PROT),
    Semantics("pkey_mprotect", tracked=_PROT),
    Semantics("setsockopt", tracked=_t(("level", "optname"), (1, 2), ("sol", "sockopt"))),   # optname: named by level
    Semantics("kill", tracked=_t(("sig",), (1,), ("signal",))),
    Semantics("tkill", tracked=_t(("sig",), (1,), ("signal",))),
    Semantics("tgkill", tracked=_t(("sig",), (2,), ("signal",))),
)

SEMANTICS: Mapping[str, Semantics] = {r.name: r for r in _ROWS}

# s390/s390x (CONFIG_CLONE_BACKWARDS2) pass clone's flags second.
_ARCH_OVERRIDES: Mapping[tuple[str, str], Semantics] = {
    (arch, "clone"): Semantics("clone", "fork", tracked=_t(("flags",), (1,), ("clone",))) for arch in ("s390", "s390x")
}


def of(arch: str, syscall: str) -> Semantics | None:
    """The row of ``syscall`` on ``arch`` (None: nothing recorded beyond its count and results)."""
    return _ARCH_OVERRIDES.get((arch, syscall)) or SEMANTICS.get(syscall)


def tracked_args(arch: str, syscall: str) -> TrackedArgs | None:
    """The arguments of ``syscall`` on ``arch`` whose values are recorded."""
    row = of(arch, syscall)
    return row.tracked if row is not None else None


def tracked_syscalls() -> frozenset[str]:
    return frozenset(n for n, r in SEMANTICS.items() if r.tracked is not None and not r.ptr_flags)


def open_access(flags: int, created: bool) -> tuple[str, ...]:
    """What an open with ``flags`` gave the process; ``created``: the call created the file."""
    return OPEN_ACCMODE[flags & os.O_ACCMODE] + (("create",) if created else ())


def c_header() -> str:
    """The C definitions the eBPF program compiles against (tracer/ebpf/ebpf_semantics.h)."""
    out = ["// Generated from leastpriv/kernel/semantics.py by tools/gen_ebpf_semantics.py (make tables).",
           "// Do not edit: change the Python table and regenerate.", "#pragma once", ""]
    out += [f"#define K_{k.upper()} {i}" for k, i in KIND.items()]
    out.append("")
    out += [f"#define ACC_{a.upper()} {bit}" for a, bit in ACCESS_BITS.items()]
    out.append("")

    def bits(acc: tuple[str, ...]) -> int:
        return sum(ACCESS_BITS[a] for a in acc)

    cases = " : ".join(f"(m) == {m} ? {bits(acc)}" for m, acc in sorted(OPEN_ACCMODE.items()))
    out.append(f"#define OPEN_ACC(m) ({cases} : 0)   // O_ACCMODE -> access bits")
    out.append(f"#define CREAT_FLAGS 0{CREAT_FLAGS:o}   // creat() = O_WRONLY | O_CREAT | O_TRUNC")
    out.append(f"#define AT_FDCWD_ ({AT_FDCWD})")
    return "\n".join(out) + "\n"
