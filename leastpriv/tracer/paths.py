"""Paths as a traced process sees them: relative to its own root (a container's root inside a container).

The eBPF program resolves paths in the kernel; what it cannot give (a script's
name: its file is closed by the time the exec is reported) and what ptrace
reads from /proc (``/proc/PID/fd/N`` is printed relative to *our* root) are
put in the process's root here.
"""
from __future__ import annotations

import os


def root_of(pid: int) -> str | None:
    """The process's root as our root sees it ("/" for a process that shares ours), None when it is gone."""
    try:
        st, ours = os.stat(f"/proc/{pid}/root"), os.stat("/")
    except OSError:
        return None
    if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
        return "/"
    try:
        return os.readlink(f"/proc/{pid}/root")
    except OSError:
        return None


def in_root(root: str | None, path: str) -> str | None:
    """``path`` (as our root sees it) as a process with ``root`` sees it; None when it is outside that root."""
    if root in (None, "/"):
        return path
    if path == root:
        return "/"
    if path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")):]
    return None


def resolve_in_root(pid: int, path: str) -> str:
    """realpath of ``path`` (absolute, as the process sees it) inside the process's root.

    Absolute symlink targets are taken from that root, as the kernel would for the process; a
    process that shares our root gets os.path.realpath. When the process is gone, or a loop of
    more than 40 links is met, the path is returned as it is.
    """
    root = root_of(pid)
    if root is None:
        return path
    if root == "/":
        return os.path.realpath(path)
    base = f"/proc/{pid}/root"
    todo = [p for p in reversed(path.split("/")) if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        try:
            target = os.readlink(base + "/" + "/".join(done + [part]))
        except OSError:      # not a symlink (or gone): a plain component
            done.append(part)
            continue
        hops += 1
        if hops > 40:
            return path
        if target.startswith("/"):
            done = []
        todo.extend(p for p in reversed(target.split("/")) if p)
    return "/" + "/".join(done)
