#!/usr/bin/env python3
"""`make eval`: how minimal the exported allowlists are, per real program, next to Docker's default.

Not a test. Each program of the generalization suite (tests/workloads/gen/*.sh, the same inputs as
tests/test_generalize_suite.py) is learned twice with ptrace; the table lists, on this host's ABI:

  traced     syscalls the runs made
  exact      names the `docker` export allows with --exact --runtime none (only what was traced)
  +base      with --exact: plus runc's runtime base (the one Docker/Podman need)
  default    the default `docker` export: plus harmless siblings (what generalization adds)
  docker     names Docker's default profile allows (14 default capabilities)

A name counts once, allowed unconditionally or under an argument rule. The goal: the default's
median at most 40% of Docker's default.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LEASTPRIV = [sys.executable, "-m", "leastpriv"]
GEN = ROOT / "tests" / "workloads" / "gen"
PROGRAMS = {"nginx": ["index", "about"], "redis": ["k1=v1", "k2=v2"], "sqlite": ["alpha", "beta"],
            "git": ["one", "two"], "tar": ["f1", "f2"], "python": ["aa", "bb"]}


def allowed(profile: Path, *flags: str) -> int:
    out = subprocess.run(LEASTPRIV + ["export", str(profile), "--format", "docker", *flags], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    return len({n for r in json.loads(out)["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]})


def main() -> None:
    from leastpriv.kernel import syscalls
    from leastpriv.learner.review import docker_allowed

    arch = syscalls.host_arch()
    d = docker_allowed(arch)
    docker = len(set(d["unconditional"]) | set(d["conditional"]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="lp-eval-") as tmp:
        for name, inputs in PROGRAMS.items():
            p = Path(tmp) / f"{name}.json"
            for _ in range(2):
                subprocess.run(LEASTPRIV + ["learn", "--backend", "ptrace", "-o", str(p), "--", "sh",
                                            str(GEN / f"{name}.sh"), *inputs], capture_output=True, check=True, cwd=ROOT)
            traced = len(json.loads(p.read_text())["facts"]["syscalls"][arch])
            rows.append((name, traced, allowed(p, "--exact", "--runtime", "none"), allowed(p, "--exact"),
                         allowed(p), docker))
    print(f"{'program':10} {'traced':>7} {'exact':>6} {'+base':>6} {'default':>8} {'docker':>7} {'default/docker':>15}")
    for name, t, e, b, g, dk in rows:
        print(f"{name:10} {t:7} {e:6} {b:6} {g:8} {dk:7} {g / dk:14.0%}")
    med = [statistics.median(r[i] for r in rows) for i in range(1, 6)]
    print(f"{'median':10} {med[0]:7g} {med[1]:6g} {med[2]:6g} {med[3]:8g} {med[4]:7g} {med[3] / med[4]:14.0%}")
    print(f"goal: median default <= 40% of Docker's default ({0.4 * docker:.0f} of {docker} on {arch})")


if __name__ == "__main__":
    main()
