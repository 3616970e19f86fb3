"""The SELinux policy the ``selinux`` export targets: file labels and port types, read with libselinux/libsepol.

A udica-style module grants the container's domain access to *types*, not
paths; which type a path or a port carries is decided by the target's policy.
This module asks the policy the way the kernel and the tools do:

* file labels: libselinux's ``selabel_lookup`` over the policy's
  ``contexts/files/file_contexts`` (with its ``.local``/``.homedirs``/``.subs``
  companions), what ``matchpathcon``/``restorecon`` use. Entries marked
  ``<<none>>`` (``/tmp/.*``, ``/proc``, ...) are labelled when the file is made:
  the caller falls back to the parent directory (a new file takes its
  directory's type when no type transition applies).
* port types: the ``portcon`` statements of the binary policy
  (``policy/policy.N``) through libsepol's port iterator, first match in
  policy order, which is what the kernel's ``security_port_sid`` does.

Both libraries are called through ctypes (Debian: libselinux1, libsepol2);
no SELinux kernel is needed: nothing is loaded, only files are read.
"""
from __future__ import annotations

import ctypes
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError

_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")   # a type name CIL can carry
_SELABEL_CTX_FILE = 0
_SELABEL_OPT_PATH = 3
_IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}


class _Opt(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("value", ctypes.c_char_p)]


def _lib(name: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise UserError(f"--format selinux: cannot load {name} ({exc}); install it (Debian: libselinux1, "
                        "libsepol2)") from None


def default_root() -> str:
    """This host's policy directory (libselinux: /etc/selinux/<SELINUXTYPE>)."""
    se = _lib("libselinux.so.1")
    se.selinux_policy_root.restype = ctypes.c_char_p
    root = se.selinux_policy_root()
    return os.fsdecode(root) if root else "/etc/selinux/default"


def _binary_policy(root: str) -> str | None:
    d = os.path.join(root, "policy")
    try:
        versions = [int(n.split(".", 1)[1]) for n in os.listdir(d)
                    if n.startswith("policy.") and n.split(".", 1)[1].isdigit()]
    except OSError:
        return None
    return os.path.join(d, f"policy.{max(versions)}") if versions else None


@dataclass(frozen=True)
class PortLabel:
    proto: str
    low: int
    high: int
    type: str


class TargetPolicy:
    """File labels and port types of one installed policy (a directory like /etc/selinux/targeted)."""

    def __init__(self, root: str | None = None):
        self.root = root or default_root()
        self.file_contexts = os.path.join(self.root, "contexts", "files", "file_contexts")
        if not os.path.isfile(self.file_contexts):
            raise UserError(f"--format selinux: {self.file_contexts}: no file contexts (install a policy, e.g. "
                            "Debian's selinux-policy-default, or give the target's policy directory with "
                            "--selinux-policy DIR)")
        self.binary = _binary_policy(self.root)
        if self.binary is None:
            raise UserError(f"--format selinux: {self.root}/policy: no binary policy (policy.N)")
        self._se = _lib("libselinux.so.1")
        self._se.selabel_open.restype = ctypes.c_void_p
        self._se.selabel_open.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_uint]
        self._se.selabel_lookup.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                            ctypes.c_int]
        self._se.selabel_close.argtypes = [ctypes.c_void_p]
        self._se.freecon.argtypes = [ctypes.c_void_p]
        self._se.is_selinux_enabled.restype = ctypes.c_int
        opts = (_Opt * 1)(_Opt(_SELABEL_OPT_PATH, os.fsencode(self.file_contexts)))
        self._handle = self._se.selabel_open(_SELABEL_CTX_FILE, opts, 1)
        if not self._handle:
            raise UserError(f"--format selinux: {self.file_contexts}: libselinux cannot read it "
                            f"({os.strerror(ctypes.get_errno() or 22)})")
        self.ports = _read_ports(self.binary)
        self._cache: dict[tuple[str, int], str | None] = {}

    def close(self) -> None:
        if self._handle:
            self._se.selabel_close(self._handle)
            self._handle = None

    def __enter__(self) -> "TargetPolicy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------- files
    def lookup(self, path: str, mode: int = 0) -> str | None:
        """The type file_contexts gives PATH (a file of MODE's kind; 0 = any), None for <<none>>/no entry."""
        key = (path, stat.S_IFMT(mode))
        if key in self._cache:
            return self._cache[key]
        con = ctypes.c_void_p()
        try:
            encoded = os.fsencode(path)
        except UnicodeEncodeError:
            self._cache[key] = None
            return None
        t = None
        if b"\0" not in encoded and self._se.selabel_lookup(self._handle, ctypes.byref(con), encoded,
                                                             stat.S_IFMT(mode)) == 0 and con.value:
            value = ctypes.string_at(con.value)
            self._se.freecon(con)
            parts = value.decode("utf-8", "replace").split(":")
            t = parts[2] if len(parts) >= 3 and _TYPE.match(parts[2]) else None
        self._cache[key] = t
        return t

    def kernel_enforces(self) -> bool:
        """Whether THIS kernel has SELinux enabled (a module could be loaded here)."""
        return self._se.is_selinux_enabled() == 1

    # ------------------------------------------------------------- ports
    def port_type(self, proto: str, port: int) -> str | None:
        """The type of PROTO port PORT: the first portcon that contains it, in policy order (as the kernel)."""
        for p in self.ports:
            if p.proto == proto and p.low <= port <= p.high:
                return p.type
        return None


def _read_ports(binary: str) -> tuple[PortLabel, ...]:
    sp = _lib("libsepol.so.2")
    vp = ctypes.c_void_p
    sp.sepol_handle_create.restype = vp
    sp.sepol_handle_destroy.argtypes = [vp]
    sp.sepol_policy_file_create.argtypes = [ctypes.POINTER(vp)]
    sp.sepol_policy_file_free.argtypes = [vp]
    sp.sepol_policydb_create.argtypes = [ctypes.POINTER(vp)]
    sp.sepol_policydb_free.argtypes = [vp]
    sp.sepol_policy_file_set_mem.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t]
    sp.sepol_policy_file_set_handle.argtypes = [vp, vp]
    sp.sepol_policydb_read.argtypes = [vp, vp]
    sp.sepol_msg_set_callback.argtypes = [vp, vp, vp]
    for n in ("sepol_port_get_low", "sepol_port_get_high", "sepol_port_get_proto"):
        getattr(sp, n).argtypes = [vp]
    sp.sepol_port_get_con.argtypes = [vp]
    sp.sepol_port_get_con.restype = vp
    sp.sepol_context_get_type.argtypes = [vp]
    sp.sepol_context_get_type.restype = ctypes.c_char_p
    sp.sepol_port_get_proto_str.argtypes = [ctypes.c_int]
    sp.sepol_port_get_proto_str.restype = ctypes.c_char_p
    callback_t = ctypes.CFUNCTYPE(ctypes.c_int, vp, vp)
    sp.sepol_port_iterate.argtypes = [vp, vp, callback_t, vp]
    try:
        with open(binary, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"--format selinux: {binary}: {exc.strerror}") from None
    handle, pf, pdb = sp.sepol_handle_create(), vp(), vp()
    sp.sepol_msg_set_callback(handle, None, None)   # libsepol's own messages would go to stderr
    ports: list[PortLabel] = []
    try:
        if sp.sepol_policy_file_create(ctypes.byref(pf)) or sp.sepol_policydb_create(ctypes.byref(pdb)):
            raise UserError(f"--format selinux: {binary}: libsepol cannot allocate a policy")
        sp.sepol_policy_file_set_mem(pf, data, len(data))
        sp.sepol_policy_file_set_handle(pf, handle)
        if sp.sepol_policydb_read(pdb, pf) != 0:
            raise UserError(f"--format selinux: {binary}: not a binary SELinux policy libsepol can read")

        def one(port: int, _arg: int) -> int:
            con = sp.sepol_port_get_con(port)
            t = (sp.sepol_context_get_type(con) or b"").decode("ascii", "replace")
            proto = (sp.sepol_port_get_proto_str(sp.sepol_port_get_proto(port)) or b"").decode("ascii", "replace")
            if _TYPE.match(t):
                ports.append(PortLabel(proto, sp.sepol_port_get_low(port), sp.sepol_port_get_high(port), t))
            return 0

        keep: Callable = callback_t(one)
        sp.sepol_port_iterate(handle, pdb, keep, None)
    finally:
        if pdb:
            sp.sepol_policydb_free(pdb)
        if pf:
            sp.sepol_policy_file_free(pf)
        sp.sepol_handle_destroy(handle)
    return tuple(ports)
