"""Kernel constants by name, from ``kernel/constants.json``.

Generated from the UAPI headers by ``tools/gen_constants.py`` (``make
tables``). Signals and errnos come from Python's own ``signal``/``errno``.
"""
from __future__ import annotations

import errno as _errno
import json
import signal as _signal
from functools import lru_cache

from .data import get_data


@lru_cache(maxsize=None)
def _data() -> dict:
    return json.loads(get_data(__package__, "constants.json"))


@lru_cache(maxsize=None)
def group(name: str) -> dict[str, int]:
    """name -> value for one group: clone, capability, prctl, socket_family, ..."""
    if name == "signal":
        return {s.name: int(s) for s in _signal.Signals}
    if name == "errno":
        return {v: k for k, v in _errno.errorcode.items()}
    return _data()["groups"][name]


def value(group_name: str, name: str) -> int:
    return group(group_name)[name]


# Values shared by several names: which name to show. The kernel's own
# current spelling wins over compatibility aliases.
_PREFER = {"AF_LOCAL": "AF_UNIX", "AF_FILE": "AF_UNIX", "AF_ROUTE": "AF_NETLINK", "PF_LOCAL": "AF_UNIX"}


@lru_cache(maxsize=None)
def _reverse(group_name: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, v in sorted(group(group_name).items()):
        n = _PREFER.get(n, n)
        if v not in out or len(n) < len(out[v]) and n not in _PREFER:
            out[v] = n
    return out


def name_of(group_name: str, val: int) -> str | None:
    """The one name of a value (families, options, capabilities, signals)."""
    return _reverse(group_name).get(val)


CLONE_NAMESPACES = ("CLONE_NEWNS", "CLONE_NEWCGROUP", "CLONE_NEWUTS", "CLONE_NEWIPC",
                    "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET", "CLONE_NEWTIME")


def namespace_mask() -> int:
    g = group("clone")
    mask = 0
    for n in CLONE_NAMESPACES:
        mask |= g.get(n, 0)
    return mask


def describe(group_name: str | None, val: int) -> str:
    """A readable rendering of an argument value: a name, flags joined by |, or hex."""
    if group_name is None or group_name == "sockopt":   # sockopt: named by its level (describe_args)
        return str(val)
    if group_name == "socket_type":
        flags = group("socket_type")
        base = val & 0xF
        parts = [name_of("socket_type", base) or str(base)]
        for fl in ("SOCK_NONBLOCK", "SOCK_CLOEXEC"):
            if val & flags[fl]:
                parts.append(fl)
        return "|".join(parts)
    if group_name in ("clone", "mmap_prot"):
        if group_name == "clone":
            # low byte of clone flags is the exit signal
            sig = val & 0xFF
            rest = val & ~0xFF
        else:
            sig, rest = 0, val
        parts = []
        for n, bit in sorted(group(group_name).items(), key=lambda kv: kv[1]):
            if bit and bit & (bit - 1) == 0 and rest & bit:
                parts.append(n)
                rest &= ~bit
        if rest:
            parts.append(hex(rest))
        if sig:
            parts.append(name_of("signal", sig) or str(sig))
        return "|".join(parts) or ("PROT_NONE" if group_name == "mmap_prot" else "0")
    if group_name == "personality":
        n = name_of("personality", val)
        if n:
            return n
        parts = [n for n, bit in sorted(group("personality").items()) if n.startswith(("ADDR_", "READ_", "MMAP_", "SHORT_", "WHOLE_", "STICKY_", "UNAME26", "FDPIC_")) and val & bit]
        base = name_of("personality", val & 0xFF)
        return "|".join(([base] if base else []) + parts) or hex(val)
    n = name_of(group_name, val)
    if n:
        return n
    return hex(val) if group_name == "ioctl" else str(val)


# setsockopt/getsockopt: the option's names depend on the level (generated groups so, ip, ipv6, tcp)
_SOCKOPT_GROUPS = {"SOL_SOCKET": "so", "SOL_IP": "ip", "SOL_IPV6": "ipv6", "SOL_TCP": "tcp"}


def describe_args(groups, values) -> str:
    """A tuple of tracked argument values for people: each by its group; a group "sockopt" is named in
    the group of the level before it (setsockopt 1, 2 -> SOL_SOCKET, SO_REUSEADDR)."""
    out: list[str] = []
    level = None
    for g, v in zip(groups, values):
        if g == "sockopt":
            og = _SOCKOPT_GROUPS.get(level or "")
            out.append(describe(og, v) if og else str(v))
            continue
        if g == "sol":
            level = name_of("sol", v)
        out.append(describe(g, v))
    return ", ".join(out)
