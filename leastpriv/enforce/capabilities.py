"""Drop capabilities to a profile's learned set before exec (ctypes: prctl, capset).

In the child, before exec: every capability outside the learned set leaves
the bounding set (PR_CAPBSET_DROP, which needs CAP_SETPCAP: without it the
bounding set is left as is and reported), the ambient set is cleared,
inheritable becomes the learned set (within what is permitted), and permitted
and effective become the learned set too -- except CAP_SYS_ADMIN is kept
until exec when the seccomp filter must be loaded without no_new_privs (root,
profile says the workload gains privileges): exec recomputes permitted and
effective from the bounding and inheritable sets, so it is gone afterwards.

For a root workload exec then gives exactly the learned set (root's file
capabilities are masked by the bounding set). A non-root workload gets the
learned set through the ambient set when leastpriv holds those capabilities,
nothing otherwise.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Iterable

from ..kernel import constants
from ..errors import UserError

PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_CLEAR_ALL = 47, 2, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return max(constants.group("capability").values())


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    h = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    d = (_Data * 2)()
    if _libc.capget(ctypes.byref(h), d) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capget: {os.strerror(e)}")
    return (d[0].effective | d[1].effective << 32, d[0].permitted | d[1].permitted << 32,
            d[0].inheritable | d[1].inheritable << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    h = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    d = (_Data * 2)()
    for i in (0, 1):
        d[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        d[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        d[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(h), d) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


def _prctl(*args) -> int:
    res = _libc.prctl(*[ctypes.c_ulong(a) for a in args])
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl{args[:2]}: {os.strerror(e)}")
    return res


def mask_of(names: Iterable[str]) -> int:
    table = constants.group("capability")
    m = 0
    for n in names:
        if n not in table:
            raise UserError(f"profile: unknown capability {n!r}")
        m |= 1 << table[n]
    return m


@dataclass
class Plan:
    keep: int
    keep_sys_admin_until_exec: bool = False
    notes: list[str] = field(default_factory=list)

    def apply(self) -> None:
        """In the child, before the seccomp filter and exec."""
        eff, perm, _inh = capget()
        top = last_cap()
        if perm & (1 << 8):   # CAP_SETPCAP: the bounding set can shrink
            for cap in range(top + 1):
                if not self.keep & (1 << cap) and _prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
                    _prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        try:
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        except OSError:
            pass   # kernels before 4.3 have no ambient set
        new_perm = perm & self.keep
        extra = (1 << 21) & perm if self.keep_sys_admin_until_exec else 0   # CAP_SYS_ADMIN
        capset((eff & self.keep) | extra, new_perm | extra, new_perm)
        if os.geteuid() != 0:
            for cap in range(top + 1):
                if new_perm & (1 << cap):
                    try:
                        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)
                    except OSError:
                        pass


def plan(capabilities: Iterable[str], *, keep_sys_admin_until_exec: bool = False) -> Plan:
    caps = sorted(set(capabilities))
    p = Plan(mask_of(caps), keep_sys_admin_until_exec)
    _eff, perm, _inh = capget()
    missing = [c for c in caps if not perm & mask_of([c])]
    if missing:
        p.notes.append(f"capabilities: the profile needs {', '.join(missing)}, which leastpriv does not hold "
                       f"here: the workload will not have them")
    if caps and not perm & (1 << 8):
        p.notes.append("capabilities: no CAP_SETPCAP, the bounding set is left as it is")
    return p
