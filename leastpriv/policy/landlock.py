"""Landlock: the profile's files and TCP ports as a Landlock ruleset (the policy model).

:func:`ruleset` is the one translation of a profile's file and network rules
into Landlock rules; exporters/landlock.py writes it in the landlockconfig
JSON format and ``leastpriv run`` enforces the same object (enforce/landlock.py).

How observed paths become rules (Landlock rules attach to existing inodes, so
a file the workload creates must be allowed through its directory):

* read:   READ_FILE on the file; a directory gets READ_FILE+READ_DIR beneath
          it; three or more files read in one directory of packaged code/data
          (/usr, /lib*, /opt, ...; never /etc, /home, /var, /tmp) become one
          rule on the directory (as aa-logprof globs); anything under /proc/<pid>,
          /proc/self or /proc/thread-self becomes read access beneath /proc,
          and /dev/pts/N (the terminal of that run) access beneath /dev/pts;
* write:  WRITE_FILE+TRUNCATE on the file (+IOCTL_DEV under /dev);
* create: MAKE_REG (MAKE_DIR for a directory) on the parent directory, with
          WRITE_FILE+TRUNCATE+READ_FILE and REMOVE_FILE beneath it (the trace
          does not record unlink/rename, and a workload that creates files in
          a directory usually rotates or removes them there);
* exec:   EXECUTE+READ_FILE on the file and on its interpreter (the ELF
          PT_INTERP or the #! line: the kernel opens it for execute).
* TCP:    BIND_TCP / CONNECT_TCP on the ports seen (ABI 4+).
* scope (ABI 6+): abstract unix sockets unless the workload used one;
          signals unless the workload sends signals with kill(2)/pidfd.

What a path is (a directory? a device? does it exist? an executable's
interpreter?) comes from the facts recorded when the profile was learned
(policy/paths.py), never from the machine that exports or enforces.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..kernel import constants
from . import paths as pathfacts
from .globs import matches
from .paths import PathFacts
from .rules import PathPattern, Rules


def _c(name: str, fallback: int) -> int:
    return constants.group("landlock").get(name, fallback)


# name -> (bit, first ABI). Values from include/uapi/linux/landlock.h; the
# generated constants table is used where the build headers have them.
FS_RIGHTS: dict[str, tuple[int, int]] = {
    "execute": (_c("LANDLOCK_ACCESS_FS_EXECUTE", 1 << 0), 1),
    "write_file": (_c("LANDLOCK_ACCESS_FS_WRITE_FILE", 1 << 1), 1),
    "read_file": (_c("LANDLOCK_ACCESS_FS_READ_FILE", 1 << 2), 1),
    "read_dir": (_c("LANDLOCK_ACCESS_FS_READ_DIR", 1 << 3), 1),
    "remove_dir": (_c("LANDLOCK_ACCESS_FS_REMOVE_DIR", 1 << 4), 1),
    "remove_file": (_c("LANDLOCK_ACCESS_FS_REMOVE_FILE", 1 << 5), 1),
    "make_char": (_c("LANDLOCK_ACCESS_FS_MAKE_CHAR", 1 << 6), 1),
    "make_dir": (_c("LANDLOCK_ACCESS_FS_MAKE_DIR", 1 << 7), 1),
    "make_reg": (_c("LANDLOCK_ACCESS_FS_MAKE_REG", 1 << 8), 1),
    "make_sock": (_c("LANDLOCK_ACCESS_FS_MAKE_SOCK", 1 << 9), 1),
    "make_fifo": (_c("LANDLOCK_ACCESS_FS_MAKE_FIFO", 1 << 10), 1),
    "make_block": (_c("LANDLOCK_ACCESS_FS_MAKE_BLOCK", 1 << 11), 1),
    "make_sym": (_c("LANDLOCK_ACCESS_FS_MAKE_SYM", 1 << 12), 1),
    "refer": (_c("LANDLOCK_ACCESS_FS_REFER", 1 << 13), 2),
    "truncate": (_c("LANDLOCK_ACCESS_FS_TRUNCATE", 1 << 14), 3),
    "ioctl_dev": (_c("LANDLOCK_ACCESS_FS_IOCTL_DEV", 1 << 15), 5),
}
NET_RIGHTS: dict[str, tuple[int, int]] = {"bind_tcp": (1 << 0, 4), "connect_tcp": (1 << 1, 4)}
SCOPES: dict[str, tuple[int, int]] = {"abstract_unix_socket": (1 << 0, 6), "signal": (1 << 1, 6)}
# rights that make sense on a file (not a directory): the kernel refuses others on a file
FILE_RIGHTS = frozenset({"execute", "write_file", "read_file", "truncate", "ioctl_dev"})
MAX_ABI = 7   # ABI 7 adds audit logging flags, no new access rights
GLOB_MIN_FILES = 3
_PROC_PID = re.compile(r"^/proc/(\d+|self|thread-self)(/|$)")
_PTY = re.compile(r"^/dev/pts/\d+$")


@dataclass(frozen=True)
class PathRule:
    path: str
    access: tuple[str, ...]
    why: str = ""


@dataclass(frozen=True)
class Ruleset:
    """What to handle (deny unless allowed) and what to allow."""

    abi: int
    handled_fs: tuple[str, ...]
    handled_net: tuple[str, ...]
    scoped: tuple[str, ...]
    paths: tuple[PathRule, ...]
    ports: Mapping[str, tuple[int, ...]] = field(default_factory=dict)   # bind_tcp/connect_tcp -> ports
    notes: tuple[str, ...] = ()
    # the profile's path patterns that are not owned directories: paths that exist outside the workload
    # (granted on their nearest existing ancestor, which may be /tmp itself: a private /tmp would hide them)
    patterns: tuple[str, ...] = ()

    def for_abi(self, abi: int) -> tuple["Ruleset", list[str]]:
        """The same ruleset limited to what kernel ABI ``abi`` knows, and what is lost."""
        lost: list[str] = []
        fs = tuple(r for r in self.handled_fs if FS_RIGHTS[r][1] <= abi)
        net = tuple(r for r in self.handled_net if NET_RIGHTS[r][1] <= abi)
        sc = tuple(s for s in self.scoped if SCOPES[s][1] <= abi)
        for kind, full, kept in (("file access", self.handled_fs, fs), ("TCP", self.handled_net, net),
                                 ("scope", self.scoped, sc)):
            gone = [r for r in full if r not in kept]
            if gone:
                lost.append(f"Landlock ABI {abi} cannot restrict {kind}: {', '.join(gone)}")
        paths = tuple(PathRule(p.path, tuple(a for a in p.access if a in fs), p.why) for p in self.paths)
        paths = tuple(p for p in paths if p.access)
        ports = {k: v for k, v in self.ports.items() if k in net}
        return Ruleset(abi, fs, net, sc, paths, ports, self.notes, self.patterns), lost


# Directories whose files may be granted as a whole once several were read: code and data
# shipped by packages. Never /etc, /root, /home, /var, /tmp, /run, /dev, /sys (secrets, other users).
GLOBBABLE = ("/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/opt/", "/snap/", "/nix/store/")


def globbable_dir(d: str) -> bool:
    return (d.rstrip("/") + "/").startswith(GLOBBABLE)


def _device(facts: PathFacts, p: str) -> bool:
    return facts.kind(p) in ("char", "block")


# temporary directories leastpriv run can replace with a private tmpfs (as systemd's PrivateTmp=)
PRIVATE_TMP = ("/tmp", "/var/tmp")


def existing_ancestor(path: str, facts: PathFacts) -> str:
    """``path`` or its nearest ancestor that existed when the profile was learned (a Landlock rule needs an
    inode; the facts record every recorded path's parent directories)."""
    start = p = os.path.normpath(path) or "/"
    while p != "/" and not facts.exists(p):
        p = os.path.dirname(p)
    # a profile without path facts (learned before they were recorded) knows no ancestor: never widen to "/"
    return p if facts.exists(p) else start


def pattern_rights(item: PathPattern, kind: str, bound_sockets: Iterable[str] = ()) -> tuple[str, ...]:
    """The rights a pattern or owned directory needs, in FS_RIGHTS order: only what its accesses imply;
    an owned directory also gets removal and renames (the workload made it)."""
    acc = set(item.access)
    r: set[str] = set()
    if "read" in acc:
        r |= {"read_file", "read_dir"}
    if "write" in acc:
        r |= {"write_file", "truncate"}
    if "exec" in acc:
        r |= {"execute", "read_file"}
    if "create" in acc:
        r |= {"make_reg", "write_file", "truncate", "remove_file"}
    if kind == "owned":
        r |= {"make_dir", "make_reg", "write_file", "truncate", "read_dir", "remove_file", "remove_dir", "refer"}
    if any(matches_any(item, s) for s in bound_sockets):
        r.add("make_sock")
    return tuple(x for x in FS_RIGHTS if x in r)


def matches_any(item: PathPattern, path: str) -> bool:
    return matches(item.pattern, path) or matches(item.pattern + "/**", path)


def _uses_abstract_unix(network: Iterable[Mapping]) -> bool:
    return any(e.get("family") == "AF_UNIX" and str(e.get("address", "")).startswith("@") for e in network)


def ruleset(profile: Any, abi: int = MAX_ABI) -> Ruleset:
    """The Landlock ruleset of a profile's file and network rules (for ``abi``)."""
    rules: Rules = profile.rules
    files = rules.files
    acc: dict[str, set[str]] = {}
    why: dict[str, str] = {}
    notes: list[str] = []

    def grant(path: str, rights: Iterable[str], reason: str) -> None:
        acc.setdefault(path, set()).update(rights)
        why.setdefault(path, reason)

    facts = pathfacts.of(profile)
    is_dir = facts.is_dir

    read = sorted(set(files.read))
    write = set(files.write)
    create = set(files.create)
    execs = sorted(set(files.exec))
    proc = False
    plain_reads: list[str] = []
    ptys = {p for p in set(read) | write if _PTY.match(p)}
    if ptys:   # the terminal differs from run to run
        grant("/dev/pts", ("read_file", "write_file", "ioctl_dev"), "terminals (/dev/pts/N -> /dev/pts)")
        read = [p for p in read if p not in ptys]
        write = write - ptys
    for p in read:
        if _PROC_PID.match(p) or p == "/proc":
            proc = True
        elif is_dir(p):
            # listing a directory grants listing it (and, as Landlock rights are inherited, the directories
            # beneath it), never reading the files in it: those need their own facts
            grant(p, ("read_dir",), "directory listed")
        else:
            plain_reads.append(p)
    if proc:
        grant("/proc", ("read_file", "read_dir"), "per-process /proc files (/proc/<pid> -> /proc)")
        notes.append("Landlock: /proc/<pid> files were read: reading beneath /proc is granted (Landlock cannot tell "
                     "the workload's own pid from others'); other processes' memory, environment and fds stay denied "
                     "by Landlock's ptrace restriction (nothing outside the sandbox can be ptrace-accessed)")
    by_dir: dict[str, list[str]] = {}
    for p in plain_reads:
        by_dir.setdefault(os.path.dirname(p) or "/", []).append(p)
    for d, ps in sorted(by_dir.items()):
        if len(ps) >= GLOB_MIN_FILES and globbable_dir(d) and is_dir(d):
            grant(d, ("read_file", "read_dir"), f"{len(ps)} files read in this directory")
        else:
            for p in ps:
                grant(p, ("read_file",), "read")
    bound_sockets = {str(e.get("address")) for e in getattr(profile, "facts", {}).get("network", [])
                     if e.get("family") == "AF_UNIX" and e.get("op") == "bind"}
    # "> /dev/null" opens an existing device with O_CREAT: a write, never a grant to make files in /dev
    opened = {p for p in create if _device(facts, p) or os.path.dirname(p) in ("/dev", "/proc", "/sys")
              or p.startswith(("/proc/", "/sys/"))}
    create -= opened
    write |= opened
    for p in sorted(create):
        parent = os.path.dirname(p) or "/"
        made = "make_dir" if is_dir(p) else "make_sock" if p in bound_sockets else "make_reg"
        rights = [made, "write_file", "truncate", "read_file", "remove_file"] + \
            (["read_dir", "remove_dir"] if made == "make_dir" else [])
        grant(parent, rights, "files created here")
    for p in sorted(write - create):
        if os.path.dirname(p) in acc and "make_reg" in acc[os.path.dirname(p)]:
            continue
        rights = ["write_file", "truncate"] + (["ioctl_dev"] if p.startswith("/dev/") else [])
        if is_dir(p):
            rights = ["read_dir", "make_reg", "write_file", "truncate"]
        grant(p, rights, "written")
    for kind, items in (("owned", rules.owned), ("pattern", rules.patterns)):
        for item in items:
            base = existing_ancestor(item.base, facts)
            rights = pattern_rights(item, kind, bound_sockets)
            grant(base, rights, f"{kind} {item.pattern}")
            if "exec" in item.access:
                for ex in item.paths:
                    interp = facts.interpreter(ex)
                    if interp:
                        grant(interp, ("execute", "read_file"), f"interpreter of {ex}")
            notes.append(f"Landlock: {kind} {item.pattern} granted on {base}, its nearest existing ancestor "
                         f"(rights attach to inodes that exist when the ruleset is built): {', '.join(rights)}"
                         + (f" -- leastpriv run gives the workload a private {base}, so that this does not reach "
                            f"other users' files there, unless the profile names other paths in it"
                            if base in PRIVATE_TMP else ""))
    for p in [p for p in read if p.startswith("/dev/") and p in acc]:
        acc[p].add("ioctl_dev")
    for p in execs:
        grant(p, ("execute", "read_file"), "executed")
        interp = facts.interpreter(p)
        if interp:
            grant(interp, ("execute", "read_file"), f"interpreter of {p}")
    paths = []
    for p in sorted(acc):
        rights = acc[p]
        if not is_dir(p) and facts.exists(p):
            dropped = rights - FILE_RIGHTS
            rights = rights & FILE_RIGHTS
            if dropped:
                notes.append(f"{p}: is a file; directory rights left out: {', '.join(sorted(dropped))}")
        order = [r for r in FS_RIGHTS if r in rights]
        if order:
            paths.append(PathRule(p, tuple(order), why.get(p, "")))
    ports = {"bind_tcp": tuple(sorted(set(rules.network.tcp("bind")))),
             "connect_tcp": tuple(sorted(set(rules.network.tcp("connect"))))}
    scoped = []
    if not _uses_abstract_unix(getattr(profile, "facts", {}).get("network", [])):
        scoped.append("abstract_unix_socket")
    learned = {n for names in rules.syscalls.values() for n in names}
    if not learned & {"kill", "pidfd_send_signal", "rt_sigqueueinfo"}:
        scoped.append("signal")
    full = Ruleset(MAX_ABI, tuple(FS_RIGHTS), tuple(NET_RIGHTS), tuple(scoped), tuple(paths),
                   {k: v for k, v in ports.items()}, tuple(notes), tuple(p.pattern for p in rules.patterns))
    limited, lost = full.for_abi(abi)
    return Ruleset(limited.abi, limited.handled_fs, limited.handled_net, limited.scoped, limited.paths,
                   limited.ports, tuple(notes) + tuple(lost), limited.patterns)


