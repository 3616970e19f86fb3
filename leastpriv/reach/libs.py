"""Which objects a process maps: the executable, its interpreter, the DT_NEEDED closure (searched as
ld.so does: DT_RPATH/DT_RUNPATH with $ORIGIN, /etc/ld.so.conf, the default directories), the shared
objects a run opened (dlopen), the NSS modules /etc/nsswitch.conf configures, and the vDSO."""
from __future__ import annotations

import glob
import os
import re

from . import elf as elfmod

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def _ld_so_conf(path: str = "/etc/ld.so.conf", depth: int = 0) -> list[str]:
    out: list[str] = []
    if depth > 4:
        return out
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include "):
            pat = line.split(None, 1)[1]
            if not pat.startswith("/"):
                pat = os.path.join(os.path.dirname(path), pat)
            for p in sorted(glob.glob(pat)):
                out += _ld_so_conf(p, depth + 1)
        elif line.startswith("/"):
            out.append(line)
    return out


_dirs_cache: list[str] | None = None


def search_dirs() -> list[str]:
    global _dirs_cache
    if _dirs_cache is None:
        seen, out = set(), []
        for d in _ld_so_conf() + DEFAULT_DIRS:
            if d not in seen:
                seen.add(d)
                out.append(d)
        _dirs_cache = out
    return _dirs_cache


def find_needed(name: str, origin_obj: str, runpath: list[str]) -> str | None:
    if "/" in name:
        return name if os.path.isfile(name) else None
    origin = os.path.dirname(os.path.realpath(origin_obj))
    dirs = [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in runpath] + search_dirs()
    for d in dirs:
        cand = os.path.join(d, name)
        if elfmod.is_elf_shared_object(cand):
            try:
                if elfmod.load_header_is_x86_64(cand):
                    return cand
            except OSError:
                continue
    return None


NSS_FUNCS = re.compile(r"^(getpw|getgr|getsp|getaddrinfo|gethostby|getnetby|getservby|getprotoby|getrpcby|"
                       r"initgroups|getgrouplist|ether_|getnetgrent|innetgr|setpwent|setgrent|getpwent|getgrent|"
                       r"getlogin|getlogin_r|gethostent|getservent|getprotoent|getnameinfo)")


def nss_modules() -> list[str]:
    """The NSS modules /etc/nsswitch.conf names (libnss_<service>.so.2 that exist)."""
    services: set[str] = set()
    try:
        text = open("/etc/nsswitch.conf", encoding="utf-8", errors="replace").read()
    except OSError:
        return []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if ":" not in line:
            continue
        for word in line.split(":", 1)[1].split():
            if re.fullmatch(r"[a-z0-9_]+", word):
                services.add(word)
    out = []
    for s in sorted(services):
        p = find_needed(f"libnss_{s}.so.2", "/", [])
        if p:
            out.append(p)
    return out


def read_vdso() -> bytes | None:
    """This process's vDSO image (the same the kernel maps into every process)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.rstrip().endswith("[vdso]"):
                    a, b = (int(x, 16) for x in line.split()[0].split("-"))
                    with open("/proc/self/mem", "rb", buffering=0) as mem:
                        mem.seek(a)
                        return mem.read(b - a)
    except (OSError, ValueError):
        return None
    return None
