#!/usr/bin/env python3
"""Generate leastpriv/kernel/constants.json from the kernel's UAPI headers.

    python tools/gen_constants.py

Names are found by pattern in the installed headers (Debian linux-libc-dev),
their values are computed by the C compiler (so expressions such as
AUDIT_ARCH_X86_64 = EM_X86_64|__AUDIT_ARCH_64BIT|__AUDIT_ARCH_LE come out
right), and the result is written as data the package ships. Nothing here
is typed by hand but the list of groups below.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "leastpriv" / "kernel" / "constants.json"
INC = Path("/usr/include")

# group -> (headers to include, header to scan, name regex, names to skip)
GROUPS = {
    "clone": (["linux/sched.h"], "linux/sched.h", r"CLONE_[A-Z0-9_]+", {"CLONE_ARGS_SIZE_VER0", "CLONE_ARGS_SIZE_VER1", "CLONE_ARGS_SIZE_VER2"}),
    # prctl's options only: linux/prctl.h writes them "#define PR_X n" and their argument values "# define"
    "prctl": (["linux/prctl.h"], "linux/prctl.h", r"PR_[A-Z0-9_]+", set()),
    "capability": (["linux/capability.h"], "linux/capability.h", r"CAP_[A-Z0-9_]+", {"CAP_LAST_CAP"}),
    "audit_arch": (["linux/audit.h"], "linux/audit.h", r"AUDIT_ARCH_[A-Z0-9_]+", set()),
    "personality": (["linux/personality.h"], "linux/personality.h", r"(?:ADDR_[A-Z_]+|MMAP_PAGE_ZERO|READ_IMPLIES_EXEC|SHORT_INODE|WHOLE_SECONDS|STICKY_TIMEOUTS|FDPIC_FUNCPTRS|UNAME26|PER_[A-Z0-9_]+)", {"PER_MASK"}),
    "ioctl": (["asm/termbits.h", "linux/serial.h", "asm/ioctls.h", "linux/fs.h", "linux/sockios.h"], "asm-generic/ioctls.h", r"(?:TC[A-Z0-9_]+|TIO[A-Z0-9_]+|FIO[A-Z0-9_]+)", set()),
    "mmap_prot": (["sys/mman.h"], "asm-generic/mman-common.h", r"PROT_[A-Z0-9_]+", set()),
    "socket_family": (["sys/socket.h"], "bits/socket.h", r"AF_[A-Z0-9_]+", {"AF_MAX"}),
    "socket_type": (["sys/socket.h"], "bits/socket_type.h", r"SOCK_[A-Z0-9_]+", set()),
    "sol": (["sys/socket.h", "netinet/in.h", "netinet/tcp.h", "netinet/udp.h", "linux/netlink.h", "netpacket/packet.h"],
            ["bits/socket.h", "asm-generic/socket.h", "bits/in.h", "netinet/tcp.h", "netinet/udp.h"], r"SOL_[A-Z0-9_]+",
            set()),
    # setsockopt/getsockopt option names, one group per level (kernel/constants.py describe_args picks by level)
    "so": (["sys/socket.h"], "asm-generic/socket.h", r"SO_[A-Z0-9_]+", set()),
    "ip": (["netinet/in.h"], "bits/in.h", r"IP_(?!PMTUDISC|DEFAULT_|MAX_|MIN_)[A-Z0-9_]+", set()),
    "ipv6": (["netinet/in.h"], "bits/in.h", r"IPV6_(?!PMTUDISC|RTHDR_)[A-Z0-9_]+", set()),
    "tcp": (["netinet/tcp.h"], "netinet/tcp.h",
            r"TCP_(?!CA_|MSS_|COOKIE_|MD5SIG_|NO_QUEUE|RECV_QUEUE|SEND_QUEUE|QUEUES_NR|S_DATA|MAX_|REPAIR_O|AO_)"
            r"[A-Z0-9_]+", set()),
    "seccomp": (["linux/seccomp.h", "linux/ptrace.h", "linux/filter.h"], "linux/seccomp.h", r"SECCOMP_(?:RET|SET|FILTER|MODE|GET|USER)_[A-Z0-9_]+", {"SECCOMP_RET_ACTION", "SECCOMP_RET_DATA"}),
    "landlock": (["linux/landlock.h"], "linux/landlock.h", r"LANDLOCK_[A-Z0-9_]+", set()),
}
# groups whose names are "#define NAME" lines only (not "# define", not enum members)
STRICT_DEFINE = {"prctl"}
NO_ENUM = {"tcp", "so", "ip", "ipv6"}
# arch-specific headers are found under the multiarch include dir
MULTIARCH = [p for p in INC.glob("*-linux-gnu") if p.is_dir()]


def header_text(rel: str) -> str:
    for base in [INC, *MULTIARCH]:
        p = base / rel
        if p.exists():
            return p.read_text(errors="replace")
    return ""


def main() -> int:
    names: dict[str, list[str]] = {}
    enums: set[str] = set()
    includes: set[str] = set()
    for group, (incs, scan, pattern, skip) in GROUPS.items():
        includes.update(incs)
        text = "\n".join(header_text(h) for h in ([scan] if isinstance(scan, str) else scan))
        define = r"^#define\s+" if group in STRICT_DEFINE else r"^\s*#\s*define\s+"
        found = re.findall(rf"{define}({pattern})\b(?!\()", text, re.M)
        enum_members = set() if group in NO_ENUM else set(re.findall(rf"^\s*({pattern})\s*=", text, re.M))
        found += enum_members
        names[group] = sorted(set(found) - skip)
        enums.update(enum_members)
    lines = ["#define _GNU_SOURCE", "#include <stdio.h>"]
    # order matters a little: glibc headers before the kernel's where both exist
    for h in sorted(includes, key=lambda h: (not h.startswith(("sys/", "netinet/", "netpacket/")), h)):
        lines.append(f"#include <{h}>")
    lines.append("int main(void) {")
    for group, group_names in names.items():
        for n in group_names:
            lines.append(f'#ifdef {n}\n printf("%s %s %lld\\n", "{group}", "{n}", (long long)({n}));\n#endif')
            if n in enums:  # enum members, not macros: #ifdef cannot see them
                lines[-1] = f' printf("%s %s %lld\\n", "{group}", "{n}", (long long)({n}));'
    lines.append(" return 0; }")
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "c.c"
        c.write_text("\n".join(lines))
        exe = Path(tmp) / "c"
        subprocess.run(["cc", "-w", "-o", str(exe), str(c)], check=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    data: dict[str, dict[str, int]] = {g: {} for g in names}
    for line in out.splitlines():
        group, name, value = line.split()
        data[group][name] = int(value)
    result = {
        "source": "kernel UAPI and glibc headers (" + subprocess.run(
            ["dpkg-query", "-W", "-f", "linux-libc-dev ${Version}", "linux-libc-dev"],
            capture_output=True, text=True).stdout.strip() + ")",
        "generated_by": "tools/gen_constants.py",
        "groups": {g: dict(sorted(v.items())) for g, v in sorted(data.items())},
    }
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: " + ", ".join(f"{g}={len(v)}" for g, v in sorted(data.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
