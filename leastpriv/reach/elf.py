"""Read what reachability needs from one ELF file (pyelftools), nothing more.

``load(path)`` returns an ``Elf``: build-id, type, interpreter, DT_NEEDED, the
executable ranges, function starts (symbols, ``.eh_frame_hdr``'s table of FDEs,
Go's ``.gopclntab``), exported and imported functions, and the relocations:
which GOT slot holds which symbol, and which addresses the dynamic linker writes
into data (RELA ``R_X86_64_RELATIVE``/``R_X86_64_64`` and DT_RELR, decoded here
because pyelftools only gives RELR's offsets, not the values they relocate).

Written by hand (and why): the ``.eh_frame_hdr`` search table (a sorted array
of FDE start addresses: reading it is 20 lines and 100x faster than walking every
CIE/FDE through pyelftools), DT_RELR's bitmap encoding, and the header of Go's
pclntab (no maintained Python reader exists).
"""
from __future__ import annotations

import bisect
import hashlib
import os
import stat
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

# x86-64 relocation types (System V AMD64 psABI)
R_X86_64_64 = 1
R_X86_64_GLOB_DAT = 6
R_X86_64_JUMP_SLOT = 7
R_X86_64_RELATIVE = 8
R_X86_64_IRELATIVE = 37

SHT_RELR = 19
DT_RELR, DT_RELRSZ = 36, 35

MAX_FILE = 1 << 30   # refuse larger files (hostile input)
# what pyelftools and struct raise on a malformed file (hostile input is refused in one line, never a traceback)
MALFORMED = (ELFError, struct.error, KeyError, ValueError, IndexError, TypeError, AttributeError, OverflowError,
             AssertionError, UnicodeDecodeError)


class NotAnalysable(Exception):
    """The file is not an ELF object this analysis reads; the message says why (one line)."""


@dataclass
class Elf:
    path: str
    build_id: str
    kind: str                       # "exec" | "dyn"
    abi: str                        # "x86_64"; other machines raise NotAnalysable
    entry: int
    interp: str
    needed: list[str]
    runpath: list[str]
    soname: str
    exec_ranges: list[tuple[int, int]]           # [start, end) of executable code
    code: list[tuple[int, bytes]]                # (vaddr, bytes) of executable sections
    func_starts: list[int]                       # sorted, unique
    names: dict[int, str]                        # start -> a name (symbols, Go pclntab)
    exports: dict[str, int]                      # defined dynamic function symbols -> address
    got_symbol: dict[int, str]                   # GOT slot / data word -> symbol it is relocated to
    got_local: dict[int, int]                    # GOT slot / data word -> local address written there
    taken_names: set[str]                        # symbols whose address is stored in data (R_X86_64_64, GLOB_DAT)
    data_pointers: list[int]                     # local addresses written into data (RELATIVE, RELR, absolute words)
    init_funcs: list[int]                        # DT_INIT, DT_INIT_ARRAY, DT_FINI, DT_FINI_ARRAY, IRELATIVE resolvers
    plt_ranges: list[tuple[int, int]]
    is_go: bool = False
    notes: list[str] = field(default_factory=list)

    def in_exec(self, addr: int) -> bool:
        i = bisect.bisect_right(self.exec_ranges, (addr, 1 << 64)) - 1
        return i >= 0 and self.exec_ranges[i][0] <= addr < self.exec_ranges[i][1]

    def in_plt(self, addr: int) -> bool:
        return any(a <= addr < b for a, b in self.plt_ranges)


def open_regular(path: str):
    """A binary file object for ``path`` if it is a regular file (never blocks on a fifo or device), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def header(path: str) -> tuple[int, int, int] | None:
    """(ELF class, e_type, e_machine) of a regular file that starts with an ELF header, else None."""
    fh = open_regular(path)
    if fh is None:
        return None
    with fh:
        try:
            head = fh.read(20)
        except OSError:
            return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    etype, machine = struct.unpack_from("<HH", head, 16)
    return head[4], etype, machine


def is_elf_shared_object(path: str) -> bool:
    h = header(path)
    return h is not None and h[1] == 3


def load_header_is_x86_64(path: str) -> bool:
    h = header(path)
    return h is not None and h[0] == 2 and h[2] == 62


def _read_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise NotAnalysable(f"{path}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAnalysable(f"{path}: not a regular file")
        if st.st_size > MAX_FILE:
            raise NotAnalysable(f"{path}: larger than {MAX_FILE >> 20} MiB: not analysed")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def file_key(path: str) -> tuple[str, bytes]:
    """(build-id or sha256:..., the file's bytes): the cache key of a file."""
    raw = _read_file(path)
    return _build_id(raw) or "sha256-" + hashlib.sha256(raw).hexdigest(), raw


def _build_id(raw: bytes) -> str:
    """The GNU build-id note, found through the program headers without pyelftools (fast path for the cache)."""
    if raw[:4] != b"\x7fELF" or len(raw) < 64 or raw[4] != 2 or raw[5] != 1:
        return ""
    phoff, = struct.unpack_from("<Q", raw, 32)
    phentsize, phnum = struct.unpack_from("<HH", raw, 54)
    for i in range(min(phnum, 256)):
        off = phoff + i * phentsize
        if off + 56 > len(raw):
            return ""
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", raw, off)
        if p_type != 4:   # PT_NOTE
            continue
        pos, end = p_offset, min(p_offset + p_filesz, len(raw))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", raw, pos)
            name_end = pos + 12 + ((namesz + 3) & ~3)
            desc_end = name_end + ((descsz + 3) & ~3)
            if ntype == 3 and raw[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"GNU":
                return raw[name_end:name_end + descsz].hex()
            pos = desc_end
    return ""


class _Mem:
    """Reads the file's bytes at virtual addresses (PT_LOAD segments)."""

    def __init__(self, raw: bytes, segments: list[tuple[int, int, int]]):
        self.raw = raw
        self.segs = sorted(segments)   # (vaddr, filesz, offset)

    def read(self, addr: int, n: int) -> bytes | None:
        for va, sz, off in self.segs:
            if va <= addr and addr + n <= va + sz:
                return self.raw[off + addr - va: off + addr - va + n]
        return None

    def u64(self, addr: int) -> int | None:
        b = self.read(addr, 8)
        return None if b is None else struct.unpack("<Q", b)[0]


def decode_relr(words: list[int]) -> list[int]:
    """The addresses a DT_RELR table relocates (an even word is an address; an odd word a bitmap of the
    63 words following the last address)."""
    out: list[int] = []
    base = 0
    for w in words:
        if w & 1 == 0:
            out.append(w)
            base = w + 8
        else:
            bits, addr = w >> 1, base
            while bits:
                if bits & 1:
                    out.append(addr)
                bits >>= 1
                addr += 8
            base += 63 * 8
    return out


def _eh_frame_hdr_starts(data: bytes, hdr_addr: int) -> list[int]:
    """FDE start addresses from .eh_frame_hdr's binary-search table (encoding 0x3b: datarel sdata4)."""
    if len(data) < 12 or data[0] != 1:
        return []
    ptr_enc, count_enc, table_enc = data[1], data[2], data[3]
    if table_enc != 0x3B or count_enc != 0x03:
        return []
    size = {0x1B: 4, 0x03: 4, 0x0B: 4, 0x04: 8, 0x0C: 8, 0x1C: 8}.get(ptr_enc)
    if size is None:
        return []
    pos = 4 + size
    count, = struct.unpack_from("<I", data, pos)
    pos += 4
    count = min(count, (len(data) - pos) // 8)
    return [hdr_addr + loc for loc, _ in struct.iter_unpack("<ii", data[pos:pos + 8 * count])]


def _go_pclntab(data: bytes) -> tuple[list[int], dict[int, str]]:
    """Function entries and names from a Go 1.18+ pclntab (magic 0xfffffff0 / 0xfffffff1)."""
    if len(data) < 72:
        return [], {}
    magic, = struct.unpack_from("<I", data, 0)
    if magic not in (0xFFFFFFF0, 0xFFFFFFF1) or data[7] != 8:
        return [], {}
    nfunc, _nfiles, text_start, funcname_off, _cu, _file, _pctab, pcln_off = struct.unpack_from("<8Q", data, 8)
    starts: list[int] = []
    names: dict[int, str] = {}
    ft = pcln_off
    nfunc = min(nfunc, (len(data) - ft) // 8)
    for i in range(nfunc):
        entry_off, func_off = struct.unpack_from("<II", data, ft + 8 * i)
        addr = text_start + entry_off
        starts.append(addr)
        fpos = pcln_off + func_off
        if fpos + 8 <= len(data):
            name_off, = struct.unpack_from("<i", data, fpos + 4)
            npos = funcname_off + name_off
            end = data.find(b"\0", npos, npos + 512)
            if 0 <= npos < len(data) and end > npos:
                names[addr] = data[npos:end].decode("utf-8", "replace")
    return starts, names


def _symbols(ef: ELFFile, sec, cache: dict) -> list[tuple[str, int, int, int, int]]:
    """(name, value, shndx, type, bind) of every Elf64_Sym of ``sec``, read with struct (pyelftools'
    per-symbol parsing costs seconds on the tables of a large program)."""
    key = sec["sh_offset"]
    if key in cache:
        return cache[key]
    data = sec.data()
    strtab = ef.get_section(sec["sh_link"]).data() if sec["sh_link"] else b""
    out = []
    for st_name, info, _other, shndx, value, _size in struct.iter_unpack("<IBBHQQ", data[: len(data) // 24 * 24]):
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end].decode("utf-8", "replace") if st_name and end > st_name else ""
        out.append((name, value, shndx, info & 0xF, info >> 4))
    cache[key] = out
    return out


def dynamic_info(path: str) -> tuple[str, list[str], list[str]]:
    """(PT_INTERP, DT_NEEDED, DT_RUNPATH/DT_RPATH) read from the headers alone (no disassembly, no summary)."""
    fh = open_regular(path)
    if fh is None:
        return "", [], []
    try:
        with fh:
            ef = ELFFile(fh)
            interp, needed, runpath = "", [], []
            for seg in ef.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    interp = seg.get_interp_name()
                elif seg["p_type"] == "PT_DYNAMIC":
                    for t in seg.iter_tags():
                        if t.entry.d_tag == "DT_NEEDED":
                            needed.append(t.needed)
                        elif t.entry.d_tag == "DT_RUNPATH":
                            runpath += [p for p in t.runpath.split(":") if p]
                        elif t.entry.d_tag == "DT_RPATH":
                            runpath += [p for p in t.rpath.split(":") if p]
            return interp, needed, runpath
    except (OSError,) + MALFORMED:
        return "", [], []


def load(path: str, raw: bytes | None = None) -> Elf:
    if raw is None:
        raw = _read_file(path)
    if raw[:4] != b"\x7fELF":
        raise NotAnalysable(f"{path}: not an ELF file")
    import io
    try:
        ef = ELFFile(io.BytesIO(raw))
    except MALFORMED as exc:
        raise NotAnalysable(f"{path}: malformed ELF: {exc}") from None
    try:
        return _load(path, raw, ef)
    except MALFORMED as exc:
        raise NotAnalysable(f"{path}: malformed ELF: {type(exc).__name__}: {exc}"[:300]) from None


def _load(path: str, raw: bytes, ef: ELFFile) -> Elf:
    machine, cls = ef["e_machine"], ef.elfclass
    if machine != "EM_X86_64" or cls != 64:
        what = {"EM_386": "an i386 (32-bit x86) object"}.get(machine, f"a {machine}/{cls}-bit object")
        raise NotAnalysable(f"{path}: {what}: only x86-64 objects are analysed")
    etype = ef["e_type"]
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise NotAnalysable(f"{path}: ELF type {etype}: not an executable or shared object")
    segs = [(s["p_vaddr"], s["p_filesz"], s["p_offset"]) for s in ef.iter_segments() if s["p_type"] == "PT_LOAD"]
    mem = _Mem(raw, segs)
    interp = ""
    for s in ef.iter_segments():
        if s["p_type"] == "PT_INTERP":
            interp = s.get_interp_name()

    exec_ranges: list[tuple[int, int]] = []
    code: list[tuple[int, bytes]] = []
    plt_ranges: list[tuple[int, int]] = []
    data_secs: list[tuple[int, bytes]] = []
    starts: set[int] = set()
    names: dict[int, str] = {}
    symcache: dict = {}
    is_go = False
    sections = list(ef.iter_sections())
    for sec in sections:
        flags, addr, size = sec["sh_flags"], sec["sh_addr"], sec["sh_size"]
        if not (flags & 0x2) or size == 0:        # SHF_ALLOC
            continue
        if flags & 0x4:                            # SHF_EXECINSTR
            if sec["sh_type"] == "SHT_NOBITS":
                continue
            exec_ranges.append((addr, addr + size))
            code.append((addr, sec.data()))
            if sec.name.startswith(".plt"):
                plt_ranges.append((addr, addr + size))
        elif sec["sh_type"] == "SHT_PROGBITS" and sec.name not in (".eh_frame", ".eh_frame_hdr", ".gcc_except_table",
                                                                   ".gopclntab", ".interp", ".comment"):
            data_secs.append((addr, sec.data()))
        if sec.name == ".eh_frame_hdr":
            starts.update(_eh_frame_hdr_starts(sec.data(), addr))
        if sec.name == ".gopclntab":
            is_go = True
            gs, gn = _go_pclntab(sec.data())
            starts.update(gs)
            names.update(gn)
    if not sections:   # no section headers: executable PT_LOAD segments as code
        for s in ef.iter_segments():
            if s["p_type"] == "PT_LOAD" and s["p_flags"] & 1:
                exec_ranges.append((s["p_vaddr"], s["p_vaddr"] + s["p_filesz"]))
                code.append((s["p_vaddr"], s.data()))
    exec_ranges.sort()
    code.sort()

    def in_exec(a: int) -> bool:
        i = bisect.bisect_right(exec_ranges, (a, 1 << 64)) - 1
        return i >= 0 and exec_ranges[i][0] <= a < exec_ranges[i][1]

    # symbols: every function symbol is a start; defined dynamic ones are exports
    exports: dict[str, int] = {}
    for sec in sections:
        if sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
            continue
        dynamic = sec["sh_type"] == "SHT_DYNSYM"
        for name, value, shndx, st_type, bind in _symbols(ef, sec, symcache):
            if shndx == 0 or value == 0 or not in_exec(value):
                continue
            if st_type in (2, 10) or st_type == 0:          # STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE in code
                starts.add(value)
                names.setdefault(value, name)
                if dynamic and bind in (1, 2, 10) and name:  # GLOBAL, WEAK, GNU_UNIQUE
                    exports[name] = value
                    names[value] = name

    # dynamic section
    needed: list[str] = []
    runpath: list[str] = []
    soname = ""
    init_funcs: list[int] = []
    relr_addr = relr_size = 0
    dyn = ef.get_section_by_name(".dynamic")
    dyn_tags = []
    if dyn is not None and hasattr(dyn, "iter_tags"):
        dyn_tags = list(dyn.iter_tags())
    else:
        for s in ef.iter_segments():
            if s["p_type"] == "PT_DYNAMIC":
                dyn_tags = list(s.iter_tags())
    arrays: list[tuple[int, int]] = []
    tagv = {t.entry.d_tag: t.entry.d_val for t in dyn_tags}
    for t in dyn_tags:
        tag = t.entry.d_tag
        if tag == "DT_NEEDED":
            needed.append(t.needed)
        elif tag in ("DT_RUNPATH", "DT_RPATH"):
            runpath += [p for p in (t.runpath if tag == "DT_RUNPATH" else t.rpath).split(":") if p]
        elif tag == "DT_SONAME":
            soname = t.soname
        elif tag in ("DT_INIT", "DT_FINI"):
            init_funcs.append(t.entry.d_val)
        elif tag == DT_RELR or tag == "DT_RELR":
            relr_addr = t.entry.d_val
        elif tag == DT_RELRSZ or tag == "DT_RELRSZ":
            relr_size = t.entry.d_val
    for a, sz in (("DT_INIT_ARRAY", "DT_INIT_ARRAYSZ"), ("DT_FINI_ARRAY", "DT_FINI_ARRAYSZ"),
                  ("DT_PREINIT_ARRAY", "DT_PREINIT_ARRAYSZ")):
        if a in tagv and sz in tagv:
            arrays.append((tagv[a], tagv[sz]))

    # relocations
    got_symbol: dict[int, str] = {}
    got_local: dict[int, int] = {}
    taken_names: set[str] = set()
    pointers: set[int] = set()
    for sec in sections:
        if sec["sh_type"] not in ("SHT_RELA", "SHT_REL") or not sec["sh_flags"] & 0x2:
            continue
        syms = _symbols(ef, ef.get_section(sec["sh_link"]), symcache) if sec["sh_link"] else []
        rela = sec["sh_type"] == "SHT_RELA"
        data = sec.data()
        fmt, size = ("<QQq", 24) if rela else ("<QQ", 16)
        for ent in struct.iter_unpack(fmt, data[: len(data) // size * size]):
            off, info = ent[0], ent[1]
            rtype, symi = info & 0xFFFFFFFF, info >> 32
            addend = ent[2] if rela else (mem.u64(off) or 0)
            if rtype == R_X86_64_RELATIVE:
                got_local[off] = addend
                if in_exec(addend):
                    pointers.add(addend)
            elif rtype == R_X86_64_IRELATIVE:
                got_local[off] = addend
                init_funcs.append(addend)      # the resolver runs at load time; what it returns is taken
            elif rtype in (R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT) and 0 < symi < len(syms):
                name, value, shndx, _t, _b = syms[symi]
                if shndx != 0 and value and rtype == R_X86_64_64 and in_exec(value + addend):
                    pointers.add(value + addend)
                if name:
                    got_symbol[off] = name
                    if rtype != R_X86_64_JUMP_SLOT:
                        taken_names.add(name)   # a function pointer stored in data (or loaded from the GOT)
    # DT_RELR: the relocated word holds the link-time address
    relr_words: list[int] = []
    if relr_addr and relr_size:
        b = mem.read(relr_addr, relr_size)
        if b:
            relr_words = [w for (w,) in struct.iter_unpack("<Q", b[: len(b) // 8 * 8])]
    else:
        for sec in sections:
            if sec["sh_type"] in ("SHT_RELR", SHT_RELR):
                d = sec.data()
                relr_words = [w for (w,) in struct.iter_unpack("<Q", d[: len(d) // 8 * 8])]
    for off in decode_relr(relr_words):
        v = mem.u64(off)
        if v is not None:
            got_local[off] = v
            if in_exec(v):
                pointers.add(v)
    # init/fini arrays (values: from relocations, or in place)
    for addr, size in arrays:
        for i in range(0, min(size, 1 << 16), 8):
            v = got_local.get(addr + i)
            if v is None:
                v = mem.u64(addr + i)
            if v and in_exec(v):
                init_funcs.append(v)
    # absolute code addresses stored in data (non-PIE executables, Go's itabs and closures)
    if etype == "ET_EXEC" and exec_ranges:
        lo, hi = exec_ranges[0][0], exec_ranges[-1][1]
        for addr, d in data_secs:
            if len(d) < 8:
                continue
            shift = (-addr) % 8
            for (v,) in struct.iter_unpack("<Q", d[shift: shift + (len(d) - shift) // 8 * 8]):
                if lo <= v < hi and in_exec(v):
                    pointers.add(v)

    entry = ef["e_entry"]
    if entry and in_exec(entry):
        starts.add(entry)
    starts.update(a for a in init_funcs if in_exec(a))
    starts.update(a for a, _ in exec_ranges)
    build_id = _build_id(raw) or "sha256-" + hashlib.sha256(raw).hexdigest()
    return Elf(path=path, build_id=build_id, kind="exec" if etype == "ET_EXEC" else "dyn", abi="x86_64",
               entry=entry if in_exec(entry) else 0, interp=interp, needed=needed, runpath=runpath, soname=soname,
               exec_ranges=exec_ranges, code=code, func_starts=sorted(starts), names=names, exports=exports,
               got_symbol=got_symbol, got_local=got_local, taken_names=taken_names,
               data_pointers=sorted(pointers), init_funcs=sorted(set(a for a in init_funcs if in_exec(a))),
               plt_ranges=plt_ranges, is_go=is_go)
