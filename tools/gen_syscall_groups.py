#!/usr/bin/env python3
"""Generate leastpriv/kernel/groups.json from systemd's syscall sets.

    python tools/gen_syscall_groups.py

`systemd-analyze syscall-filter` prints every @group with its members
(nested groups as @names). We expand nesting and store group -> sorted names,
plus systemd's version. leastpriv uses it to group syscalls in `show` and to
say which @groups a systemd SystemCallFilter= covers fully.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "leastpriv" / "kernel" / "groups.json"


def main() -> int:
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    raw: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.strip()
            raw[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            raw[current].append(line.strip())

    def expand(g: str, seen: frozenset = frozenset()) -> set[str]:
        out: set[str] = set()
        for m in raw.get(g, []):
            if m.startswith("@"):
                if m not in seen:
                    out |= expand(m, seen | {g})
            else:
                out.add(m)
        return out

    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    data = {
        "source": f"systemd-analyze syscall-filter ({version.strip()})",
        "generated_by": "tools/gen_syscall_groups.py",
        "groups": {g: sorted(expand(g)) for g in sorted(raw)},
        "nested": {g: sorted(m for m in raw[g] if m.startswith("@")) for g in sorted(raw) if any(m.startswith("@") for m in raw[g])},
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(raw)} groups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
