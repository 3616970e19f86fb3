"""The objects of one process joined into one call graph; the syscalls reachable from its roots.

Roots: the executable's and the interpreter's entry points, every object's DT_INIT/DT_FINI and
init/fini arrays and IRELATIVE resolvers. Edges: direct calls and jumps, imports resolved to every
object that exports the name (an over-approximation of symbol interposition), addresses taken in code.

Indirect calls (the model): once any reachable function makes an indirect call, every function whose
address is stored in data (RELATIVE/RELR/R_X86_64_64 relocations, absolute words in non-PIE data,
GOT entries loaded as values), every Go method (interfaces are built at run time from method tables),
and every export of an object loaded with dlopen (dlsym) or of the vDSO become reachable. That is sound
as long as no code computes a code address arithmetically.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..kernel import syscalls
from .summary import ERROR_SINKS

# Objects known to compute a syscall number at run time, and what it is. libseccomp looks up
# __NR_seccomp in its own syscall tables (arch_syscall_resolve_name) and calls syscall(2) with it.
KNOWN_DYNAMIC = {
    "libseccomp.so.2": ("seccomp",),
}


@dataclass
class Obj:
    summary: dict
    role: str            # exe | interp | needed | dlopen | nss | vdso
    cached: bool = False

    @property
    def path(self) -> str:
        return self.summary["path"]


@dataclass
class Result:
    reachable: dict          # abi -> set of names
    error_only: dict         # abi -> set of names reachable only through an error sink (abort, assert, ...)
    unknown_sites: int
    indirect: bool
    unresolved_imports: list
    wrappers: list
    reached_exports: set     # names of exported functions of non-exe objects that are reachable


class Graph:
    def __init__(self, objs: list[Obj]):
        self.objs = objs
        self.funcs = [o.summary["funcs"] for o in objs]
        self.index: dict[str, list[int]] = {}
        for oi, o in enumerate(objs):
            if o.role == "vdso":
                continue
            for name, fi in o.summary["exports"].items():
                self.index.setdefault(name, []).append((oi << 32) | fi)
        self.wrapper: dict[int, str] = {}
        for oi, fl in enumerate(self.funcs):
            for fi, f in enumerate(fl):
                if f[6]:
                    self.wrapper[(oi << 32) | fi] = f[6]
        self._wrapper_fixpoint()

    def _wrapper_fixpoint(self) -> None:
        index, wrapper = self.index, self.wrapper
        with_sites = [((oi << 32) | fi, f[7]) for oi, fl in enumerate(self.funcs) for fi, f in enumerate(fl) if f[7]]
        changed = True
        while changed:
            changed = False
            for node, sites in with_sites:
                if node in wrapper:
                    continue
                base = node & ~0xFFFFFFFF
                for t, reg, vals in sites:
                    targets = index.get(t, ()) if isinstance(t, str) else (base | t,)
                    if any(wrapper.get(n) == reg for n in targets):
                        for v in vals:
                            if isinstance(v, str) and v[3:] in ("rdi", "rax"):
                                wrapper[node] = v[3:]
                                changed = True
                    if node in wrapper:
                        break
        # per function, the values passed to wrappers at its call sites (all other sites are irrelevant)
        self.wsites: dict[int, list] = {}
        for node, sites in with_sites:
            base = node & ~0xFFFFFFFF
            keep = []
            for t, reg, vals in sites:
                targets = index.get(t, ()) if isinstance(t, str) else (base | t,)
                ws = [n for n in targets if wrapper.get(n) == reg]
                if ws:
                    keep.append((ws, vals))
            if keep:
                self.wsites[node] = keep

    def run(self, stop_at_sinks: bool = False, direct_only: bool = False) -> Result:
        """The reachable syscalls. ``direct_only``: without the indirect-call model (what direct calls reach;
        used only to decide whether the code looks up users or hosts, never as the answer)."""
        objs, funcs, index, wrapper, wsites = self.objs, self.funcs, self.index, self.wrapper, self.wsites
        sinks: set[int] = set()
        if stop_at_sinks:
            for oi, o in enumerate(objs):
                for name, fi in o.summary["exports"].items():
                    if name in ERROR_SINKS:
                        sinks.add((oi << 32) | fi)
                for sfi, name in o.summary.get("names", {}).items():
                    if name in ERROR_SINKS:
                        sinks.add((oi << 32) | int(sfi))
        roots: list[int] = []
        cond: list[int] = []
        cond_names: list[str] = []
        for oi, o in enumerate(objs):
            s = o.summary
            base = oi << 32
            roots += [base | fi for fi in s["roots"]]
            cond += [base | fi for fi in s["taken"]]
            cond_names += s["taken_names"]
            if o.role in ("dlopen", "nss", "vdso"):
                cond += [base | fi for fi in s["exports"].values()]
            if s.get("is_go"):
                cond += [base | int(k) for k in s.get("go_methods", ())]
        seen: set[int] = set()
        stack = [n for n in roots if n not in sinks]
        sys64: set[int] = set()
        sys32: set[int] = set()
        unknown = 0
        indirect = False
        cond_added = False
        unresolved: set[str] = set()
        unknown_objs: set[int] = set()
        while True:
            while stack:
                node = stack.pop()
                if node in seen:
                    continue
                seen.add(node)
                oi, fi = node >> 32, node & 0xFFFFFFFF
                f = funcs[oi][fi]
                base = oi << 32
                for c in f[0]:
                    n = base | c
                    if n not in seen and n not in sinks:
                        stack.append(n)
                for name in f[1]:
                    targets = index.get(name)
                    if targets is None:
                        unresolved.add(name)
                        continue
                    for n in targets:
                        if n not in seen and n not in sinks:
                            stack.append(n)
                if f[2]:
                    sys64.update(f[2])
                if f[3]:
                    sys32.update(f[3])
                if f[4]:
                    unknown += f[4]
                    unknown_objs.add(oi)
                if f[5]:
                    indirect = True
                ws = wsites.get(node)
                if ws is not None:
                    own = wrapper.get(node)
                    for targets, vals in ws:
                        if sinks and all(n in sinks for n in targets):
                            continue
                        for v in vals:
                            if isinstance(v, int):
                                sys64.add(v)
                            elif v is None or (v[3:] != own):
                                unknown += 1
                                unknown_objs.add(oi)
            if indirect and not cond_added and not direct_only:
                cond_added = True
                stack += [n for n in cond if n not in sinks]
                for name in cond_names:
                    stack += [n for n in index.get(name, ()) if n not in sinks]
                continue
            break
        reachable: dict[str, set[str]] = {"x86_64": set()}
        for oi in unknown_objs:
            for name in KNOWN_DYNAMIC.get(objs[oi].summary.get("soname", ""), ()):
                nr = syscalls.number("x86_64", name)
                if nr is not None:
                    sys64.add(nr)
        for abi, nums in (("x86_64", sys64), ("x86", sys32)):
            names = reachable.setdefault(abi, set()) if nums else None
            for nr in nums:
                nm = syscalls.name(abi, nr)
                if nm.startswith("#"):
                    unknown += 1
                else:
                    names.add(nm)
        wrappers = []
        reached_exports: set[str] = set()
        for oi, o in enumerate(objs):
            base = oi << 32
            names = o.summary.get("names", {})
            if o.role != "exe":
                for name, fi in o.summary["exports"].items():
                    if (base | fi) in seen:
                        reached_exports.add(name)
            for node, reg in wrapper.items():
                if node >> 32 == oi and node in seen:
                    wrappers.append(f"{names.get(str(node & 0xFFFFFFFF), hex(node & 0xFFFFFFFF))} "
                                    f"({o.path}, number in {reg})")
        weak_ok = {"__gmon_start__", "_ITM_registerTMCloneTable", "_ITM_deregisterTMCloneTable",
                   "__cxa_finalize", "_Jv_RegisterClasses"}
        return Result(reachable=reachable, error_only={}, unknown_sites=unknown, indirect=indirect,
                      unresolved_imports=sorted(unresolved - weak_ok), wrappers=sorted(wrappers),
                      reached_exports=reached_exports)


def analyse(objs: list[Obj]) -> tuple[Graph, Result]:
    g = Graph(objs)
    return g, g.run()


def with_error_paths(g: Graph, full: Result) -> Result:
    """Mark what is reachable only through an error sink (abort, assert, fortify, Go's throw)."""
    main = g.run(stop_at_sinks=True)
    full.error_only = {abi: names - main.reachable.get(abi, set()) for abi, names in full.reachable.items()}
    return full
