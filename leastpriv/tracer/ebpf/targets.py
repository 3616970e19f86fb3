"""What is traced, as /proc and cgroup v2 show it: a process's descendants and status, the executable of a
process that was running before the trace, a cgroup's id, level and processes."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import UserError
from ..paths import in_root, root_of


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _deleted(p: str | None) -> str | None:
    return p[:-len(" (deleted)")] if p and p.endswith(" (deleted)") else p


def proc_exe(pid: int) -> str | None:
    """The executable of a process that was running before the trace saw it exec (attach modes, cgroup
    newcomers), as the process sees it (inside its root); an exec during the trace comes from the kernel."""
    return in_root(root_of(pid), _deleted(_readlink(f"/proc/{pid}/exe")) or "") or None


def cgroup_info(path: str) -> tuple[int, int, str]:
    """(cgroup id, level, canonical path) of a cgroup v2 directory."""
    p = os.path.realpath(path)
    try:
        st = os.stat(p)
        sfs = os.statvfs(p)  # noqa: F841 - existence/permission check
    except OSError as exc:
        raise UserError(f"--cgroup {path}: {exc.strerror}") from None
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[:1] == ["cgroup2"]:
            mp, root = fields[4], fields[3]
            if p == mp or p.startswith(mp.rstrip("/") + "/"):
                if mount is None or len(mp) > len(mount[0]):
                    mount = (mp, root)
    if mount is None:
        mounts = sorted({line.split(" - ")[0].split()[4]
                         for line in Path("/proc/self/mountinfo").read_text().splitlines()
                         if line.partition(" - ")[2].split()[:1] == ["cgroup2"]})
        if mounts:
            raise UserError(f"--cgroup {path}: not in a cgroup v2 hierarchy; cgroup2 is mounted at "
                            f"{', '.join(mounts)}: give a cgroup under it")
        raise UserError(f"--cgroup {path}: not in a cgroup v2 hierarchy, and none is mounted: mount one on a "
                        f"directory of its own (mkdir -p /run/cgroup2 && mount -t cgroup2 none /run/cgroup2); "
                        f"not over /sys/fs/cgroup, which would hide the cgroup v1 controllers")
    mp, root = mount
    rel = os.path.relpath(p, mp)
    parts = [x for x in root.split("/") if x] + ([x for x in rel.split("/") if x and x != "."])
    return st.st_ino, len(parts), p


def cgroup_procs(path: str) -> list[int]:
    """The processes in a cgroup v2 directory and its descendants."""
    out: list[int] = []
    for d, _dirs, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                out += [int(x) for x in Path(d, "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pass
    return out


def status_field(pid: int, field: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def descendants(pid: int) -> list[int]:
    """pid's process and all its descendant processes (tgids), from /proc/*/task/*/children.

    leastpriv itself (when attached to one of its ancestors, e.g. the shell that runs it) is left out.
    """
    out, todo, seen = [], [pid], {os.getpid()}
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(k) for k in kids)
    return out


def alive(pid: int) -> bool:
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def open_fds() -> set[int]:
    try:
        return {int(f) for f in os.listdir("/proc/self/fd")}
    except OSError:
        return {0, 1, 2}
