#!/usr/bin/env python3
"""Generate leastpriv/policy/docker_default.json from Docker's default seccomp profile.

    python tools/gen_docker_default.py [PATH/TO/seccomp-default.json]

Default source: ../shared/reference/moby/seccomp-default.json (moby/profiles,
seccomp/default.json). We keep the facts `review` compares against: the
default action and each rule's names, action, argument conditions, errno and
includes/excludes (by capability, architecture, minimum kernel). Users never
need the reference folder at run time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "reference" / "moby" / "seccomp-default.json"
OUT = ROOT / "leastpriv" / "policy" / "docker_default.json"


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    d = json.loads(src.read_text())
    rules = []
    for r in d["syscalls"]:
        rules.append({
            "names": sorted(r["names"]),
            "action": r["action"],
            "args": [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in r.get("args") or []],
            "errnoRet": r.get("errnoRet"),
            "includes": {k: v for k, v in (r.get("includes") or {}).items() if v},
            "excludes": {k: v for k, v in (r.get("excludes") or {}).items() if v},
        })
    data = {
        "source": "moby/profiles seccomp/default.json (Apache-2.0)",
        "generated_by": "tools/gen_docker_default.py",
        "defaultAction": d["defaultAction"],
        "defaultErrnoRet": d.get("defaultErrnoRet"),
        "syscalls": rules,
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rules)} rules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
