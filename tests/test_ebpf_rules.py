"""The eBPF backend's pure parts (no root): the audited/no-audit rule, sockaddr decoding, BTF offsets."""
from __future__ import annotations

import os
import socket
import struct

import pytest

from leastpriv.tracer.ebpf import classify_check
from leastpriv.tracer.ebpf.layouts import SockInfo, endpoint_of

from .conftest import need


@pytest.mark.parametrize("frames,cap,sc,audited", [
    (["cap_capable", "security_vm_enough_memory_mm", "__mmap_region"], "CAP_SYS_ADMIN", "mmap", False),
    (["cap_capable", "security_capable", "ns_capable_noaudit", "__ptrace_may_access"], "CAP_SYS_PTRACE",
     "openat", False),
    (["cap_capable", "security_capable", "has_ns_capability_noaudit.cold", "oom_badness"], "CAP_SYS_ADMIN",
     "", False),
    (["cap_capable", "security_capable", "capable_wrt_inode_uidgid", "setattr_prepare"], "CAP_CHOWN", "chown",
     True),
    (["cap_capable", "security_capable", "ns_capable", "__inet_bind"], "CAP_NET_BIND_SERVICE", "bind", True),
    (["cap_capable", "security_capable", "capable.cold", "do_prlimit"], "CAP_SYS_RESOURCE", "prlimit64", True),
    # a direct caller of security_capable we do not know: its option is invisible -> counted as needed
    (["cap_capable", "security_capable", "some_driver_ioctl"], "CAP_SYS_ADMIN", "ioctl", None),
    # no stack: CAP_SYS_ADMIN during mmap/brk is the overcommit probe; anything else unknown
    ([], "CAP_SYS_ADMIN", "brk", False),
    ([], "CAP_NET_RAW", "socket", None),
])
def test_audit_rule(frames, cap, sc, audited):
    got, reason = classify_check(frames, cap, sc)
    assert got is audited, reason
    assert reason


def test_sockaddr_decoding():
    tcp = SockInfo(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0, 0)
    raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 80) + socket.inet_aton("127.0.0.1") + b"\0" * 8
    ep = endpoint_of("bind", raw, tcp)
    assert (ep.family, ep.address, ep.port, ep.proto) == ("AF_INET", "127.0.0.1", 80, "tcp")
    six = struct.pack("=H", socket.AF_INET6) + struct.pack("!H", 443) + b"\0" * 4 + socket.inet_pton(
        socket.AF_INET6, "::1") + b"\0" * 4
    ep = endpoint_of("connect", six, SockInfo(socket.AF_INET6, socket.SOCK_DGRAM, 0, 0))
    assert (ep.family, ep.address, ep.port, ep.proto) == ("AF_INET6", "::1", 443, "udp")
    unix = struct.pack("=H", socket.AF_UNIX) + b"/run/x.sock\0"
    ep = endpoint_of("connect", unix, SockInfo(socket.AF_UNIX, socket.SOCK_STREAM, 0, 0))
    assert (ep.address, ep.port, ep.proto) == ("/run/x.sock", None, "stream")
    abstract = struct.pack("=H", socket.AF_UNIX) + b"\0name"
    assert endpoint_of("bind", abstract, SockInfo(0xFFFFFFFF, 0xFFFFFFFF, 0, 0)).address == "@name"


def test_btf_offsets_of_the_running_kernel():
    need(os.path.exists("/sys/kernel/btf/vmlinux"), "the kernel has no BTF (/sys/kernel/btf/vmlinux)")
    from leastpriv.tracer.ebpf.btf import kernel_btf
    b = kernel_btf()
    # thread_info is task_struct's first member on x86 (CONFIG_THREAD_INFO_IN_TASK); pid and tgid are adjacent
    assert b.offset("task_struct", "tgid") == b.offset("task_struct", "pid") + 4
    assert b.size("task_struct") > b.offset("task_struct", "cred") > 0


def test_the_program_source_is_package_data_with_its_generated_header():
    """ebpf.c and its generated header are read as package data (pyproject.toml), the header first."""
    from leastpriv.kernel import semantics
    from leastpriv.tracer.ebpf import program
    text = program.source()
    assert text.startswith(semantics.c_header())
    assert "lp_walk" in text and "record_cap(" in text
    assert "record_cap(" not in program.source(with_caps=False)
