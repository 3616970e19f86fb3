"""systemd export: the drop-in passes systemd-analyze verify without a warning about it."""
from __future__ import annotations

import subprocess

import pytest

from .conftest import lp, need_root, which
from .learning import learn_httpd


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    d, _port, argv, profile = learn_httpd(tmp_path_factory.mktemp("sd"))
    path = d / "httpd.json"
    profile.save(str(path))
    return d, path, argv


def _verify(tmp_path, argv, dropin: str) -> subprocess.CompletedProcess:
    unit = tmp_path / "lp-httpd.service"
    unit.write_text("[Unit]\nDescription=leastpriv test server\n\n[Service]\nExecStart=" + " ".join(argv) + "\n")
    (tmp_path / "lp-httpd.service.d").mkdir(exist_ok=True)
    (tmp_path / "lp-httpd.service.d" / "leastpriv.conf").write_text(dropin)
    return subprocess.run([which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)


def test_dropin_passes_systemd_analyze_verify(httpd, tmp_path):
    d, path, argv = httpd
    res = lp("export", str(path), "--format", "systemd", check=True)
    text = res.stdout
    v = _verify(tmp_path, argv, text)
    assert v.returncode == 0 and "leastpriv.conf" not in v.stderr + v.stdout, v.stderr
    assert "[Service]\nSystemCallArchitectures=native\nSystemCallErrorNumber=EPERM\n" in text
    allowed = {n for line in text.splitlines() if line.startswith("SystemCallFilter=")
               for n in line.split("=", 1)[1].split()}
    assert {"bind", "listen", "accept4", "openat", "execve"} <= allowed
    assert "CapabilityBoundingSet=\n" in text and "NoNewPrivileges=yes" in text
    assert "RestrictAddressFamilies=AF_INET" in text
    assert "ProtectSystem=strict" in text and f"-{d}/logs" in text
    assert "SystemCallFilter covers fully:" in res.stderr
    # a broken line is reported by the same check: it can fail
    v = _verify(tmp_path, argv, text + "SystemCallFilter=notasyscall\nRestrictAddressFamilies=AF_BOGUS\n")
    assert "leastpriv.conf" in v.stderr


def test_groups_covered(tmp_path):
    from leastpriv.exporters.systemd import covered_groups
    from leastpriv.kernel.groups import groups

    clock = {n for n in groups()["@clock"]}
    full, partial = covered_groups(clock | {"read"}, "x86_64")
    assert "@clock" in full and "@basic-io" in partial


def test_denylist_style_and_namespaces(httpd, tmp_path):
    d, path, argv = httpd
    text = lp("export", str(path), "--format", "systemd", "--style", "denylist", check=True).stdout
    filt = [line for line in text.splitlines() if line.startswith("SystemCallFilter=")]
    assert filt and all(line.startswith("SystemCallFilter=~") for line in filt)
    denied = {n for line in filt for n in line.split("=~", 1)[1].split()}
    assert {"bpf", "ptrace", "mount", "init_module"} <= denied and "read" not in denied
    assert "RestrictNamespaces=yes" in text        # the server never made a namespace
    v = _verify(tmp_path, argv, text)
    assert v.returncode == 0 and "leastpriv.conf" not in v.stderr, v.stderr


# ------------------------------------------------------------------ sandboxing directives decided from the profile

def _dropin_keys(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#") and not line.startswith("["):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def _unit(tmp_path, name: str, exec_start: str, dropin: str):
    unit = tmp_path / f"{name}.service"
    unit.write_text(f"[Unit]\nDescription=leastpriv test\n\n[Service]\nExecStart={exec_start}\n")
    (tmp_path / f"{name}.service.d").mkdir(exist_ok=True)
    (tmp_path / f"{name}.service.d" / "leastpriv.conf").write_text(dropin)
    return unit


def _exposure(unit) -> float:
    res = subprocess.run([which("systemd-analyze"), "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True)
    line = [x for x in res.stdout.splitlines() if "Overall exposure level" in x]
    assert line, res.stdout + res.stderr
    return float(line[0].split(":", 1)[1].split()[0])


def test_dropin_of_a_small_command_scores_at_most_1_5(tmp_path):
    """The issue's acceptance: sh -c 'cat /etc/hostname; ls /usr' with the drop-in: exposure <= 1.5, verify passes."""
    from .learning import learn_profile

    path = tmp_path / "p.json"
    learn_profile(["/bin/sh", "-c", "cat /etc/hostname; ls /usr"], path=path)
    text = lp("export", str(path), "--format", "systemd", check=True).stdout
    unit = _unit(tmp_path, "lp-small", "/bin/sh -c 'cat /etc/hostname; ls /usr'", text)
    v = subprocess.run([which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0 and "leastpriv.conf" not in v.stderr, v.stderr
    keys = _dropin_keys(text)
    for key, value in {"PrivateDevices": "yes", "ProtectClock": "yes", "ProtectKernelLogs": "yes",
                       "ProtectKernelModules": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
                       "ProtectHostname": "yes", "PrivateMounts": "yes", "PrivateNetwork": "yes",
                       "IPAddressDeny": "any", "PrivateTmp": "yes", "PrivateUsers": "yes", "ProtectHome": "yes",
                       "ProtectProc": "invisible", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
                       "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "UMask": "0077"}.items():
        assert keys.get(key) == [value], (key, keys.get(key))
    # ls reads /proc/filesystems (libselinux): ProcSubset=pid would hide it, so it is left out and said why
    assert "ProcSubset" not in keys and "# ProcSubset= not set: reads /proc/filesystems" in text
    # every directive has its reason on the line above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split("=")[0] in ("PrivateDevices", "ProtectClock", "PrivateNetwork", "UMask", "PrivateTmp"):
            assert lines[i - 1].startswith("# "), line
    score = _exposure(unit)
    assert score <= 1.5, text
    # without the drop-in the same unit scores far worse: the measurement can fail
    bare = _unit(tmp_path / "..", "lp-bare", "/bin/sh -c 'cat /etc/hostname; ls /usr'", "")
    assert _exposure(bare) > 5


def test_network_server_keeps_its_network(httpd):
    """A server bound to 127.0.0.1 reading its files from the shared /tmp: no PrivateNetwork, no PrivateTmp;
    IP traffic limited to localhost."""
    d, path, argv = httpd
    text = lp("export", str(path), "--format", "systemd", check=True).stdout
    keys = _dropin_keys(text)
    assert "PrivateNetwork" not in keys and "# PrivateNetwork= not set: creates AF_INET sockets" in text
    assert keys["IPAddressDeny"] == ["any"] and keys["IPAddressAllow"] == ["localhost"]
    if str(d).startswith("/tmp/"):
        assert "PrivateTmp" not in keys and "# PrivateTmp= not set: uses " in text
    # its log is a file it writes and creates no more: UMask is decided, and the other directives still hold
    assert keys["ProtectClock"] == ["yes"] and keys["PrivateDevices"] == ["yes"]


_CLOCK_WX = r"""
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(512)          # struct timex, modes = 0: only read the clock's state
state = libc.adjtimex(buf)
assert state >= 0, ctypes.get_errno()
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
print("ok", state)
"""


def test_clock_wx_and_personality_users_keep_them(tmp_path):
    """A workload that queries the clock (adjtimex), maps W|X memory and runs with ADDR_NO_RANDOMIZE keeps
    all three: no ProtectClock, MemoryDenyWriteExecute or LockPersonality."""
    from .learning import PYTHON, learn_profile

    path = tmp_path / "clock.json"
    prof, proc = learn_profile([which("setarch"), "-R", PYTHON, "-c", _CLOCK_WX], path=path)
    assert "ok" in proc.stdout, proc.stderr
    text = lp("export", str(path), "--format", "systemd", check=True).stdout
    keys = _dropin_keys(text)
    assert "ProtectClock" not in keys
    assert "adjtime" in text.split("# ProtectClock= not set: calls ")[1].splitlines()[0]   # glibc: clock_adjtime
    assert "MemoryDenyWriteExecute" not in keys and "PROT_WRITE|PROT_EXEC" in text
    assert "LockPersonality" not in keys and "ADDR_NO_RANDOMIZE" in text
    assert keys["PrivateDevices"] == ["yes"] and keys["PrivateNetwork"] == ["yes"]


def test_device_and_kernel_log_reader_keeps_them(tmp_path):
    """dd from /dev/kmsg: no PrivateDevices (a device ACL with /dev/kmsg instead), no ProtectKernelLogs."""
    need_root()
    from .learning import learn_profile

    path = tmp_path / "kmsg.json"
    _prof, proc = learn_profile(["dd", "if=/dev/kmsg", "of=/dev/null", "bs=8192", "count=1", "iflag=nonblock",
                                 "status=none"], path=path)
    assert proc.returncode == 0, proc.stderr
    text = lp("export", str(path), "--format", "systemd", check=True).stdout
    keys = _dropin_keys(text)
    assert "PrivateDevices" not in keys and "# PrivateDevices= not set: opened devices /dev/kmsg" in text
    assert keys["DevicePolicy"] == ["closed"] and keys["DeviceAllow"] == ["/dev/kmsg r"]
    assert "ProtectKernelLogs" not in keys and "/dev/kmsg" in text.split("# ProtectKernelLogs= not set:")[1]
    unit = _unit(tmp_path, "lp-kmsg", "/usr/bin/dd if=/dev/kmsg of=/dev/null", text)
    v = subprocess.run([which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0 and "leastpriv.conf" not in v.stderr, v.stderr


def test_home_reader_and_writer(tmp_path):
    """Reading /home gives ProtectHome=read-only; writing there leaves ProtectHome out."""
    import shutil
    import tempfile

    from .learning import learn_profile

    need_root()
    home = tempfile.mkdtemp(prefix="lp-test-", dir="/home")
    try:
        (tmp_path / "r").mkdir()
        learn_profile(["ls", home], path=tmp_path / "r.json")
        keys = _dropin_keys(lp("export", str(tmp_path / "r.json"), "--format", "systemd", check=True).stdout)
        assert keys["ProtectHome"] == ["read-only"]
        learn_profile(["touch", f"{home}/f"], path=tmp_path / "w.json")
        text = lp("export", str(tmp_path / "w.json"), "--format", "systemd", check=True).stdout
        keys = _dropin_keys(text)
        assert "ProtectHome" not in keys and f"# ProtectHome= not set: writes {home}/f" in text
        assert keys["UMask"] == ["0027"]     # it creates a file: others lose read, the group keeps it
    finally:
        shutil.rmtree(home, ignore_errors=True)
