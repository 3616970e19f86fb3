"""Exporters are pure: the same profile exports the same bytes from another working directory, with another
environment, after the files the workload used are gone. What an export needs to know about a path (is it a
directory, an executable's interpreter, where a link leads) was recorded when the profile was learned."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from .conftest import lp, need_root

FORMATS = ("oci", "docker", "k8s-seccompprofile", "k8s-apparmorprofile", "k8s-pod", "apparmor", "systemd",
           "landlock", "seccomp-pfc", "selinux")


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    need_root()
    base = tmp_path_factory.mktemp("purity")
    work = base / "work"
    (work / "sub").mkdir(parents=True)
    (work / "out").mkdir()
    (work / "sub" / "f").write_text("data\n")
    tool = work / "tool.sh"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    (work / "link").symlink_to(work / "sub")
    script = f"ls {work}/sub >/dev/null; cat {work}/link/f >/dev/null; {tool}; echo x > {work}/out/new.txt"
    profile = base / "p.json"
    res = lp("learn", "--backend", "ptrace", "-o", str(profile), "--", "/bin/sh", "-c", script, timeout=120)
    assert res.returncode == 0, res.stderr
    return base, work, profile


def _export_all(profile, cwd, env) -> dict:
    out = {}
    for fmt in FORMATS:
        res = lp("export", str(profile), "--format", fmt, cwd=cwd, env=env, timeout=120)
        assert res.returncode == 0, f"{fmt}: {res.stderr}"
        out[fmt] = res.stdout
    return out


def test_the_same_profile_exports_the_same_bytes_anywhere(learned, tmp_path):
    base, work, profile = learned
    facts = json.loads(profile.read_text())["facts"]["paths"]
    assert facts[str(work / "sub")]["kind"] == "dir" and facts[str(work / "tool.sh")]["interpreter"] == "/bin/sh"
    assert facts["/bin/sh"]["realpath"] == os.path.realpath("/bin/sh")   # where the interpreter really is
    first = _export_all(profile, cwd=str(base), env=dict(os.environ))
    shutil.rmtree(work)   # the learned files are gone
    other = tmp_path / "elsewhere"
    other.mkdir()
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(other), "LANG": "C",
           "TZ": "Pacific/Auckland", "LEASTPRIV_PURITY_TEST": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    second = _export_all(profile, cwd=str(other), env=env)
    for fmt in FORMATS:
        assert first[fmt] == second[fmt], f"{fmt}: the export depends on the machine it runs on"
    # and the recorded facts were used, not dropped: the directory and the interpreter are still known
    ll = json.loads(second["landlock"])
    dirs = [p for rule in ll.get("pathBeneath", []) if "read_dir" in rule["allowedAccess"] for p in rule["parent"]]
    assert str(work / "sub") in dirs, ll
    assert f"{work}/sub/ r," in second["apparmor"], second["apparmor"]
