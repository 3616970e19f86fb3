"""Run exported profiles under the real consumers on this machine: runc (the ``oci`` export) and
Podman (the ``docker`` export), with this host's programs.

The container's root is a small directory with a copy of /etc, the host's /usr bound read-only
(Debian's merged /usr: /bin, /lib, /lib64, /sbin are symlinks into it) and a fresh /tmp, so the
real Debian programs the tests learn run inside unchanged, with no image to build or import.
Podman takes the same directory with ``--rootfs`` (design.md's recipe otherwise: runc, explicit
ulimits, no network).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from leastpriv.oci.bundle import base_config
from leastpriv.oci.runc import Runc

PODMAN_ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")


def make_rootfs(d: Path) -> Path:
    root = d / "rootfs"
    if root.exists():
        return root
    for sub in ("usr", "etc", "tmp", "var/tmp", "proc", "dev", "sys", "run", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if not (root / link).is_symlink():
            os.symlink(f"usr/{link}", root / link)
    subprocess.run(["cp", "-a", "/etc/.", str(root / "etc")], check=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "var/tmp", 0o1777)
    return root


def _bind(src: str, ro: bool = True) -> dict:
    return {"destination": src, "type": "bind", "source": src, "options": ["rbind", "ro" if ro else "rw"]}


def run_runc(rootfs: Path, fragment: dict, argv: Sequence[str], cwd: str = "/", binds: Sequence[str] = (),
             env: Sequence[str] = ()) -> tuple[int | None, str, str]:
    """Run argv under runc with an ``oci`` export (process + linux.seccomp). Returns (status, stdout, stderr+runc error)."""
    conf = base_config(list(argv), env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                        "HOME=/root", *env], cwd=cwd, network="loopback")
    conf["root"] = {"path": str(rootfs), "readonly": False}
    conf["mounts"] += [_bind("/usr"),
                       {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}]
    conf["mounts"] += [_bind(b) for b in binds]
    conf["process"].update(fragment["process"])
    conf["linux"]["seccomp"] = fragment["linux"]["seccomp"]
    res = Runc().run(rootfs.parent, conf, timeout=120)
    return res.exit_status, res.stdout, res.stderr + res.runc_error


# crun runs under Podman here with cgroup2 on /sys/fs/cgroup in a private mount namespace and --cgroups=disabled
_CGROUP2 = ("for d in /sys/fs/cgroup/*; do umount -l \"$d\" 2>/dev/null; done; umount -l /sys/fs/cgroup 2>/dev/null; "
            "mount -t cgroup2 none /sys/fs/cgroup; exec \"$@\"")


def run_podman(rootfs: Path, seccomp_file: Path, argv: Sequence[str], *, nnp: bool, caps: Sequence[str] = (),
               cwd: str = "/", binds: Sequence[str] = (), runtime: str = "runc") -> subprocess.CompletedProcess:
    """Run argv under real Podman (runc, or crun) with a ``docker`` export, without or with no-new-privileges."""
    podman = shutil.which("podman")
    assert podman, "podman is not installed: make install installs it"
    pre = ["unshare", "-m", "--propagation", "private", "sh", "-c", _CGROUP2, "lp-podman"] if runtime == "crun" else []
    cmd = [*pre, podman, "--runtime", runtime, "run", "--rm", *PODMAN_ULIMITS, "--network", "none",
           *(["--cgroups=disabled"] if runtime == "crun" else []),
           "--security-opt", f"seccomp={seccomp_file}", "--cap-drop", "ALL",
           *[x for c in caps for x in ("--cap-add", c.removeprefix("CAP_"))],
           *(["--security-opt", "no-new-privileges"] if nnp else []),
           "-v", "/usr:/usr:ro", *[x for b in binds for x in ("-v", f"{b}:{b}:ro")],
           "--tmpfs", "/tmp:rw,mode=1777", "-w", cwd, "--rootfs", str(rootfs), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def export(profile: Path, fmt: str, *args: str) -> dict:
    from .conftest import lp
    return json.loads(lp("export", str(profile), "--format", fmt, *args, check=True).stdout)
