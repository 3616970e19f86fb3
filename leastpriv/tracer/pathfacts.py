"""What the paths a run used are, read on the machine that ran it, when the run ends.

Exporters must not look at the machine they run on (the same profile exports the same bytes anywhere), but
some rules depend on what a path *is*: Landlock and AppArmor give a directory other rights than a file, an
executable's interpreter (ELF PT_INTERP, or the ``#!`` line) must be executable too, AppArmor attaches to
the real path of the program. So the tracer records those facts for every path of the run, its parent
directories, and the programs and their interpreters:

    {path: {"kind": "dir" | "file" | "char" | "block" | "fifo" | "socket" | "other" | "missing",
            "link": "yes" (the path itself is a symbolic link), "realpath": where it leads (when elsewhere;
            always for executables), "interpreter": ... (executables)}}

policy/paths.py answers questions from the recorded table (exporters, Landlock) without touching the host.

The files are the workload's (hostile input): nothing is followed but what stat and realpath follow, only
regular files are opened (non-blocking, no controlling tty), and at most a few hundred bytes are read.
"""
from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable

MAX_PATHS = 100_000


def kind_of(path: str) -> str:
    """What ``path`` is now (following symlinks, as the kernel's open does): dir, file, ..., or missing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return "missing"
    return _kind_of_mode(mode)


def interpreter(path: str) -> str | None:
    """The ELF PT_INTERP or the ``#!`` interpreter of an executable, if any."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, 64, 0)
        if head.startswith(b"#!"):
            line = os.pread(fd, 256, 0).split(b"\n", 1)[0][2:].strip().split()
            return os.fsdecode(line[0]) if line else None
        if head[:4] != b"\x7fELF" or len(head) < 58:
            return None
        is64, little = head[4] == 2, head[5] == 1
        e = "<" if little else ">"
        if is64:
            phoff, = struct.unpack(e + "Q", head[32:40])
            phentsize, phnum = struct.unpack(e + "HH", head[54:58])
        else:
            phoff, = struct.unpack(e + "I", head[28:32])
            phentsize, phnum = struct.unpack(e + "HH", head[42:46])
        for i in range(min(phnum, 256)):
            ph = os.pread(fd, phentsize, phoff + i * phentsize)
            p_type, = struct.unpack(e + "I", ph[:4])
            if p_type == 3:   # PT_INTERP
                off, size = (struct.unpack(e + "Q", ph[8:16])[0], struct.unpack(e + "Q", ph[32:40])[0]) \
                    if is64 else (struct.unpack(e + "I", ph[4:8])[0], struct.unpack(e + "I", ph[16:20])[0])
                return os.fsdecode(os.pread(fd, min(size, 4096), off).rstrip(b"\0")) or None
    except (OSError, struct.error, ValueError):
        return None
    finally:
        os.close(fd)
    return None


class _Lookup:
    """kind / is-a-link / realpath of absolute paths, as kind_of, os.path.islink and os.path.realpath
    answer them, with one lstat per path (plus a stat and os.path.realpath for the few that are
    symbolic links) instead of stat + lstat + an lstat per component of every path.

    A normalised path's realpath is its parent's realpath joined with its name unless that is a
    symbolic link: os.path.realpath walks the components in order, so the walk of a path's parent is
    the start of the path's own walk. (When that walk met a symlink loop, os.path.realpath stops and
    appends the rest unresolved; the lstat of the join then fails on the same loop, as it would.)
    Paths that are not normalised (``.``, ``..``, ``//``) take the plain functions."""

    def __init__(self) -> None:
        self._real: dict[str, str] = {"/": "/"}
        self._stat: dict[str, tuple[str, bool]] = {}

    def kind_link(self, p: str) -> tuple[str, bool]:
        """(kind_of(p), os.path.islink(p)) with one lstat (a stat too for a link)."""
        got = self._stat.get(p)
        if got is None:
            try:
                mode = os.lstat(p).st_mode
            except (OSError, ValueError):
                got = ("missing", False)
            else:
                got = (kind_of(p), True) if stat.S_ISLNK(mode) else (_kind_of_mode(mode), False)
            self._stat[p] = got
        return got

    def realpath(self, p: str) -> str:
        """os.path.realpath(p) of a normalised absolute path."""
        got = self._real.get(p)
        if got is not None:
            return got
        parent, _, name = p.rpartition("/")
        base = self.realpath(parent or "/")
        new = base + "/" + name if base != "/" else "/" + name
        if new == p:
            link = self.kind_link(p)[1]
        else:
            try:
                link = stat.S_ISLNK(os.lstat(new).st_mode)
            except OSError:
                link = False
        got = self._real[p] = os.path.realpath(p) if link else new
        return got


_KIND_OF_FMT = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFCHR: "char", stat.S_IFBLK: "block",
                stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def _kind_of_mode(mode: int) -> str:
    return _KIND_OF_FMT.get(stat.S_IFMT(mode), "other")


def describe(files: Iterable[str], executables: Iterable[str]) -> dict[str, dict]:
    """The facts of ``files`` (and their parent directories, and where symbolic links lead) and of
    ``executables`` (and their interpreters)."""
    out: dict[str, dict] = {}
    look = _Lookup()
    known, real, realpath = look._stat, look._real, look.realpath
    lstat, kinds = os.lstat, _KIND_OF_FMT

    def add(p: str) -> None:
        # _Lookup.kind_link and .realpath inlined for the common path (~1,000 of them after a test run): a
        # normalised path (os.path.normpath would keep it) that is not a link, in a directory that is where
        # it seems (its realpath is itself)
        while p not in out and len(out) < MAX_PATHS and p[:1] == "/":
            parent, _, name = p.rpartition("/")
            if (name not in _NOT_NORMAL_NAMES and "//" not in p and "/./" not in p and "/../" not in p) \
                    or p == "/":
                got = known.get(p)
                if got is None:
                    try:
                        mode = lstat(p).st_mode
                    except (OSError, ValueError):
                        got = _MISSING
                    else:
                        fmt = mode & 0o170000   # stat.S_IFMT
                        got = (kind_of(p), True) if fmt == stat.S_IFLNK else (kinds.get(fmt, "other"), False)
                    known[p] = got
                kind, link = got
                parent = parent or "/"         # os.path.dirname of a normalised path
                rp = real.get(p)
                if rp is None:
                    if not link and real.get(parent) == parent:
                        rp = real[p] = p
                    else:
                        rp = realpath(p)
            else:
                kind, link, rp = kind_of(p), os.path.islink(p), os.path.realpath(p)
                parent = os.path.dirname(p)
            e = out[p] = {"kind": kind}
            if link:
                e["link"] = "yes"
            if rp != p:
                e["realpath"] = rp
                add(rp)
            if parent == p:
                return
            p = parent      # then the parent directories, up to the first one already described

    for p in files:
        add(p)
    for p in executables:
        add(p)
        if p not in out:
            continue
        out[p]["realpath"] = os.path.realpath(p)
        interp = interpreter(p)
        if interp:
            out[p]["interpreter"] = interp
            add(interp)
            if interp in out:
                out[interp]["realpath"] = os.path.realpath(interp)
    return dict(sorted(out.items()))


# the last names that os.path.normpath changes ("/a/", "/a/.", "/a/.."); "//", "/./" and "/../" elsewhere
_NOT_NORMAL_NAMES = frozenset(("", ".", ".."))
_MISSING = ("missing", False)
