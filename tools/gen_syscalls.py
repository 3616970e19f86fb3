#!/usr/bin/env python3
"""Generate leastpriv/kernel/syscall_tables/ from libseccomp's syscalls.csv: one file per architecture
(name -> number; a run reads only the tables of the ABIs it meets, ~0.1 ms instead of ~2 ms for all 22)
and index.json (the architectures, the source).

    python tools/gen_syscalls.py [path/to/syscalls.csv]

The CSV has one row per syscall and, per architecture, a number (or PNR when
the syscall does not exist there). We keep every architecture libseccomp
knows and add the little-endian/ABI aliases runtimes name separately
(ppc64le, mipsel, ...): they share their big-endian sibling's numbers.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT.parent / "shared" / "reference" / "libseccomp" / "syscalls.csv"
OUT = ROOT / "leastpriv" / "kernel" / "syscall_tables"

# alias -> column it shares numbers with (same ABI, other byte order)
ALIASES = {
    "ppc64le": "ppc64",
    "mipsel": "mips",
    "mipsel64": "mips64",
    "mipsel64n32": "mips64n32",
    "riscv64": "riscv64",
}


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    with src.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    version = header[0].lstrip("#").strip()
    arches = [h for h in header[1:] if not h.endswith("_kver")]
    col = {h: i for i, h in enumerate(header)}
    tables: dict[str, dict[str, int]] = {a: {} for a in arches}
    for row in rows[1:]:
        if not row or row[0].startswith("#"):
            continue
        name = row[0]
        for arch in arches:
            value = row[col[arch]]
            if value != "PNR":
                tables[arch][name] = int(value)
    for alias, base in ALIASES.items():
        if alias not in tables:
            tables[alias] = dict(tables[base])
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    index = {
        "source": f"libseccomp src/syscalls.csv ({version})",
        "generated_by": "tools/gen_syscalls.py",
        "arches": sorted(tables),
    }
    (OUT / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    for arch, table in tables.items():
        (OUT / f"{arch}.json").write_text(json.dumps(dict(sorted(table.items())), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}/: {len(tables)} architectures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
