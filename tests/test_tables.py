"""The generated tables match their sources, and name syscalls per architecture."""
from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from leastpriv.kernel import constants, syscalls

from .conftest import ROOT, SHARED


def test_syscall_tables_match_libseccomp_csv():
    with (SHARED / "libseccomp" / "syscalls.csv").open() as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    col = {h: i for i, h in enumerate(header)}
    checked = 0
    for row in rows[1:]:
        for arch in ("x86_64", "x86", "x32", "aarch64", "arm", "riscv64", "s390x", "ppc64"):
            value = row[col[arch]]
            if value == "PNR":
                assert not syscalls.exists(arch, row[0]), (arch, row[0])
            else:
                assert syscalls.number(arch, row[0]) == int(value), (arch, row[0])
                checked += 1
    assert checked > 2500
    # the aliases runtimes name separately share their sibling's numbers
    assert syscalls.table("ppc64le") == syscalls.table("ppc64")


def test_tables_are_reproducible_from_sources(tmp_path):
    data = ROOT / "leastpriv" / "kernel" / "syscall_tables"

    def tables() -> dict[str, str]:
        return {f.name: f.read_text() for f in sorted(data.glob("*.json"))}

    before = tables()
    assert "index.json" in before and "x86_64.json" in before
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_syscalls.py")], check=True, capture_output=True)
    assert tables() == before, "syscall_tables/ differs from what tools/gen_syscalls.py generates"


def test_an_unknown_architecture_is_refused_never_read_as_a_file():
    for arch in ("nosuch", "../constants", "index", "x86_64/../../syscall_tables/x86"):
        with pytest.raises(KeyError):
            syscalls.table(arch)


def test_well_known_numbers_and_names():
    assert syscalls.number("x86_64", "openat") == 257
    assert syscalls.number("aarch64", "openat") == 56
    assert syscalls.number("x86", "open") == 5
    assert not syscalls.exists("aarch64", "open")      # aarch64 never had open(2)
    assert syscalls.name("x86_64", 99999) == "#99999"  # unknown numbers are kept, named by number


def test_audit_arch_naming_i386_and_x32():
    x86_64 = constants.value("audit_arch", "AUDIT_ARCH_X86_64")
    i386 = constants.value("audit_arch", "AUDIT_ARCH_I386")
    assert syscalls.from_audit(x86_64, 0) == ("x86_64", 0)
    assert syscalls.from_audit(i386, 5) == ("x86", 5)
    # x32 calls arrive as x86_64 with bit 30 set
    assert syscalls.from_audit(x86_64, 0x40000000 | 2) == ("x32", 2)
    assert syscalls.name(*syscalls.from_audit(i386, 5)) == "open"


def test_tracked_args_follow_the_architecture():
    assert syscalls.tracked_args("x86_64", "clone").indexes == (0,)
    assert syscalls.tracked_args("s390x", "clone").indexes == (1,)   # CLONE_BACKWARDS2
    assert syscalls.tracked_args("x86_64", "socket").names == ("domain", "type", "protocol")


def test_constants_decode():
    assert constants.describe("socket_family", 17) == "AF_PACKET"
    assert constants.describe("socket_type", 3 | 0o2000000) == "SOCK_RAW|SOCK_CLOEXEC"
    assert "CLONE_NEWUSER" in constants.describe("clone", 0x10000000 | 17)
    assert constants.describe("personality", 0x0040000) == "ADDR_NO_RANDOMIZE"
    assert constants.value("capability", "CAP_SYS_ADMIN") == 21


def test_argument_values_have_their_names(tmp_path):
    """setsockopt levels and option names (per level), prctl options and clone3 flags come out as names from
    the generated tables, not numbers (`setsockopt 1, 2; 6, 1`, `prctl 23`, `clone3 4001536`)."""
    assert constants.describe_args(("sol", "sockopt"), (1, 2)) == "SOL_SOCKET, SO_REUSEADDR"
    assert constants.describe_args(("sol", "sockopt"), (6, 1)) == "SOL_TCP, TCP_NODELAY"
    assert constants.describe_args(("sol", "sockopt"), (41, 26)) == "SOL_IPV6, IPV6_V6ONLY"
    assert constants.describe_args(("sol", "sockopt"), (0, 1)) == "SOL_IP, IP_TOS"
    assert constants.describe("prctl", 23) == "PR_CAPBSET_READ" and constants.describe("prctl", 38) == \
        "PR_SET_NO_NEW_PRIVS"
    assert constants.describe("prctl", 1) == "PR_SET_PDEATHSIG"     # not an argument value of another option
    assert "CLONE_THREAD" in constants.describe("clone", 4001536)
    # and as learn reports them, from a real run
    import subprocess
    import sys
    code = ("import socket, ctypes; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); ctypes.CDLL(None).prctl(23, 0, 0, 0, 0)")
    res = subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o",
                          str(tmp_path / "p.json"), "--", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "new setsockopt arguments (x86_64): SOL_SOCKET, SO_REUSEADDR; SOL_TCP, TCP_NODELAY" in res.stderr
    assert "new prctl arguments (x86_64): PR_CAPBSET_READ" in res.stderr
