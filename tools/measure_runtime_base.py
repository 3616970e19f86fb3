#!/usr/bin/env python3
"""Measure what runc does between installing the seccomp filter and the workload's execve.

Writes leastpriv/policy/runtime_base.json (per runtime, version and
noNewPrivileges mode). Run as root: `sudo .venv/bin/python tools/measure_runtime_base.py`.

Method: run a busybox container (`true`) under `strace -f` with a seccomp
filter installed (defaultAction ALLOW, one ERRNO rule, so that runc installs a
filter), for noNewPrivileges true and false, as root and as uid 1000, N times
each. In runc's init process, take every syscall made after the filter-install
call (prctl(PR_SET_SECCOMP) or seccomp(SET_MODE_FILTER)) by the thread that
installed it (and by its sibling threads if the filter was installed with
TSYNC), up to and including the execve of the workload. The union over runs is
the runtime base. Then each syscall of the base is checked: the container is
run with a profile of (base + the workload's own syscalls) minus that one,
default action ERRNO; if runc still starts the workload, the syscall is marked
"tolerated" (runc copes with its failure), else "required".

crun (`--runtime crun`) is measured the same way through Podman, the way it
runs here: `podman --runtime crun run --cgroups=disabled` with explicit
`--ulimit`s, in a private mount namespace with cgroup2 on /sys/fs/cgroup
(crun alone fails here on setrlimit RLIMIT_MEMLOCK), `--rootfs` the busybox
directory, `--security-opt no-new-privileges` for that mode, root and
`--user 1000:1000`; `strace -f` follows podman, conmon and crun, and the same
parse() finds crun's init thread after its filter install.

Usage: tools/measure_runtime_base.py [--runtime runc|crun|all]   (RUNS=N per mode and uid, default 10)
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leastpriv.kernel import syscalls  # noqa: E402
from leastpriv.oci.bundle import base_config, save_config  # noqa: E402
from leastpriv.oci.runc import Runc  # noqa: E402
from leastpriv.fileio import dumps, write_atomic  # noqa: E402

OUT = ROOT / "leastpriv" / "policy" / "runtime_base.json"
SPO = ROOT.parent / "shared" / "reference" / "security-profiles-operator"
GO_RUNTIME = ["futex", "getpid", "nanosleep", "rt_sigreturn", "sched_yield", "tgkill"]
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")


def parse(trace: str) -> tuple[set[str], set[str], str]:
    """(runtime base, workload syscalls, how the filter was installed) from one `strace -f` output."""
    lines = trace.splitlines()
    tgid: dict[int, int] = {}
    for ln in lines:
        m = re.match(r"^(\d+)\s+(?:clone|clone3)\(.*?(CLONE_THREAD)?.*= (\d+)$", ln)
        if m and "clone" in ln:
            parent, child = int(m.group(1)), int(m.group(3))
            tgid[child] = tgid.get(parent, parent) if "CLONE_THREAD" in ln else child
    install_idx, installer, how = -1, -1, ""
    exec_idx = -1
    for i, ln in enumerate(lines):
        m = LINE.match(ln)
        if not m or not m.group(3):
            continue
        pid, name = int(m.group(1)), m.group(3)
        # the real install passes a filter ({len=...}); libseccomp's feature probes pass NULL
        if ((name == "prctl" and "PR_SET_SECCOMP" in ln) or (name == "seccomp" and "SECCOMP_SET_MODE_FILTER" in ln)) \
                and "{len=" in ln:
            install_idx, installer, how = i, pid, ln.split("(", 1)[0].split()[-1] + ("+TSYNC" if "TSYNC" in ln else "")
        if name == "execve" and pid == installer and install_idx >= 0:
            exec_idx = i
            break
    if install_idx < 0 or exec_idx < 0:
        raise SystemExit("could not find the filter install and the workload's execve in the trace")
    group = tgid.get(installer, installer)
    tsync = "TSYNC" in how
    base: set[str] = set()
    for ln in lines[install_idx + 1:exec_idx + 1]:
        m = LINE.match(ln)
        if not m or not m.group(3):
            continue
        pid = int(m.group(1))
        if pid == installer or (tsync and tgid.get(pid, pid) == group):
            base.add(m.group(3))
    workload: set[str] = set()
    for ln in lines[exec_idx + 1:]:
        m = LINE.match(ln)
        if m and m.group(3) and int(m.group(1)) == installer:
            workload.add(m.group(3))
    return base, workload, how


def run(r: Runc, bundle: Path, conf: dict, cid: str, strace: bool) -> subprocess.CompletedProcess:
    save_config(bundle, conf)
    pre = ["strace", "-f", "-qq", "-o", str(bundle / "trace")] if strace else []
    argv = r.wrap + pre + [r.binary, "--root", r.state_root, "run", "--bundle", str(bundle), cid]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    subprocess.run(r.argv("delete", "--force", cid), capture_output=True)
    return p


_CGROUP2_HERE = ("for d in /sys/fs/cgroup/*; do umount -l \"$d\" 2>/dev/null; done; "
                 "umount -l /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup; exec \"$@\"")


def podman_crun(tmp: Path, rootfs: Path, seccomp: dict, nnp: bool, uid: int, strace: bool) -> subprocess.CompletedProcess:
    """Run `busybox true` under Podman with crun (the way crun runs on this machine)."""
    prof = tmp / "crun-seccomp.json"
    prof.write_text(json.dumps(seccomp))
    pre = ["strace", "-f", "-qq", "-o", str(tmp / "trace")] if strace else []
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", _CGROUP2_HERE, "lp-crun",
            *pre, "podman", "--runtime", "crun", "run", "--rm", "--cgroups=disabled",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "--network", "none",
            "--security-opt", f"seccomp={prof}", *(["--security-opt", "no-new-privileges"] if nnp else []),
            "--user", f"{uid}:{uid}", "--rootfs", str(rootfs), "/bin/busybox", "true"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def measure_crun(n: int, tmp: Path, rootfs: Path, arch: str) -> tuple[str, dict]:
    out = subprocess.run(["crun", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"crun version (\S+)", out)
    version = m.group(1) if m else "unknown"
    result: dict = {}
    for nnp in (True, False):
        base: set[str] = set()
        workload: set[str] = set()
        hows = set()
        for uid in (0, 1000):
            for _ in range(n):
                p = podman_crun(tmp, rootfs, {"defaultAction": "SCMP_ACT_ALLOW",
                                              "architectures": [syscalls.oci_arch(arch)],
                                              "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]},
                                nnp, uid, strace=True)
                if p.returncode != 0:
                    raise SystemExit(f"podman --runtime crun failed: {p.stderr}")
                b, w, how = parse((tmp / "trace").read_text())
                base |= b
                workload |= w
                hows.add(how)
        required, tolerated = [], []
        for sc in sorted(base):
            allow = sorted((base | workload) - {sc})
            p = podman_crun(tmp, rootfs, {"defaultAction": "SCMP_ACT_ERRNO", "architectures": [syscalls.oci_arch(arch)],
                                          "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]},
                            nnp, 1000, strace=False)
            (tolerated if p.returncode == 0 else required).append(sc)
        key = "no_new_privileges" if nnp else "new_privileges"
        result[key] = {"syscalls": {arch: sorted(base)}, "required": {arch: required},
                       "tolerated": {arch: tolerated}, "filter_install": sorted(hows), "runs": 2 * n}
        print(f"crun {version} {key}: {len(base)} syscalls: {' '.join(sorted(base))}", file=sys.stderr)
        print(f"  required: {' '.join(required)}", file=sys.stderr)
    return version, {"measured": {"kernel": platform.release(), "date": time.strftime("%Y-%m-%d"), "method":
                     "strace -f of `podman --runtime crun run --cgroups=disabled` (busybox true; root and uid 1000; "
                     "cgroup2 in a private mount namespace), syscalls of crun's filtered thread between the filter "
                     "install and the workload's execve; required = the container fails without it"}, **result}


def main() -> int:
    if os.geteuid() != 0:
        print("measure_runtime_base: run as root", file=sys.stderr)
        return 2
    which = sys.argv[sys.argv.index("--runtime") + 1] if "--runtime" in sys.argv else "all"
    if which not in ("runc", "crun", "all"):
        print("measure_runtime_base: --runtime runc|crun|all", file=sys.stderr)
        return 2
    n = int(os.environ.get("RUNS", "10"))
    r = Runc()
    version = r.short_version()
    arch = syscalls.host_arch()
    tmp = Path(tempfile.mkdtemp(prefix="lp-measure-"))
    rootfs = tmp / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (rootfs / d).mkdir()
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    result: dict = {}
    crun_entry: tuple[str, dict] | None = None
    try:
        if which in ("crun", "all"):
            crun_entry = measure_crun(n, tmp, rootfs, arch)
        for nnp in ((True, False) if which in ("runc", "all") else ()):
            base: set[str] = set()
            workload: set[str] = set()
            hows = set()
            for uid in (0, 1000):
                for i in range(n):
                    conf = base_config(["/bin/busybox", "true"], uid=uid, gid=uid, network="none")
                    conf["root"]["path"] = str(rootfs)
                    conf["process"]["noNewPrivileges"] = nnp
                    conf["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                                "architectures": [syscalls.oci_arch(arch)],
                                                "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]}
                    p = run(r, tmp, conf, f"lp-measure-{os.getpid()}", strace=True)
                    if p.returncode != 0:
                        raise SystemExit(f"runc failed: {p.stderr}")
                    b, w, how = parse((tmp / "trace").read_text())
                    base |= b
                    workload |= w
                    hows.add(how)
            # which of them runc cannot do without
            required, tolerated = [], []
            for sc in sorted(base):
                conf = base_config(["/bin/busybox", "true"], uid=1000, gid=1000, network="none")
                conf["root"]["path"] = str(rootfs)
                conf["process"]["noNewPrivileges"] = nnp
                allow = sorted((base | workload) - {sc})
                conf["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": [syscalls.oci_arch(arch)],
                                            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]}
                p = run(r, tmp, conf, f"lp-check-{os.getpid()}", strace=False)
                (tolerated if p.returncode == 0 else required).append(sc)
            key = "no_new_privileges" if nnp else "new_privileges"
            result[key] = {"syscalls": {arch: sorted(base)}, "required": {arch: required},
                           "tolerated": {arch: tolerated}, "filter_install": sorted(hows),
                           "runs": 2 * n}
            print(f"runc {version} {key}: {len(base)} syscalls: {' '.join(sorted(base))}", file=sys.stderr)
            print(f"  required: {' '.join(required)}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    data = {"format": "leastpriv-runtime-base", "version": 1,
            "generated_by": "tools/measure_runtime_base.py",
            "note": "syscalls the OCI runtime makes after installing the container's seccomp filter and up to "
                    "(including) the workload's execve; an exported profile must allow them or the container "
                    "does not start",
            "runtimes": {}}
    if OUT.exists():
        old = json.loads(OUT.read_text())
        data["runtimes"] = old.get("runtimes", {})
    if crun_entry is not None:
        data["runtimes"]["crun"] = {crun_entry[0]: crun_entry[1]}   # measured here: SPO's list is no longer used
    if which == "crun":
        write_atomic(OUT, dumps(data))
        print(f"wrote {OUT}", file=sys.stderr)
        return 0
    data["runtimes"].setdefault("runc", {})[version] = {
        "measured": {"kernel": platform.release(), "date": time.strftime("%Y-%m-%d"), "method":
                     "strace -f of `runc run` (busybox true; root and uid 1000), syscalls of the filtered thread(s) "
                     "between the filter install and the workload's execve; required = runc fails without it"},
        # Go's scheduler runs on the filtered (locked) thread too: a futex wait, a sleep, a yield or a
        # preemption signal can fall between the filter install and execve in any run. A missing one
        # makes container starts fail at random, so they are kept as their own, documented list.
        "go_runtime": {"x86_64": GO_RUNTIME},
        **result}
    crun = SPO / "baseprofile-crun.yaml"
    if crun_entry is None and "crun" not in data["runtimes"] and crun.exists():
        import yaml
        doc = yaml.safe_load(crun.read_text())
        names = sorted({n for s in doc["spec"]["syscalls"] for n in s["names"]})
        ver = doc["metadata"]["name"].split("-v", 1)[-1]
        data["runtimes"].setdefault("crun", {})[ver] = {
            "measured": {"source": "security-profiles-operator examples/baseprofile-crun.yaml (not measured here: "
                                   "crun fails on this machine, setrlimit RLIMIT_MEMLOCK)"},
            "no_new_privileges": {"syscalls": {"x86_64": names}},
            "new_privileges": {"syscalls": {"x86_64": names}}}
    write_atomic(OUT, dumps(data))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
