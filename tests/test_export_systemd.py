"""systemd export: the drop-in passes systemd-analyze verify without a warning about it."""
from __future__ import annotations

import subprocess

import pytest

from .conftest import lp, which
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
    from leastpriv.syscall_groups import groups

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
