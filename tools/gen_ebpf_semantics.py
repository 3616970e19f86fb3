#!/usr/bin/env python3
"""Generate leastpriv/tracer/ebpf/ebpf_semantics.h from leastpriv/kernel/semantics.py.

    python tools/gen_ebpf_semantics.py

The BPF program's kinds, access bits and open-flag mapping come from the same
table the ptrace backend and the learner read (tests/test_tables.py checks the
committed header is up to date).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leastpriv.kernel import semantics  # noqa: E402

OUT = ROOT / "leastpriv" / "tracer" / "ebpf" / "ebpf_semantics.h"


def main() -> int:
    OUT.write_text(semantics.c_header())
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
