"""Struct member offsets of the running kernel, read from its BTF (/sys/kernel/btf/vmlinux).

bcc compiles against whatever kernel headers it finds; on a kernel without a
headers package those are another version's, so struct layouts in them cannot
be trusted. The eBPF backend therefore reads the few task_struct fields it
needs at offsets taken from the running kernel's own BTF, passed to the BPF
program as constants. The format is the kernel's (Documentation/bpf/btf.rst):
a header, a type section and a string section.
"""
from __future__ import annotations

import struct
from functools import lru_cache

BTF_PATH = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

# kinds (BTF_KIND_*)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)


class BtfError(Exception):
    pass


class Btf:
    """The structs and unions of one BTF blob, enough to resolve member offsets."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BtfError("too short")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad magic {magic:#x} (only little-endian BTF is read)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._strs = data[hdr_len + str_off: hdr_len + str_off + str_len]
        types = data[hdr_len + type_off: hdr_len + type_off + type_len]
        # id -> (kind, name, size_or_type, members[(name, type, bit_offset)])
        self.types: list[tuple] = [(0, "", 0, ())]
        self.by_name: dict[tuple[int, str], int] = {}
        pos = 0
        while pos < len(types):
            name_off, info, size_type = struct.unpack_from("<III", types, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = info >> 31
            members: tuple = ()
            if kind == INT:
                pos += 4
            elif kind == ARRAY:
                elem, _index, nelems = struct.unpack_from("<III", types, pos)
                members = ((elem, nelems),)
                pos += 12
            elif kind in (STRUCT, UNION):
                ms = []
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", types, pos)
                    pos += 12
                    bit_off = m_off & 0xFFFFFF if kflag else m_off
                    ms.append((self._str(m_name), m_type, bit_off))
                members = tuple(ms)
            elif kind == ENUM:
                pos += 8 * vlen
            elif kind == FUNC_PROTO:
                pos += 8 * vlen
            elif kind == VAR:
                pos += 4
            elif kind == DATASEC:
                pos += 12 * vlen
            elif kind == DECL_TAG:
                pos += 4
            elif kind == ENUM64:
                pos += 12 * vlen
            elif kind in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG):
                pass
            else:
                raise BtfError(f"unknown BTF kind {kind}")
            name = self._str(name_off)
            self.types.append((kind, name, size_type, members))
            if name and kind in (STRUCT, UNION):
                self.by_name.setdefault((kind, name), len(self.types) - 1)

    def _str(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode()

    def _strip(self, tid: int) -> int:
        while self.types[tid][0] in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG):
            tid = self.types[tid][2]
        return tid

    def _find_member(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, member type) of ``name`` in struct/union ``tid``, looking into anonymous members."""
        for m_name, m_type, bit_off in self.types[tid][3]:
            if m_name == name:
                return bit_off, m_type
            if not m_name:
                inner = self._strip(m_type)
                if self.types[inner][0] in (STRUCT, UNION):
                    found = self._find_member(inner, name)
                    if found:
                        return bit_off + found[0], found[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of ``path`` ("a.b.c") in ``struct struct_name``."""
        tid = self.by_name.get((STRUCT, struct_name))
        if tid is None:
            raise BtfError(f"struct {struct_name} not in BTF")
        total = 0
        for part in path.split("."):
            found = self._find_member(tid, part)
            if found is None:
                raise BtfError(f"struct {struct_name} has no member {path}")
            bit_off, m_type = found
            if bit_off % 8:
                raise BtfError(f"{struct_name}.{path} is a bit field")
            total += bit_off // 8
            tid = self._strip(m_type)
        return total

    def size(self, struct_name: str) -> int:
        tid = self.by_name.get((STRUCT, struct_name))
        if tid is None:
            raise BtfError(f"struct {struct_name} not in BTF")
        return self.types[tid][2]


@lru_cache(maxsize=1)
def kernel_btf(path: str = BTF_PATH) -> Btf:
    with open(path, "rb") as f:
        return Btf(f.read())
