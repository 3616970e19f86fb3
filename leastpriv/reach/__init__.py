"""Static reachability: which syscalls the code a trace ran *could* make (an upper bound).

``analyse_executable(path, extra_libs)`` loads the executable, its interpreter, the DT_NEEDED closure,
the extra shared objects a run opened (dlopen), the vDSO and, when the reachable code looks up users,
hosts or services, the NSS modules /etc/nsswitch.conf names; summarises each object once per build-id
(summary.py, cache.py) and joins them into one call graph (graph.py).

x86-64 only: i386 objects are refused with a one-line reason; ``int 0x80`` sites inside x86-64 code
are resolved against the i386 table and reported under ABI ``x86``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import cache, libs
from .elf import NotAnalysable, _build_id
from .graph import Obj, analyse, with_error_paths

__all__ = ["ExeReach", "NotAnalysable", "analyse_executable", "VDSO_SYSCALLS"]

# syscalls the vDSO answers in user space: a trace rarely sees them although the code calls them
# bump when the joining of summaries (graph.py, this file) changes: cached whole-program results are then ignored
PROGRAM_VERSION = 3

VDSO_SYSCALLS = frozenset(("clock_gettime", "gettimeofday", "time", "getcpu", "clock_getres"))


@dataclass(frozen=True)
class ExeReach:
    path: str
    build_id: str
    abi: str
    reachable: dict                 # abi -> frozenset of syscall names (upper bound)
    error_only: dict                # abi -> names reachable only through abort/assert/fortify/... paths
    vdso_backed: frozenset          # reachable names the vDSO usually answers without a syscall
    unknown_sites: int              # syscall sites (or wrapper calls) whose number was not resolved
    objects: tuple = ()             # (path, build_id, role, cached)
    unanalysed: tuple = ()          # (path or name, reason)
    unresolved_imports: tuple = ()
    wrappers: tuple = ()
    is_go: bool = False
    seconds: float = 0.0
    notes: tuple = field(default_factory=tuple)


def _closure(objs: list[Obj], have: set[str], unanalysed: list, role: str) -> None:
    i = 0
    while i < len(objs):
        o = objs[i]
        i += 1
        for name in o.summary.get("needed", []):
            p = libs.find_needed(name, o.path, o.summary.get("runpath", []))
            if p is None:
                if name not in have:
                    have.add(name)
                    unanalysed.append((name, f"needed by {o.path}, not found"))
                continue
            _add(objs, p, role, have, unanalysed)


def _add(objs: list[Obj], path: str, role: str, have: set[str], unanalysed: list) -> None:
    import os
    real = os.path.realpath(path)
    if real in have:
        return
    have.add(real)
    try:
        s, cached = cache.summary_of(real)
    except NotAnalysable as exc:
        unanalysed.append((path, str(exc).split(": ", 1)[-1]))
        return
    s = dict(s, path=path)
    objs.append(Obj(s, role, cached))


def _program_inputs(path: str, extra_libs: tuple[str, ...], nss: bool | None, vdso: bytes | None) -> dict:
    return {"program_version": PROGRAM_VERSION, "exe": os.path.realpath(path), "extra": sorted(os.path.realpath(p) for p in extra_libs), "nss": nss,
            "nss_modules": libs.nss_modules(), "vdso": _build_id(vdso) if vdso else ""}


def _still_valid(d: dict) -> bool:
    for o in d.get("objects", []):
        if o["role"] == "vdso":
            continue
        if cache.quick_build_id(o["real"]) != o["build_id"]:
            return False
        for name, where in o["resolved"].items():
            if libs.find_needed(name, o["real"], o["runpath"]) != where:
                return False
    return True


def _to_json(r: ExeReach, objs: list[Obj]) -> dict:
    import os
    return {
        "build_id": r.build_id, "abi": r.abi, "reachable": {a: sorted(v) for a, v in r.reachable.items()},
        "error_only": {a: sorted(v) for a, v in r.error_only.items()}, "vdso_backed": sorted(r.vdso_backed),
        "unknown_sites": r.unknown_sites, "unanalysed": [list(x) for x in r.unanalysed],
        "unresolved_imports": list(r.unresolved_imports), "wrappers": list(r.wrappers), "is_go": r.is_go,
        "notes": list(r.notes),
        "objects": [{"path": o.path, "real": os.path.realpath(o.path) if o.role != "vdso" else "",
                     "build_id": o.summary["build_id"], "role": o.role, "runpath": o.summary.get("runpath", []),
                     "resolved": {n: libs.find_needed(n, o.path, o.summary.get("runpath", []))
                                  for n in o.summary.get("needed", [])} if o.role != "vdso" else {}}
                    for o in objs],
    }


def _from_json(d: dict, path: str, t0: float) -> ExeReach:
    objs = d["objects"]
    return ExeReach(
        path=path, build_id=d["build_id"], abi=d["abi"],
        reachable={a: frozenset(v) for a, v in d["reachable"].items()},
        error_only={a: frozenset(v) for a, v in d["error_only"].items()}, vdso_backed=frozenset(d["vdso_backed"]),
        unknown_sites=d["unknown_sites"],
        objects=tuple([(path, objs[0]["build_id"], "exe", True)] + [(o["path"], o["build_id"], o["role"], True)
                                                                      for o in objs[1:]]),
        unanalysed=tuple(tuple(x) for x in d["unanalysed"]), unresolved_imports=tuple(d["unresolved_imports"]),
        wrappers=tuple(d["wrappers"]), is_go=d["is_go"], seconds=time.monotonic() - t0, notes=tuple(d["notes"]))


def analyse_executable(path: str, extra_libs: tuple[str, ...] = (), nss: bool | None = None) -> ExeReach:
    """Raises NotAnalysable (one line) when ``path`` itself cannot be analysed."""
    t0 = time.monotonic()
    vdso = libs.read_vdso()
    inputs = _program_inputs(path, extra_libs, nss, vdso)
    prev = cache.program_get(inputs)
    if prev is not None and _still_valid(prev):
        return _from_json(prev, path, t0)
    r, objs = _analyse(path, extra_libs, nss, vdso, t0)
    cache.program_put(inputs, _to_json(r, objs))
    return r


def _imports_lookup(objs: list[Obj]) -> bool:
    """An object other than libc itself imports a lookup function (cgo and other code may call it through a
    pointer, which the direct-call test above does not follow)."""
    for o in objs:
        if o.summary.get("soname", "").startswith("libc.so") or o.role in ("vdso", "interp"):
            continue
        names = set(o.summary.get("taken_names", ()))
        for f in o.summary["funcs"]:
            names.update(f[1])
        if any(libs.NSS_FUNCS.match(n) for n in names):
            return True
    return False


def _analyse(path: str, extra_libs: tuple[str, ...], nss: bool | None, raw: bytes | None, t0: float):
    exe, cached = cache.summary_of(path)
    objs = [Obj(dict(exe, path=path), "exe", cached)]
    import os
    have = {os.path.realpath(path)}
    unanalysed: list = []
    notes: list[str] = []
    if exe.get("interp"):
        _add(objs, exe["interp"], "interp", have, unanalysed)
    _closure(objs, have, unanalysed, "needed")
    n0 = len(objs)
    for p in extra_libs:
        _add(objs, p, "dlopen", have, unanalysed)
    dl = objs[n0:]
    _closure(dl, have, unanalysed, "dlopen")
    objs += dl[len(objs[n0:]):] if False else []
    objs = objs[:n0] + dl
    if raw:
        try:
            objs.append(Obj(cache.summary_of_bytes("[vdso]", raw), "vdso", True))
        except NotAnalysable as exc:
            unanalysed.append(("[vdso]", str(exc)))
    g, res = analyse(objs)
    # NSS modules: when the code calls a lookup (getpwnam, getaddrinfo, initgroups, ...) by a direct path. With
    # the indirect-call model every program "reaches" them through glibc's tables, which would add libnss_systemd's
    # sockets to /bin/true. A run that did look up loaded the modules: they are among its dlopen'ed objects.
    if nss is None:
        direct = g.run(direct_only=True)
        nss = any(libs.NSS_FUNCS.match(n) for n in direct.reached_exports) or _imports_lookup(objs)
    want_nss = nss
    if want_nss:
        mods = [m for m in libs.nss_modules() if os.path.realpath(m) not in have]
        if mods:
            n1 = len(objs)
            extra: list[Obj] = []
            for m in mods:
                _add(extra, m, "nss", have, unanalysed)
            _closure(extra, have, unanalysed, "nss")
            objs = objs[:n1] + extra
            g, res = analyse(objs)
            notes.append("NSS modules included (code reachable by direct calls looks up users, groups, hosts or services): "
                         + ", ".join(os.path.basename(o.path) for o in extra if o.role == "nss"))
    res = with_error_paths(g, res)
    if res.unresolved_imports:
        notes.append(f"{len(res.unresolved_imports)} imported name(s) defined by no analysed object: "
                     + ", ".join(res.unresolved_imports[:8]) + (" ..." if len(res.unresolved_imports) > 8 else ""))
    if exe.get("is_go"):
        notes.append("Go binary: functions from .gopclntab; syscall wrappers by name and by register (number in "
                     "rax); every method counts as reachable through interfaces")
    reach = {abi: frozenset(v) for abi, v in res.reachable.items() if v or abi == "x86_64"}
    return ExeReach(
        path=path, build_id=exe["build_id"], abi=exe["abi"], reachable=reach,
        error_only={abi: frozenset(v) for abi, v in res.error_only.items() if v},
        vdso_backed=frozenset(reach.get("x86_64", frozenset()) & VDSO_SYSCALLS),
        unknown_sites=res.unknown_sites,
        objects=tuple((o.path, o.summary["build_id"], o.role, o.cached) for o in objs),
        unanalysed=tuple(unanalysed), unresolved_imports=tuple(res.unresolved_imports),
        wrappers=tuple(res.wrappers), is_go=bool(exe.get("is_go")), seconds=time.monotonic() - t0,
        notes=tuple(notes)), objs
