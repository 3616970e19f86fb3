"""One object's summary: per function, whom it calls and which syscalls it makes (capstone).

The summary depends on the file alone, so it is cached by build-id (cache.py) and
combined with the other objects of a process by graph.py.

Per function (``Func``): the local functions it calls, jumps to (tail calls,
``jcc`` into another function) or whose address it takes (``lea``; absolute
immediates in non-PIE code); the imported names it calls through the PLT/GOT;
the syscall numbers of its ``syscall`` (x86-64) and ``int 0x80`` (i386 ABI)
instructions; how many sites it could not resolve; whether it makes indirect
calls; and its call sites with the constant (or incoming) value of ``rdi`` and
``rax`` (for wrappers: ``syscall(2)`` takes the number in rdi, Go's
``Syscall6`` in rax).

A syscall number is resolved by walking back from the instruction to the last
write of eax/rax in its basic block (through ``mov reg, reg`` copies). A value
that reaches the function's entry unchanged makes the function a wrapper whose
callers supply the number.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

import capstone

from .elf import Elf

SUMMARY_VERSION = 5

_REG_ALIASES = {
    "rax": "rax eax ax al ah", "rbx": "rbx ebx bx bl bh", "rcx": "rcx ecx cx cl ch", "rdx": "rdx edx dx dl dh",
    "rsi": "rsi esi si sil", "rdi": "rdi edi di dil", "rbp": "rbp ebp bp bpl", "rsp": "rsp esp sp spl",
}
for _i in range(8, 16):
    _REG_ALIASES[f"r{_i}"] = f"r{_i} r{_i}d r{_i}w r{_i}b"
CANON = {alias: reg for reg, s in _REG_ALIASES.items() for alias in s.split()}
_TOKEN = re.compile(r"[a-z][a-z0-9]*")
_RIP = re.compile(r"\[rip ([+-]) (0x[0-9a-f]+|\d+)\]")
_IMM_TAIL = re.compile(r"(?:^|, )(0x[0-9a-f]{5,})$")

# mnemonics that read their first operand and write no register operand
_NO_WRITE = frozenset("cmp test push bt ucomiss ucomisd comiss comisd nop prefetcht0 prefetcht1 prefetcht2 "
                      "prefetchnta endbr64 endbr32 clflush".split())
# mnemonics that write registers not named as their first operand
_IMPLICIT = {
    "rax": frozenset("mul imul div idiv cdqe cwde cbw cqo cdq cpuid rdtsc rdtscp syscall lodsb lodsw lodsd lodsq "
                     "xchg cmpxchg cmpxchg8b cmpxchg16b xadd in rdpid xgetbv rdpkru sysenter int".split()),
    "rdi": frozenset("stosb stosw stosd stosq movsb movsw movsd movsq cmpsb cmpsw cmpsd cmpsq scasb scasw scasd "
                     "scasq xchg xadd rep".split()),
}
_UNCOND = frozenset(("jmp", "ret", "hlt", "ud2", "retq"))
# functions that end the process on an error: what only they reach is "error-path-only"
ERROR_SINKS = frozenset((
    "abort", "__assert_fail", "__assert_perror_fail", "__assert", "__stack_chk_fail", "__fortify_fail",
    "__chk_fail", "__libc_fatal", "err", "errx", "verr", "verrx",
    "runtime.throw", "runtime.fatalthrow", "runtime.fatalpanic", "runtime.fatal", "runtime.gopanic",
))
_CALLER_SAVED = frozenset("rax rcx rdx rsi rdi r8 r9 r10 r11".split())


@dataclass
class Func:
    calls: set = field(default_factory=set)       # local function indices (calls, tail jumps, address taken)
    imports: set = field(default_factory=set)     # imported names called or whose PLT address is taken
    sys: set = field(default_factory=set)         # x86_64 numbers
    sys32: set = field(default_factory=set)       # i386 numbers (int 0x80)
    unknown: int = 0
    indirect: bool = False
    wrapper: str = ""                             # register holding the number for callers ("rdi" / "rax")
    sites: set = field(default_factory=set)       # (target: int|str, reg, values): int | "in:reg" | None (unknown)

    def to_json(self) -> list:
        return [sorted(self.calls), sorted(self.imports), sorted(self.sys), sorted(self.sys32), self.unknown,
                int(self.indirect), self.wrapper,
                sorted(([t, reg, list(vals)] for t, reg, vals in self.sites), key=repr)]


def _write(ins: tuple, reg: str, go: bool):
    """How instruction ``ins`` changes ``reg``: ("const", n), ("copy", reg2), ("clobber",) or None (untouched)."""
    _a, _sz, m, op = ins
    if reg == "stk":   # Go ABI0: the first argument is the word at [rsp]
        if m in ("call", "push", "pop") or op.startswith("rsp"):
            return ("clobber",)
        if op.startswith("qword ptr [rsp], "):
            if m != "mov":
                return ("clobber",)
            v = op[17:]
            try:
                return ("const", int(v, 0) & 0xFFFFFFFF)
            except ValueError:
                return ("clobber",)
        return None
    if m == "call":
        return ("clobber",) if go or reg in _CALLER_SAVED else None
    imp = _IMPLICIT.get(reg)
    if imp is not None and (m in imp or m[:3] == "rep"):
        return ("clobber",)
    if m in _NO_WRITE or not op:
        return None
    first, _, rest = op.partition(", ")
    if CANON.get(first) != reg:
        if m in ("xchg", "xadd", "cmpxchg") and CANON.get(rest) == reg:
            return ("clobber",)
        return None
    if m == "mov" or m == "movabs":
        c = rest[:1]
        if c.isdigit() or c == "-":
            try:
                return ("const", int(rest, 0) & 0xFFFFFFFF)
            except ValueError:
                return ("clobber",)
        if rest in CANON:
            return ("copy", CANON[rest])
        return ("clobber",)
    if m == "xor" and CANON.get(rest) == reg:
        return ("const", 0)
    return ("clobber",)


class _Ctx:
    """One function's instructions with what backward resolution needs."""
    __slots__ = ("insns", "fstart", "leaders", "jsrc", "index", "go")

    def __init__(self, insns, fstart, leaders, jsrc, go):
        self.insns, self.fstart, self.leaders, self.jsrc, self.go = insns, fstart, leaders, jsrc, go
        self.index = None

    def resolve(self, k: int, reg: str, budget: int = 96) -> tuple[set, bool]:
        """The values ``reg`` may hold just before instruction ``k``, following the function's own jumps
        backwards: ints, or "in:<reg>" (the value it had at the function's entry). Returns (values, complete);
        complete is False when some path could not be followed (a load, arithmetic, an unknown predecessor)."""
        insns, leaders, jsrc, fstart, go = self.insns, self.leaders, self.jsrc, self.fstart, self.go
        out: set = set()
        stack = [(k, reg)]
        seen: set = set()
        while stack:
            j, reg = stack.pop()
            j -= 1
            while True:
                if j < 0:
                    out.add("in:" + reg)
                    break
                budget -= 1
                if budget < 0:
                    return out, False
                ins = insns[j]
                w = _write(ins, reg, go)
                if w is not None:
                    if w[0] == "const":
                        out.add(w[1])
                        break
                    if w[0] == "clobber":
                        return out, False
                    reg = w[1]
                a = ins[0]
                if a in leaders:
                    if (j, reg) in seen:
                        break
                    seen.add((j, reg))
                    preds = jsrc.get(a, ())
                    for s in preds:
                        stack.append((s, reg))
                    falls = j > 0 and insns[j - 1][2] not in _UNCOND
                    if a == fstart:
                        out.add("in:" + reg)
                        if not falls:
                            break
                    elif not preds and not falls:
                        return out, False       # reached only through an indirect jump: unknown
                    if not falls:
                        break
                j -= 1
        return out, True


# Go's wrappers keep the number on the stack across entersyscall (invisible to register tracking): by name
GO_WRAPPER = re.compile(r"^(syscall|golang\.org/x/sys/unix|runtime/internal/syscall|internal/syscall/unix)\."
                        r"(Raw)?Syscall(6|9|NoError)?$|^syscall\.(rawSyscallNoError|rawVforkSyscall|runtimeSyscall6?)$")


def _rip_target(a: int, sz: int, op: str) -> int:
    mm = _RIP.search(op)
    if not mm:
        return -1
    d = int(mm.group(2), 0)
    return a + sz + (d if mm.group(1) == "+" else -d)


def summarize(elf: Elf) -> dict:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = False
    starts = elf.func_starts
    nfunc = len(starts)
    index = {a: i for i, a in enumerate(starts)}
    bisect_right = bisect.bisect_right

    def func_of(addr: int) -> int:
        return bisect_right(starts, addr) - 1

    got_symbol, got_local = elf.got_symbol, elf.got_local
    # PLT entries -> imported names (or local targets for IRELATIVE slots)
    plt_name: dict[int, str] = {}
    plt_local: dict[int, int] = {}
    for sa, sb in elf.plt_ranges:
        for base, buf in elf.code:
            if base <= sa < base + len(buf):
                for a, sz, m, op in cs.disasm_lite(buf[sa - base: sb - base], sa):
                    if m.endswith("jmp") and "rip" in op:
                        slot = _rip_target(a, sz, op)
                        if slot in got_symbol:
                            plt_name[a & ~0xF] = got_symbol[slot]
                        elif slot in got_local:
                            plt_local[a & ~0xF] = got_local[slot]
    plt_lo = min((a for a, _ in elf.plt_ranges), default=0)
    plt_hi = max((b for _, b in elf.plt_ranges), default=0)
    in_plt = elf.in_plt
    funcs = [Func() for _ in range(nfunc)]
    is_exec = elf.kind == "exec"
    lo = elf.exec_ranges[0][0] if elf.exec_ranges else 0
    hi = elf.exec_ranges[-1][1] if elf.exec_ranges else 0
    in_exec = elf.in_exec

    def plt_edge(f: Func, t: int) -> object:
        """An edge to a PLT entry: the imported name (str), a local index (int) or None (unknown slot)."""
        name = plt_name.get(t & ~0xF)
        if name is not None:
            f.imports.add(name)
            return name
        loc = plt_local.get(t & ~0xF)
        if loc is not None and in_exec(loc):
            k = func_of(loc)
            f.calls.add(k)
            return k
        f.indirect = True    # a PLT slot we cannot name: over-approximate
        return None

    def target_edge(f: Func, t: int) -> object:
        if plt_lo <= t < plt_hi and in_plt(t):
            return plt_edge(f, t)
        k = func_of(t)
        if k >= 0:
            f.calls.add(k)
        return k

    # where each function's instructions are: (section base, buffer, first address, end)
    spans: list = [None] * nfunc
    for base, buf in elf.code:
        sec_end = base + len(buf)
        carry = base
        for fi in range(bisect.bisect_left(starts, base), nfunc):
            fstart = starts[fi]
            if fstart >= sec_end:
                break
            fend = min(starts[fi + 1] if fi + 1 < nfunc else sec_end, sec_end)
            if plt_lo <= fstart < plt_hi and in_plt(fstart):
                carry = fend
                continue
            spans[fi] = (base, buf, max(fstart, carry), fend, sec_end)
            carry = fend   # corrected below by the decoder when the last instruction runs past fend

    def decode(fi: int) -> list:
        base, buf, pos, fend, sec_end = spans[fi]
        insns: list = []
        while pos < fend:
            got_any = False
            for ins in cs.disasm_lite(buf[pos - base: min(fend + 15, sec_end) - base], pos):
                if ins[0] >= fend:
                    break
                insns.append(ins)
                got_any = True
            if not got_any:
                pos += 1      # undecodable byte: skip it and resynchronise
                continue
            last = insns[-1]
            pos = last[0] + last[1]
        if fi + 1 < nfunc and spans[fi + 1] is not None and pos > spans[fi + 1][2]:
            b, bb, _p, e, se = spans[fi + 1]
            spans[fi + 1] = (b, bb, pos, e, se)     # the next function starts after our last instruction
        return insns

    def context(fi: int, insns: list) -> tuple:
        """Normalise mnemonics; the leaders and in-function jump sources of ``insns``."""
        fstart, fend = starts[fi], spans[fi][3]
        leaders = {insns[0][0]}
        jsrc: dict[int, list[int]] = {}
        after = False
        for k, (a, sz, m, op) in enumerate(insns):
            if after:
                leaders.add(a)
                after = False
            if " " in m:
                m = m.rsplit(" ", 1)[1]        # bnd jmp, notrack call, rep stosq, lock cmpxchg
                insns[k] = (a, sz, m, op)
            if m[0] == "j":
                if op[:2] == "0x":
                    t = int(op, 16)
                    if fstart <= t < fend:
                        leaders.add(t)
                        jsrc.setdefault(t, []).append(k)
                if m == "jmp":
                    after = True
            elif m in _UNCOND:
                after = True
        return leaders, jsrc

    go = elf.is_go
    site_reg = "rax" if go else "rdi"

    def site_values(ctx: _Ctx, k: int) -> tuple:
        vals, complete = ctx.resolve(k, site_reg, 48)
        if go:
            # an ABI0 (assembly) callee takes the number on the stack: a constant there wins
            svals, scomplete = ctx.resolve(k, "stk", 48)
            if scomplete and svals and all(isinstance(v, int) for v in svals):
                vals, complete = svals, True
        return tuple(sorted(vals, key=repr)) + (() if complete else (None,))

    for fi in range(nfunc):
        if spans[fi] is None:
            continue
        insns = decode(fi)
        if not insns:
            continue
        f = funcs[fi]
        fstart, fend = starts[fi], spans[fi][3]
        syscalls_at: list[int] = []
        import_calls: list[tuple[int, str]] = []
        for k, (a, sz, m, op) in enumerate(insns):
            if " " in m:
                m = m.rsplit(" ", 1)[1]        # bnd jmp, notrack call, rep stosq, lock cmpxchg
                insns[k] = (a, sz, m, op)
            c0 = m[0]
            if c0 == "j" or m == "call":
                if op[:2] == "0x":
                    t = int(op, 16)
                    if not (fstart <= t < fend) or m == "call":
                        tt = target_edge(f, t)
                        if m == "call" and isinstance(tt, str):
                            import_calls.append((k, tt))
                elif "[rip" in op:
                    slot = _rip_target(a, sz, op)
                    if slot in got_symbol:
                        f.imports.add(got_symbol[slot])
                        if m == "call":
                            import_calls.append((k, got_symbol[slot]))
                    elif slot in got_local and in_exec(got_local[slot]):
                        f.calls.add(func_of(got_local[slot]))
                    else:
                        f.indirect = True
                else:
                    f.indirect = True
            elif m == "syscall":
                syscalls_at.append(k)
            elif m == "lea":
                if "[rip" in op:
                    t = _rip_target(a, sz, op)
                    if lo <= t < hi and in_exec(t):
                        target_edge(f, t)
            elif c0 == "i" and m == "int" and op == "0x80":
                syscalls_at.append(-k - 1)
            elif m == "sysenter":
                f.unknown += 1
            elif is_exec and (m == "mov" or m == "push" or m == "movabs") and "0x" in op:
                mm = _IMM_TAIL.search(op)
                if mm:
                    t = int(mm.group(1), 16)
                    if lo <= t < hi and in_exec(t):
                        target_edge(f, t)
        if not syscalls_at and not import_calls:
            continue
        leaders, jsrc = context(fi, insns)      # only where a value must be resolved
        ctx = _Ctx(insns, insns[0][0], leaders, jsrc, go)
        for k in syscalls_at:
            i32 = k < 0
            kk = -k - 1 if i32 else k
            vals, complete = ctx.resolve(kk, "rax")
            for v in vals:
                if isinstance(v, int):
                    (f.sys32 if i32 else f.sys).add(v)
                elif not i32 and v[3:] in ("rdi", "rax"):
                    f.wrapper = v[3:]
                else:
                    complete = False
            if not complete or not vals:
                f.unknown += 1
        for k, name in import_calls:
            f.sites.add((name, site_reg, site_values(ctx, k)))

    # Go's syscall wrappers keep the number on the stack across entersyscall: known by name
    for fi, a in enumerate(starts):
        if elf.is_go and GO_WRAPPER.match(elf.names.get(a, "")):
            funcs[fi].wrapper = "rax"
    # calls to local functions that are (or may become, through an import) wrappers: resolve those sites,
    # re-decoding only their callers; a caller passing its own incoming register on becomes one too
    def maybe_wrapper(f: Func) -> bool:
        return bool(f.wrapper) or any(isinstance(v, str) for _t, _r, vals in f.sites for v in vals)

    callers: dict[int, list[int]] = {}
    for fi, f in enumerate(funcs):
        for c in f.calls:
            if c != fi:
                callers.setdefault(c, []).append(fi)
    wanted = {fi for fi, f in enumerate(funcs) if maybe_wrapper(f)}
    done: set[int] = set()
    todo = sorted({c for w in wanted for c in callers.get(w, ())})
    while todo:
        fi = todo.pop()
        if fi in done or spans[fi] is None:
            continue
        done.add(fi)
        insns = decode(fi)
        if not insns:
            continue
        leaders, jsrc = context(fi, insns)
        ctx = _Ctx(insns, insns[0][0], leaders, jsrc, go)
        f = funcs[fi]
        became = False
        for k, (a, sz, m, op) in enumerate(insns):
            if m == "call" and op[:2] == "0x":
                t = int(op, 16)
                if plt_lo <= t < plt_hi and in_plt(t):
                    continue
                tk = func_of(t)
                if tk in wanted:
                    vals = site_values(ctx, k)
                    f.sites.add((tk, site_reg, vals))
                    if any(isinstance(v, str) for v in vals):
                        became = True
        if became and fi not in wanted:
            wanted.add(fi)
            todo += [c for c in callers.get(fi, ()) if c not in done]
    # keep call sites only where they can matter: to a local wrapper (after a local fixpoint) or to an import
    changed = True
    while changed:
        changed = False
        for fi, f in enumerate(funcs):
            if f.wrapper:
                continue
            for t, reg, vals in f.sites:
                if isinstance(t, int) and funcs[t].wrapper == reg:
                    for v in vals:
                        if isinstance(v, str) and v[3:] in ("rdi", "rax"):
                            f.wrapper = v[3:]
                            changed = True
                    if f.wrapper:
                        break
    for f in funcs:
        f.sites = {(t, reg, vals) for t, reg, vals in f.sites if isinstance(t, str) or t in wanted}
        f.calls.discard(-1)
    taken = sorted({func_of(p) for p in elf.data_pointers} - {-1})
    roots = sorted({func_of(a) for a in ([elf.entry] if elf.entry else []) + elf.init_funcs} - {-1})
    exports = {n: index[a] for n, a in elf.exports.items() if a in index}
    names = {str(i): elf.names[a] for i, a in enumerate(starts)
             if a in elf.names and (funcs[i].wrapper or elf.names[a] in ERROR_SINKS)}
    go_methods = []
    if elf.is_go:
        # interfaces dispatch to methods through itabs built at run time from method tables (text offsets,
        # invisible as pointers): every method, and every name that could be one, is address-taken
        for i, a in enumerate(starts):
            n = elf.names.get(a, "")
            tail = n.rsplit("/", 1)[-1]
            if ".(" in tail or tail.count(".") >= 2:
                go_methods.append(i)
    return {
        "version": SUMMARY_VERSION, "path": elf.path, "build_id": elf.build_id, "abi": elf.abi, "kind": elf.kind,
        "interp": elf.interp, "needed": elf.needed, "runpath": elf.runpath, "soname": elf.soname,
        "is_go": elf.is_go, "nfunc": nfunc, "exports": exports, "roots": roots, "taken": taken,
        "taken_names": sorted(elf.taken_names), "names": names, "go_methods": go_methods,
        "funcs": [f.to_json() for f in funcs],
    }
