"""The kernel ABI the ptrace backend needs: ptrace(2), seccomp and process_vm_readv, in ctypes.

- ptrace(2) through libc (``libc.ptrace``): a checked call that raises OSError with errno, the raw
  binding the slow paths use to learn errno, and a bare pointer for the hot loop;
- the requests, options and events the backend uses, PTRACE_SEIZE / PTRACE_INTERRUPT /
  PTRACE_LISTEN and PTRACE_GET_SYSCALL_INFO (0x420e, Linux 5.3) with its ``struct
  ptrace_syscall_info`` (op, arch, nr, args / rval);
- installing a classic-BPF seccomp filter (``struct sock_fprog``) with
  prctl(PR_SET_SECCOMP) and PR_SET_NO_NEW_PRIVS;
- process_vm_readv(2) to read strings and sockaddrs from a tracee.

Only numbers fixed by the kernel's user ABI (uapi headers) appear here.

python-ptrace is not used: of it this backend took the libc ptrace() binding (one ctypes line),
three request numbers, five option bits, four event numbers and ``struct iovec``, and importing its
package costs ~11 ms of every start on the 2-vCPU machine this was measured on (its ``__init__``
brings logging, traceback, textwrap, its signal names and CPU probing) against ~0.3 ms for what is
below. Its debugger layer (breakpoints, registers, disassembly) is what it is for; leastpriv needs
none of it.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import sys
from ctypes import (POINTER, Structure, Union, addressof, byref, c_int, c_int64, c_size_t, c_uint8, c_uint16,
                    c_uint32, c_uint64, c_ulong, c_void_p, sizeof)

# the C library the interpreter runs on (glibc: loaded already; its soname, no ldconfig lookup)
LIBC_NAME = "libc.so.6" if sys.platform.startswith("linux") else None
libc = ctypes.CDLL(LIBC_NAME, use_errno=True)


class iovec_struct(Structure):   # struct iovec (<sys/uio.h>)
    _fields_ = (("buf", c_void_p), ("len", c_size_t))


# --- ptrace requests and options (include/uapi/linux/ptrace.h) -------------
PTRACE_CONT = 7
PTRACE_SYSCALL = 24
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACEVFORK = 0x04
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

PTRACE_SYSCALL_INFO_NONE = 0
PTRACE_SYSCALL_INFO_ENTRY = 1
PTRACE_SYSCALL_INFO_EXIT = 2
PTRACE_SYSCALL_INFO_SECCOMP = 3

# wait(2)
WALL = 0x40000000   # __WALL: threads and processes alike

# waitpid statuses of the two hot stops, compared as whole ints:
#   0x7f = stopped, (SIGTRAP | PTRACE_EVENT_SECCOMP << 8) << 8   -> seccomp stop
#   0x7f, (SIGTRAP | 0x80) << 8 (PTRACE_O_TRACESYSGOOD)          -> syscall entry/exit stop
STATUS_SECCOMP = 0x7F | ((5 | (PTRACE_EVENT_SECCOMP << 8)) << 8)
STATUS_SYSCALL = 0x7F | ((5 | 0x80) << 8)

# --- seccomp (include/uapi/linux/seccomp.h, filter.h, prctl.h) -------------
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_RET_K = 0x06      # BPF_RET | BPF_K


class SyscallInfo(Structure):
    """struct ptrace_syscall_info (flattened: the entry/seccomp ``nr`` and the exit ``rval`` share offset 24)."""

    class _U(Union):
        class _Entry(Structure):
            _fields_ = (("nr", c_uint64), ("args", c_uint64 * 6), ("ret_data", c_uint32), ("reserved2", c_uint32))

        class _Exit(Structure):
            _fields_ = (("rval", c_int64), ("is_error", c_uint8))

        _anonymous_ = ("entry", "exit")
        _fields_ = (("entry", _Entry), ("exit", _Exit))

    _anonymous_ = ("u",)
    _fields_ = (("op", c_uint8), ("reserved", c_uint8), ("flags", c_uint16), ("arch", c_uint32),
                ("instruction_pointer", c_uint64), ("stack_pointer", c_uint64), ("u", _U))


class SockFilter(Structure):
    _fields_ = (("code", c_uint16), ("jt", c_uint8), ("jf", c_uint8), ("k", c_uint32))


class SockFprog(Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", POINTER(SockFilter)))


# --- ptrace calls ------------------------------------------------------------

# libc's ptrace with its C types (errno kept by the CDLL): the slow paths' raw call, -1 as
# (unsigned long)-1 on failure, errno then from get_errno.
raw_ptrace = libc.ptrace
raw_ptrace.argtypes = (c_ulong, c_ulong, c_ulong, c_ulong)
raw_ptrace.restype = c_ulong
PTRACE_FAILED = (1 << (8 * sizeof(c_ulong))) - 1    # (unsigned long)-1

# The hot loop's calls: libc's ptrace through a second ctypes pointer that
# *has no argtypes* (ints pass as C ints, pointers as byref objects, the result
# is an int: -1 on failure), *keeps the GIL* (PyDLL: these ptrace requests never
# block) and *does not copy errno* (no use_errno). Each saves a little of the
# ~2 µs ctypes costs per call, at two calls per stop. On failure the caller
# repeats the request through the checked wrapper to learn errno.
fast_ptrace = ctypes.PyDLL(libc._name).ptrace
FAST_FAILED = -1
get_errno = ctypes.get_errno


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    """ptrace(2), checked: OSError (with errno) when it fails."""
    result = raw_ptrace(request, pid, addr, data)
    if result == PTRACE_FAILED:
        err = get_errno()
        raise OSError(err, f"ptrace request {request:#x} on {pid}: {os.strerror(err)}")
    return result


def seize(pid: int, options: int) -> None:
    ptrace(PTRACE_SEIZE, pid, 0, options)


def geteventmsg(pid: int) -> int:
    msg = c_ulong()
    ptrace(PTRACE_GETEVENTMSG, pid, 0, addressof(msg))
    return msg.value


def syscall_info_supported() -> bool:
    """PTRACE_GET_SYSCALL_INFO exists since Linux 5.3."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (5, 3)


# --- seccomp filter --------------------------------------------------------

_prctl = libc.prctl
_prctl.argtypes = (c_int, c_ulong, c_ulong, c_ulong, c_ulong)
_prctl.restype = c_int


def make_filter(action: int = SECCOMP_RET_TRACE):
    """A one-instruction classic-BPF program returning ``action`` for every syscall.

    Returns (prog, keepalive): pass ``prog`` to :func:`install_filter` (in the child).
    """
    insns = (SockFilter * 1)(SockFilter(BPF_RET_K, 0, 0, action))
    prog = SockFprog(1, ctypes.cast(insns, POINTER(SockFilter)))
    return prog, insns


def filter_from_bytes(bpf: bytes):
    """(prog, keepalive) for a classic-BPF program given as the bytes of its struct sock_filter array
    (what libseccomp's seccomp_export_bpf writes)."""
    n = len(bpf) // sizeof(SockFilter)
    insns = (SockFilter * n).from_buffer_copy(bpf[:n * sizeof(SockFilter)])
    prog = SockFprog(n, ctypes.cast(insns, POINTER(SockFilter)))
    return prog, insns


def install_filter(prog) -> int:
    """Install the filter in this process; set no_new_privs first only when the kernel asks for it.

    Without CAP_SYS_ADMIN the kernel refuses a filter (EACCES) unless
    no_new_privs is set. Returns 0 or an errno.
    """
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, addressof(prog), 0, 0) == 0:
        return 0
    err = get_errno()
    if err != _errno.EACCES:
        return err
    if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return get_errno()
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, addressof(prog), 0, 0) == 0:
        return 0
    return get_errno()


def seccomp_filter_works() -> tuple[bool, str]:
    """Can a child of ours install a seccomp filter? Tried in a throwaway thread (with an ALLOW filter).

    A filter, and the no_new_privs that may come with it, belongs to the thread that installs it (no
    SECCOMP_FILTER_FLAG_TSYNC here): the thread's exit takes both away, and nothing else of this process
    ever sees them. (A forked child did this before: ~2-5 ms of every start for a copy of the tracer.)"""
    import _thread

    prog, keep = make_filter(SECCOMP_RET_ALLOW)
    result: list[int] = []
    done = _thread.allocate_lock()
    done.acquire()

    def probe() -> None:
        try:
            result.append(install_filter(prog))
        finally:
            done.release()

    _thread.start_new_thread(probe, ())
    done.acquire()
    del keep
    code = result[0] if result else 255
    if code == 0:
        return True, ""
    return False, f"installing a seccomp filter failed: {os.strerror(code) if 0 < code < 255 else code}"


# --- reading tracee memory -------------------------------------------------

_process_vm_readv = libc.process_vm_readv
_process_vm_readv.argtypes = (c_int, c_void_p, c_ulong, c_void_p, c_ulong, c_ulong)
_process_vm_readv.restype = ctypes.c_ssize_t


class MemReader:
    """process_vm_readv with preallocated buffers (one per tracer)."""

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, size: int = 4096):
        self.buf = ctypes.create_string_buffer(size)
        self.size = size
        self.local = iovec_struct(ctypes.cast(self.buf, c_void_p), size)
        self.remote = iovec_struct(None, 0)
        self._local_p = addressof(self.local)
        self._remote_p = addressof(self.remote)

    def read(self, pid: int, addr: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``addr`` (fewer if the memory ends); b"" on failure."""
        n = min(n, self.size)
        self.local.len = n
        self.remote.buf = addr
        self.remote.len = n
        got = _process_vm_readv(pid, self._local_p, 1, self._remote_p, 1, 0)
        if got <= 0:
            return b""
        return self.buf.raw[:got]

    def string(self, pid: int, addr: int, limit: int = 4096) -> str | None:
        """The NUL-terminated string at ``addr`` (read page by page, never across an unmapped page)."""
        if not addr:
            return None
        out = b""
        page = self.PAGE
        while len(out) < limit:
            n = min(page - (addr % page), 256, limit - len(out))
            chunk = self.read(pid, addr, n)
            if not chunk:
                break
            i = chunk.find(b"\0")
            if i >= 0:
                return (out + chunk[:i]).decode("utf-8", "surrogateescape")
            out += chunk
            addr += len(chunk)
        return out.decode("utf-8", "surrogateescape") if out else None

    def u64(self, pid: int, addr: int) -> int | None:
        b = self.read(pid, addr, 8)
        return int.from_bytes(b, sys.byteorder) if len(b) == 8 else None
