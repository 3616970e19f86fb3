"""OCI bundles: config.json from an image config, and the edits leastpriv makes to a bundle.

The config follows what ``runc spec`` and Docker produce for a container, with
what this kind of machine needs (design.md): no ``process.rlimits``, no
``/sys/fs/cgroup`` mount, a real ``root.path`` directory. Networking is a new,
empty network namespace (loopback only, brought up by a createRuntime hook
when ``ip`` and ``nsenter`` exist on the host).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..fileio import dumps, write_atomic
from .image import ImageConfig, resolve_in_root

# Docker's default capability set (moby oci/caps/defaults.go): what a container gets unless told otherwise.
DOCKER_DEFAULT_CAPS = (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
]
_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
           "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def caps_block(caps: Sequence[str]) -> dict:
    c = sorted(set(caps))
    return {"bounding": c, "effective": c, "permitted": c}


def _read_in_root(root: str, path: str, limit: int = 1 << 20) -> str:
    p = resolve_in_root(root, [x for x in path.split("/") if x], follow_last=True)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)


def resolve_user(rootfs: str, user: str) -> tuple[int, int]:
    """Image ``User`` ("", "name", "uid", "name:group", "uid:gid") -> (uid, gid) via the rootfs's passwd/group."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    passwd = [line.split(":") for line in _read_in_root(rootfs, "/etc/passwd").splitlines() if line.count(":") >= 3]
    groups = [line.split(":") for line in _read_in_root(rootfs, "/etc/group").splitlines() if line.count(":") >= 2]
    uid = gid = None
    if name.isdigit():
        uid = int(name)
        gid = next((int(p[3]) for p in passwd if p[2] == name and p[3].isdigit()), uid if not group else None)
    else:
        for p in passwd:
            if p[0] == name and p[2].isdigit() and p[3].isdigit():
                uid, gid = int(p[2]), int(p[3])
                break
        if uid is None:
            raise UserError(f"image User {user!r}: no such user in the image's /etc/passwd")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next((int(g[2]) for g in groups if g[0] == group and g[2].isdigit()), None)
            if gid is None:
                raise UserError(f"image User {user!r}: no such group in the image's /etc/group")
    return uid, gid if gid is not None else 0


@dataclass(frozen=True)
class Overrides:
    """What `docker run` lets the user change about an image's process, and leastpriv too.

    env         ``KEY=VALUE`` (set) or ``KEY`` (this environment's value, left out when unset): -e/--env
    workdir     the process's cwd: --workdir
    user        ``name``, ``uid``, ``name:group``, ``uid:gid`` (resolved in the image): --user
    entrypoint  replaces the image's Entrypoint, and then its Cmd is not used: --entrypoint
    """

    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None

    def __post_init__(self):
        for e in self.env:
            if not e or e.startswith("=") or "\0" in e:
                raise UserError(f"--env {e!r}: expected KEY=VALUE or KEY")
        if self.workdir is not None and not self.workdir.startswith("/"):
            raise UserError(f"--workdir {self.workdir!r}: must be an absolute path in the container")


def merge_env(env: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """``env`` with each ``KEY=VALUE`` set (in place, or appended) and each bare ``KEY`` taken from here."""
    out = list(env)
    for e in overrides:
        key, eq, value = e.partition("=")
        if not eq:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out = [x for x in out if x.partition("=")[0] != key] + [f"{key}={value}"]
    return out


def apply_overrides(conf: dict, rootfs: str, ov: Overrides, args: Sequence[str] = ()) -> dict:
    """``conf`` (a bundle's) with the overrides applied: --entrypoint replaces args[0] and ARGS follow it."""
    c = copy.deepcopy(conf)
    proc = c["process"]
    if ov.entrypoint is not None:
        proc["args"] = [ov.entrypoint, *args]
    if ov.env:
        proc["env"] = merge_env(proc.get("env", []), ov.env)
    if ov.workdir is not None:
        proc["cwd"] = ov.workdir
    if ov.user is not None:
        uid, gid = resolve_user(rootfs, ov.user)
        proc["user"] = {**proc.get("user", {}), "uid": uid, "gid": gid}
    return c


def config_from_image(cfg: ImageConfig, rootfs: str, args: Sequence[str] = (), caps: Sequence[str] = DOCKER_DEFAULT_CAPS,
                      network: str = "loopback", overrides: Overrides = Overrides()) -> dict:
    """A runc config.json for the image (args, when given, replace the image's Cmd like `docker run IMAGE ARGS`;
    ``overrides`` as docker run's -e, --workdir, --user, --entrypoint)."""
    ov = overrides
    if ov.entrypoint is not None:   # docker: --entrypoint resets Cmd
        argv = [ov.entrypoint, *args]
    else:
        argv = list(cfg.entrypoint) + (list(args) if args else list(cfg.cmd))
    if not argv:
        raise UserError(f"image {cfg.name or ''}: has neither Entrypoint nor Cmd; give the command after --")
    env = list(cfg.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    env = merge_env(env, ov.env)
    uid, gid = resolve_user(rootfs, ov.user if ov.user is not None else cfg.user)
    annotations = {"org.leastpriv.image": cfg.name}
    if cfg.exposed_ports:
        annotations["org.opencontainers.image.exposedPorts"] = ",".join(cfg.exposed_ports)
    cwd = ov.workdir if ov.workdir is not None else (cfg.working_dir or "/")
    return base_config(argv, env, uid, gid, cwd, caps, network, annotations)


def base_config(argv: Sequence[str], env: Sequence[str] = (DEFAULT_PATH,), uid: int = 0, gid: int = 0, cwd: str = "/",
                caps: Sequence[str] = DOCKER_DEFAULT_CAPS, network: str = "loopback",
                annotations: dict | None = None) -> dict:
    conf = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": list(argv),
            "env": list(env),
            "cwd": cwd,
            "capabilities": caps_block(caps),
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "leastpriv",
        "mounts": copy.deepcopy(_MOUNTS),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
        },
        "annotations": dict(annotations or {}),
    }
    if network == "loopback":
        hook = loopback_hook()
        if hook:
            conf["hooks"] = {"createRuntime": [hook]}
    elif network != "none":
        raise UserError(f"--network: expected none or loopback, got {network!r}")
    return conf


def loopback_hook() -> dict | None:
    nsenter, ip = shutil.which("nsenter"), shutil.which("ip")
    if not nsenter or not ip:
        return None
    script = ('pid=$(tr , "\\n" | sed -n "s/^ *\\"pid\\": *\\([0-9][0-9]*\\).*/\\1/p" | head -n1); '
              f'exec {nsenter} -t "$pid" -n {ip} link set lo up')
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def load_config(bundle: str | os.PathLike) -> dict:
    p = Path(bundle) / "config.json"
    try:
        conf = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{bundle}: not an OCI bundle (no config.json)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read: {exc}") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("process"), dict) or not isinstance(conf.get("root"), dict):
        raise UserError(f"{p}: not an OCI runtime config (no process/root)")
    return conf


def save_config(bundle: str | os.PathLike, conf: dict) -> None:
    write_atomic(Path(bundle) / "config.json", dumps(conf))


def prepare_for_here(conf: dict, args: Sequence[str] = ()) -> tuple[dict, list[str]]:
    """A copy of ``conf`` that runc can run on this machine, and what was changed (design.md facts)."""
    c = copy.deepcopy(conf)
    changes: list[str] = []
    proc = c["process"]
    if args:
        proc["args"] = list(args)
    if proc.get("terminal"):
        proc["terminal"] = False
        changes.append("process.terminal set to false (leastpriv captures output)")
    if proc.pop("rlimits", None):
        changes.append("process.rlimits dropped (setrlimit needs CAP_SYS_RESOURCE, not available here)")
    mounts = c.get("mounts", [])
    kept = [m for m in mounts if m.get("destination") != "/sys/fs/cgroup"]
    if len(kept) != len(mounts):
        changes.append("/sys/fs/cgroup mount dropped")
    c["mounts"] = kept
    return c, changes
