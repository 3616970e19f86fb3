"""The generalization suite: real Debian programs, each learned twice from one set of inputs and run
on a DIFFERENT set, with default flags, under every enforcer that matters:

* ``leastpriv run --profile`` (seccomp + Landlock + capabilities) reproduces the untraced output and
  exit status;
* the ``oci`` export runs it under runc;
* the ``docker`` export runs it under real Podman: runc without and with no-new-privileges, and crun
  (Podman's usual runtime) without.

Every program uses its own temporary directory (mktemp -d, tempfile.mkdtemp), so no two runs share a
path there: the profile holds only because the learner made patterns and owned directories of them.
The programs' scripts are tests/workloads/gen/*.sh.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from leastpriv.learner.profile import Profile

from .conftest import WORKLOADS, lp, need_root
from .containers_here import make_rootfs, run_podman, run_runc
from .learning import free_port, learn_profile, with_rules

GEN = WORKLOADS / "gen"
# program -> (inputs it is learned from (twice), other inputs it must then run with)
PROGRAMS = {
    "nginx": (["index", "about"], ["news", "contact", "missing-page"]),          # HTTP server
    "redis": (["k1=v1", "k2=v2"], ["user=ann", "city=oslo", "zip=0150"]),       # key-value server (RESP)
    "sqlite": (["alpha", "beta"], ["gamma", "delta", "xenon", "epsilon"]),      # database
    "git": (["one", "two"], ["readme", "main", "lib"]),                          # version control
    "tar": (["f1", "f2"], ["g1", "g2", "g3"]),                                   # archive + compression
    "python": (["aa", "bb"], ["cc", "dd", "ee"]),                                # interpreter running a script
}


@pytest.fixture(scope="module", autouse=True)
def _port():
    """The servers' port (LP_GEN_PORT, read by gen/nginx.sh and gen/redis.sh): a free one, picked once for
    the module, so that two suites side by side (or a service on the scripts' default port) do not collide.
    Learning, the untraced runs and `run --profile` share it (a learned bind rule names its port); the
    containers have networks of their own and keep the scripts' default."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LP_GEN_PORT", str(free_port()))
        yield


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    need_root()
    return make_rootfs(tmp_path_factory.mktemp("suite-root"))


def _learn(name: str, d, backend: str | None):
    first, _ = PROGRAMS[name]
    path = d / f"{name}-{backend or 'default'}.json"
    argv = ["sh", str(GEN / f"{name}.sh")]
    for _ in range(2):
        if backend:
            _, proc = learn_profile(argv + first, path)
        else:   # leastpriv learn with no flags at all (as root: eBPF)
            proc = lp("learn", "-o", str(path), "--", *argv, *first)
        assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module", params=sorted(PROGRAMS))
def learned(request, tmp_path_factory):
    need_root()
    name = request.param
    first, other = PROGRAMS[name]
    d = tmp_path_factory.mktemp(f"gen-{name}")
    argv = ["sh", str(GEN / f"{name}.sh")]
    path = _learn(name, d, "ptrace")
    untraced = subprocess.run(argv + other, capture_output=True, text=True, timeout=120)
    assert untraced.returncode == 0, untraced.stderr
    return {"name": name, "path": path, "argv": argv + other, "want": untraced, "dir": d}


def test_run_with_the_profile_on_other_inputs(learned):
    prof = Profile.load(str(learned["path"]))
    assert prof.rules.owned, "each program works in a temporary directory of its own"
    if learned["name"] in ("nginx", "redis"):   # the servers bound the module's free port
        assert prof.rules.network.tcp("bind") == (int(os.environ["LP_GEN_PORT"]),), prof.rules.network
    res = lp("run", "--profile", str(learned["path"]), "--", *learned["argv"])
    assert (res.returncode, res.stdout) == (learned["want"].returncode, learned["want"].stdout), res.stderr
    # the owned temporary directory is what lets it run: without that rule it does not
    bare = learned["dir"] / "no-owned.json"
    with_rules(prof, owned=[]).save(str(bare))
    res = lp("run", "--profile", str(bare), "--", *learned["argv"])
    assert (res.returncode, res.stdout) != (learned["want"].returncode, learned["want"].stdout)


@pytest.mark.parametrize("name", ["git", "sqlite"])
def test_run_learned_with_default_flags(name, tmp_path):
    """The same with `leastpriv learn` exactly as a user types it (as root: the eBPF backend). Two programs
    only: an eBPF learning run costs seconds more than ptrace on this shared machine (all six pass by hand)."""
    need_root()
    path = _learn(name, tmp_path, None)
    argv = ["sh", str(GEN / f"{name}.sh"), *PROGRAMS[name][1]]
    want = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    res = lp("run", "--profile", str(path), "--", *argv)
    assert (res.returncode, res.stdout) == (want.returncode, want.stdout), res.stderr


def test_oci_export_under_runc(learned, rootfs):
    frag = json.loads(lp("export", str(learned["path"]), "--format", "oci", check=True).stdout)
    assert frag["process"]["noNewPrivileges"] is True
    st, out, err = run_runc(rootfs, frag, learned["argv"], binds=[str(GEN)])
    assert (st, out) == (learned["want"].returncode, learned["want"].stdout), err


@pytest.mark.parametrize("runtime,nnp", [("runc", False), ("runc", True), ("crun", False)],
                         ids=["runc-default", "runc-no-new-privileges", "crun-default"])
def test_docker_export_under_podman(learned, rootfs, runtime, nnp):
    seccomp = learned["dir"] / "docker.json"
    lp("export", str(learned["path"]), "--format", "docker", "-o", str(seccomp), check=True)
    caps = list(Profile.load(str(learned["path"])).rules.capabilities)
    res = run_podman(rootfs, seccomp, learned["argv"], nnp=nnp, caps=caps, binds=[str(GEN)], runtime=runtime)
    assert (res.returncode, res.stdout) == (learned["want"].returncode, learned["want"].stdout), res.stderr


def test_without_the_runtime_base_podman_cannot_start_it(rootfs, tmp_path):
    """The runtime base is what makes the docker export start under Podman's default (no no-new-privileges)."""
    need_root()
    path = tmp_path / "tar.json"
    argv = ["sh", str(GEN / "tar.sh")]
    learn_profile(argv + ["f1"], path)
    seccomp = tmp_path / "bare.json"
    lp("export", str(path), "--format", "docker", "--runtime", "none", "-o", str(seccomp), check=True)
    res = run_podman(rootfs, seccomp, argv + ["g1"], nnp=False, binds=[str(GEN)])
    assert res.returncode != 0 and "operation not permitted" in res.stderr.lower(), res.stderr
