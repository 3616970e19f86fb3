"""The shapes userspace shares with ``ebpf.c``: ABI numbers, table sizes, event types and their ctypes
views, status bits, and the kernel's own struct offsets (from its BTF, cached per kernel).

A constant here and its ``#define`` in ``ebpf.c`` (or the ``-D`` that :mod:`.program` passes) are one fact
written in two languages: change both together.
"""
from __future__ import annotations

import ctypes as ct
import hashlib
import json
import os
import platform
from pathlib import Path

from ...errors import UserError
from ...fileio import CACHE_MODE, write_atomic
from ...kernel import syscalls
from ..recording import Endpoint
from ..sockaddr import endpoint
from .btf import BtfError, kernel_btf

ABI_NATIVE, ABI_I386, ABI_X32 = 0, 1, 2
X32_BIT = 0x40000000       # an x32 call's number has it (__X32_SYSCALL_BIT)
F_COMPAT = 2               # a process record's flag: it made an i386 call (ebpf.c F_COMPAT)
NARCH = 3
SLOTS = 640                 # syscall numbers per ABI counted in arrays (others in a hash)
WORDS = 32                  # bitmap words (>= NARCH * SLOTS / 64; as in ebpf.c)
PBUF = 4096                 # a path event's buffer (PATH_MAX)
MAX_DEPTH = 32 * 8          # components and mount crossings the kernel walks (ebpf.c: WALK_CHUNK * MAX_CHUNKS)
ADDR_MAX = 128              # a sockaddr's bytes in an address event
NO_ARG = 255                # "no such argument" in the specs map
# file->f_mode bit the kernel sets when an open created the file (include/linux/fs.h; not in BTF, which has
# no macros; stable since 4.19 and checked by tests/test_backend_parity.py on the running kernel)
FMODE_CREATED = 0x100000

EV_SYSCALL, EV_ARGS, EV_PATH, EV_ADDR, EV_EXEC, EV_FORK, EV_EXIT, EV_NEWPROC, EV_SCRIPT, EV_EXE = range(1, 11)
ST_TRUNC, ST_OUTSIDE, ST_JOIN, ST_CWD = 1, 2, 4, 8      # path status bits (ebpf.c)
# the `lost` map's counters, by index (ebpf.c: LOST_*)
LOST_NAMES = ("ring buffer full", "process table full", "argument map full", "capability map full",
              "in-flight map full (a path or address was not captured)", "syscall-number map full",
              "errno map full", "an opened fd was not in the task's fd table (a path was not captured)",
              "the path walker could not be called (a path was not captured)")


def abi_arch() -> dict[int, str]:
    """The program's ABI numbers -> libseccomp architecture names on this host."""
    host = syscalls.host_arch()
    if host == "x86_64":
        return {ABI_NATIVE: "x86_64", ABI_I386: "x86", ABI_X32: "x32"}
    return {ABI_NATIVE: host}


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


def payload(data, size: int, header: type, n: int) -> bytes:
    """The ``n`` bytes after an event's header (never past the record's ``size``)."""
    start = ct.sizeof(header)
    n = max(0, min(n, size - start))
    return ct.string_at(data + start, n) if n else b""


def text(raw: bytes) -> str:
    """A NUL-terminated name from an event."""
    return raw.split(b"\0", 1)[0].decode(errors="surrogateescape")


def endpoint_of(op: str, raw: bytes, sock: SockInfo, cwd: str = "") -> Endpoint | None:
    """The endpoint of a bind/connect event: its sockaddr and the socket's type (unknown: all ones)."""
    return endpoint(op, raw, None if sock.type == 0xFFFFFFFF else sock.type, sock.protocol, cwd)


# --- kernel struct offsets, from the running kernel's BTF (cached per kernel) --

def cache_dir() -> Path:
    """Where the per-kernel caches live (BTF offsets, kernel symbols)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "leastpriv"


def kernel_offsets() -> dict[str, int]:
    """task_struct offsets the BPF program needs, from the running kernel's BTF (cached)."""
    with open("/sys/kernel/btf/vmlinux", "rb") as f:   # keyed by the BTF itself: a rebuilt kernel misses
        key = hashlib.blake2b(f.read(), digest_size=12).hexdigest()
    cache = cache_dir() / f"btf-offsets-v2-{platform.release()}-{key}.json"
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
