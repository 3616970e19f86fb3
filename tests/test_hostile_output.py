"""Output files as a target: leastpriv runs as root, often in directories others can write.

Every file it writes (-o, --output, --report, --save-recording, profiles) follows fileio.write_atomic's
rules: the named path only, never a symlink's target; never over a device; mode 0644 whatever was there.
"""
from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import lp, need_root
from tests.learning import learn_profile


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "true.json"
    learn_profile(["true"], path=path)
    return path


def _writers(good, target: str, tmp):
    g = str(good)
    return [
        ["export", g, "--format", "oci", "-o", target],
        ["export", g, "--format", "systemd", "-o", target],
        ["check", "--baseline", g, g, "--format", "json", "--output", target],
        ["check", "--baseline", g, g, "--output", target],
        ["merge", g, "-o", target],
        ["run", "--profile", g, "--no-landlock", "--report", target, "--", "true"],
        ["learn", "--backend", "ptrace", "-o", target, "--", "true"],
        ["learn", "--backend", "ptrace", "-o", str(tmp / "scratch.json"), "--save-recording", target, "--", "true"],
    ]


def _refused(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("leastpriv: error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_dangling_symlink_writes_nothing_there(good, tmp_path):
    victim = tmp_path / "etc-x"           # stands for /etc/x
    link = tmp_path / "L"
    link.symlink_to(victim)
    for cmd in _writers(good, str(link), tmp_path):
        _refused(lp(*cmd), str(link), "symlink")
        assert not victim.exists(), cmd
        assert os.readlink(link) == str(victim)


def test_symlink_to_a_device_or_setuid_file_writes_nothing_there(good, tmp_path):
    need_root()
    dev = tmp_path / "zero"                                 # a copy of /dev/zero's node: no harm if written
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    suid = tmp_path / "suid"
    suid.write_text("#!/bin/sh\n")
    os.chmod(suid, 0o4755)
    for target in (dev, suid):
        link = tmp_path / f"to-{target.name}"
        link.symlink_to(target)
        before = os.lstat(target)
        for cmd in _writers(good, str(link), tmp_path):
            _refused(lp(*cmd), "symlink")
        after = os.lstat(target)
        assert (after.st_mode, after.st_ino, after.st_size, after.st_mtime_ns) == \
            (before.st_mode, before.st_ino, before.st_size, before.st_mtime_ns)
    # named directly: a device other than /dev/null or a terminal is refused too, and never replaced
    _refused(lp("export", str(good), "--format", "oci", "-o", str(dev)), "a device")
    blk = tmp_path / "loop"
    os.mknod(blk, 0o600 | stat.S_IFBLK, os.makedev(7, 250))
    _refused(lp("export", str(good), "--format", "oci", "-o", str(blk)), "block device")
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and stat.S_ISBLK(os.lstat(blk).st_mode)


def test_output_modes_are_fixed(good, tmp_path):
    old = tmp_path / "old.json"
    old.write_text("x")
    os.chmod(old, 0o4777)
    assert lp("export", str(good), "--format", "oci", "-o", str(old)).returncode == 0
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o644
    # a restrictive umask gives 0644 too: the mode does not depend on the caller's environment
    new = tmp_path / "new.json"
    prof = tmp_path / "p.json"
    rec = tmp_path / "r.rec.json"
    env = dict(os.environ)
    proc = lp("learn", "--backend", "ptrace", "-o", str(prof), "--save-recording", str(rec), "--", "true",
              preexec_fn=lambda: os.umask(0o077), env=env)
    assert proc.returncode == 0, proc.stderr
    assert lp("export", str(prof), "--format", "systemd", "-o", str(new),
              preexec_fn=lambda: os.umask(0o077)).returncode == 0
    for p in (new, prof, rec):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert leftovers == []


def test_dev_stdout_is_our_stdout(good):
    proc = lp("export", str(good), "--format", "oci", "-o", "/dev/stdout")
    assert proc.returncode == 0 and '"defaultAction"' in proc.stdout


def test_learn_refuses_a_linked_profile_before_running(good, tmp_path):
    real = tmp_path / "real.json"
    real.write_bytes(good.read_bytes())
    link = tmp_path / "link.json"
    link.symlink_to(real)
    marker = tmp_path / "ran"
    proc = lp("learn", "--backend", "ptrace", "-o", str(link), "--", "touch", str(marker))
    _refused(proc, "symlink")
    assert not marker.exists(), "the workload ran although its run could not be saved"
    assert real.read_bytes() == good.read_bytes()
