"""Translate a profile learned on one architecture to another. Pure.

``translate(profile, arch) -> (Profile, report)``

* a syscall that exists on the target by name keeps its name;
* one that does not is replaced by the call the C library makes there
  instead (``EQUIVALENTS``: data, one comment per entry), the first that
  exists on the target;
* 32-bit targets also get the time64 twins of time calls (``TIME64``),
  because 32-bit libcs call those first;
* everything else is reported as untranslatable, never dropped silently.

Argument values travel with their syscall (translated names inherit the
values of the call they replace where the arguments mean the same); the
rule indexes are re-derived for the target from ``syscalls.tracked_args``
(s390/s390x pass clone's flags second). Values whose encoding differs on the
target (ioctl requests and signals on MIPS/PowerPC, socket types on MIPS)
are dropped from the facts and reported, so no wrong rule is emitted.
Numbers always come from the generated tables in ``leastpriv.syscalls``.
"""
from __future__ import annotations

import copy

from ..kernel import syscalls
from ..policy.rules import Rules
from .profile import Profile
from ..errors import UserError
from .rules import derive_rules

# name missing on the target -> (candidates, first existing wins; why)
EQUIVALENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "open": (("openat",), "open(p, f) is openat(AT_FDCWD, p, f)"),
    "creat": (("openat",), "creat(p, m) is openat(AT_FDCWD, p, O_CREAT|O_WRONLY|O_TRUNC, m)"),
    "stat": (("newfstatat", "fstatat64", "statx"), "stat(p) is fstatat(AT_FDCWD, p, 0) (statx on loongarch64)"),
    "lstat": (("newfstatat", "fstatat64", "statx"), "lstat(p) is fstatat(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW)"),
    "newfstatat": (("fstatat64", "statx"), "the 32-bit and statx-only spellings of fstatat"),
    "access": (("faccessat", "faccessat2"), "access(p, m) is faccessat(AT_FDCWD, p, m)"),
    "chmod": (("fchmodat",), "chmod(p, m) is fchmodat(AT_FDCWD, p, m)"),
    "chown": (("fchownat",), "chown(p, u, g) is fchownat(AT_FDCWD, p, u, g, 0)"),
    "lchown": (("fchownat",), "lchown is fchownat(..., AT_SYMLINK_NOFOLLOW)"),
    "mkdir": (("mkdirat",), "mkdir(p, m) is mkdirat(AT_FDCWD, p, m)"),
    "rmdir": (("unlinkat",), "rmdir(p) is unlinkat(AT_FDCWD, p, AT_REMOVEDIR)"),
    "unlink": (("unlinkat",), "unlink(p) is unlinkat(AT_FDCWD, p, 0)"),
    "rename": (("renameat", "renameat2"), "rename(a, b) is renameat(AT_FDCWD, a, AT_FDCWD, b)"),
    "renameat": (("renameat2",), "renameat is renameat2 with flags 0"),
    "link": (("linkat",), "link(a, b) is linkat(AT_FDCWD, a, AT_FDCWD, b, 0)"),
    "symlink": (("symlinkat",), "symlink(a, b) is symlinkat(a, AT_FDCWD, b)"),
    "readlink": (("readlinkat",), "readlink(p) is readlinkat(AT_FDCWD, p)"),
    "mknod": (("mknodat",), "mknod(p, m, d) is mknodat(AT_FDCWD, p, m, d)"),
    "utime": (("utimensat", "utimensat_time64"), "utime is utimensat with second precision"),
    "utimes": (("utimensat", "utimensat_time64"), "utimes is utimensat with microsecond precision"),
    "futimesat": (("utimensat", "utimensat_time64"), "futimesat is utimensat"),
    "fork": (("clone",), "fork() is clone(SIGCHLD) (no namespace flags: the clone rule still holds)"),
    "vfork": (("clone",), "vfork() is clone(CLONE_VM|CLONE_VFORK|SIGCHLD)"),
    "dup2": (("dup3",), "dup2(a, b) is dup3(a, b, 0) (glibc checks a == b itself)"),
    "pipe": (("pipe2",), "pipe(fds) is pipe2(fds, 0)"),
    "poll": (("ppoll", "ppoll_time64"), "poll is ppoll with a converted timeout"),
    "select": (("pselect6", "pselect6_time64", "_newselect"), "select is pselect6 with a converted timeout"),
    "epoll_wait": (("epoll_pwait",), "epoll_wait is epoll_pwait with a NULL sigmask"),
    "epoll_create": (("epoll_create1",), "epoll_create(n) is epoll_create1(0)"),
    "eventfd": (("eventfd2",), "eventfd(n) is eventfd2(n, 0)"),
    "signalfd": (("signalfd4",), "signalfd is signalfd4 with flags 0"),
    "inotify_init": (("inotify_init1",), "inotify_init() is inotify_init1(0)"),
    "getdents": (("getdents64",), "the only directory-reading call on newer architectures"),
    "alarm": (("setitimer",), "glibc implements alarm with setitimer(ITIMER_REAL)"),
    "pause": (("rt_sigsuspend",), "glibc implements pause with sigsuspend on the current mask"),
    "time": (("clock_gettime", "clock_gettime64"), "time() is clock_gettime(CLOCK_REALTIME) (usually the vDSO)"),
    "getpgrp": (("getpgid",), "getpgrp() is getpgid(0)"),
    "getrlimit": (("prlimit64", "ugetrlimit"), "getrlimit is prlimit64(0, r, NULL, old)"),
    "setrlimit": (("prlimit64",), "setrlimit is prlimit64(0, r, new, NULL)"),
    "mmap": (("mmap2",), "32-bit architectures map with page offsets: mmap2"),
    "fadvise64": (("fadvise64_64", "arm_fadvise64_64"), "the 64-bit-offset spelling on 32-bit architectures"),
    "sync_file_range": (("sync_file_range2", "arm_sync_file_range"), "argument order differs on arm/ppc"),
    "accept": (("accept4",), "accept(s, a, l) is accept4(s, a, l, 0)"),
    "semop": (("semtimedop", "semtimedop_time64", "ipc"), "semop is semtimedop with no timeout"),
    "sendfile": (("sendfile64",), "the 64-bit-offset spelling"),
}

# 32-bit targets: libcs with 64-bit time_t call these first (and fall back to the old one).
TIME64: dict[str, str] = {
    "clock_gettime": "clock_gettime64", "clock_settime": "clock_settime64", "clock_adjtime": "clock_adjtime64",
    "clock_getres": "clock_getres_time64", "clock_nanosleep": "clock_nanosleep_time64",
    "futex": "futex_time64", "ppoll": "ppoll_time64", "pselect6": "pselect6_time64",
    "utimensat": "utimensat_time64", "recvmmsg": "recvmmsg_time64", "semtimedop": "semtimedop_time64",
    "rt_sigtimedwait": "rt_sigtimedwait_time64", "mq_timedsend": "mq_timedsend_time64",
    "mq_timedreceive": "mq_timedreceive_time64", "timer_settime": "timer_settime64",
    "timer_gettime": "timer_gettime64", "timerfd_settime": "timerfd_settime64",
    "timerfd_gettime": "timerfd_gettime64", "io_pgetevents": "io_pgetevents_time64",
    "sched_rr_get_interval": "sched_rr_get_interval_time64",
}

# Values whose encoding depends on the architecture: dropped (reported) when it differs.
_ENCODING_DIFFERS = {
    "ioctl": ("ppc", "mips", "sparc", "alpha", "parisc"),   # _IOC layout and TC* numbers
    "kill": ("mips", "parisc", "alpha", "sparc"),           # signal numbers
    "tkill": ("mips", "parisc", "alpha", "sparc"),
    "tgkill": ("mips", "parisc", "alpha", "sparc"),
    "socket": ("mips",),                                    # SOCK_STREAM/SOCK_DGRAM swapped
    "socketpair": ("mips",),
    "setsockopt": ("mips", "parisc", "alpha", "sparc"),     # SOL_SOCKET option numbers
}


def _source_arch(profile: Profile) -> str:
    table = profile.facts.get("syscalls", {})
    hosts = [a for a in profile.host_arches if a in table]
    if hosts:
        return hosts[0]
    if not table:
        return syscalls.host_arch()
    return max(table, key=lambda a: len(table[a]))


def _is_32bit(arch: str) -> bool:
    return arch in ("x86", "arm", "ppc", "mips", "mipsel", "s390", "m68k", "sh", "parisc")


def translate(profile: Profile, arch: str, rules_options: dict | None = None) -> tuple[Profile, dict]:
    """The profile for ``arch``: facts of the source architecture translated, rules re-derived."""

    if arch not in syscalls.arches():
        raise UserError(f"--arch: unknown architecture {arch!r} (known: {', '.join(syscalls.arches())})")
    src = _source_arch(profile)
    facts = profile.facts
    report: dict = {"source": src, "target": arch, "same": [], "translated": [], "added_time64": [],
                    "untranslatable": [], "dropped_args": [], "other_arches": [], "arg_indexes": []}
    if src == arch:
        report["same"] = sorted(facts.get("syscalls", {}).get(arch, {}))
        return profile, report
    for other, t in sorted(facts.get("syscalls", {}).items()):
        if other != src and t:
            report["other_arches"].append({"arch": other, "syscalls": len(t),
                                           "why": "facts of another ABI are not translated: learn on the target"})
    src_table = facts.get("syscalls", {}).get(src, {})
    src_args = facts.get("args", {}).get(src, {})
    out_sys: dict[str, dict] = {}
    out_args: dict[str, list] = {}
    origin: dict[str, list[str]] = {}

    def put(name: str, from_name: str) -> None:
        stat = src_table[from_name]
        if name in out_sys:
            d = out_sys[name]
            for k in ("count", "results", "ok"):
                d[k] = d.get(k, 0) + stat.get(k, 0)
            d["runs"] = max(d.get("runs", 0), stat.get("runs", 0))
        else:
            out_sys[name] = copy.deepcopy(dict(stat))
        origin.setdefault(name, []).append(from_name)
        if from_name in src_args and syscalls.tracked_args(arch, name) is not None and \
                syscalls.tracked_args(src, from_name) is not None and \
                syscalls.tracked_args(src, from_name).names == syscalls.tracked_args(arch, name).names:
            if any(arch.startswith(p) for p in _ENCODING_DIFFERS.get(name, ())):
                report["dropped_args"].append({"syscall": name, "values": len(src_args[from_name]),
                                               "why": f"{name} argument values are encoded differently on {arch}"})
                return
            merged = {tuple(e["values"]): e for e in out_args.get(name, [])}
            for e in src_args[from_name]:
                merged.setdefault(tuple(e["values"]), copy.deepcopy(dict(e)))
            out_args[name] = [merged[k] for k in sorted(merged)]

    for name in sorted(src_table):
        if name.startswith("#"):
            report["untranslatable"].append({"syscall": name, "why": "unknown syscall number on the source"})
            continue
        if syscalls.exists(arch, name):
            put(name, name)
            report["same"].append(name)
            continue
        cands, why = EQUIVALENTS.get(name, ((), ""))
        target = next((c for c in cands if syscalls.exists(arch, c)), None)
        if target is None:
            report["untranslatable"].append({
                "syscall": name,
                "why": (f"no equivalent on {arch} among {', '.join(cands)}" if cands else
                        f"does not exist on {arch} and has no equivalent (architecture-specific call)")})
            continue
        put(target, name)
        report["translated"].append({"from": name, "to": target, "why": why})
    if _is_32bit(arch):
        for name in sorted(out_sys):
            twin = TIME64.get(name)
            if twin and syscalls.exists(arch, twin) and twin not in out_sys:
                out_sys[twin] = {**copy.deepcopy(out_sys[name])}
                report["added_time64"].append({"from": name, "to": twin,
                                               "why": "32-bit libcs with 64-bit time_t call the time64 variant"})
    for name in sorted(set(out_args) | {"clone"}):
        s, t = syscalls.tracked_args(src, name), syscalls.tracked_args(arch, name)
        if s and t and s.indexes != t.indexes and name in out_sys:
            report["arg_indexes"].append({"syscall": name, "from": list(s.indexes), "to": list(t.indexes)})
    new_facts = copy.deepcopy(dict(facts))
    new_facts["syscalls"] = {arch: out_sys}
    new_facts["args"] = {arch: out_args} if out_args else {}
    new_facts["unknown_syscalls"] = {}
    new_facts["translated_from"] = {"arch": src, "origin": {k: sorted(v) for k, v in sorted(origin.items())}}
    rules = derive_rules(new_facts, profile.runs, **(rules_options or {})).replace(translated_from=src)
    return Profile(runs=profile.runs, facts=new_facts, rules=rules), report


def translate_rules(profile: Profile, arch: str, rules_options: dict | None = None) -> tuple[Rules, dict]:
    """Just the rules for ``arch`` (what an exporter needs), and the report."""
    p, report = translate(profile, arch, rules_options)
    return p.rules, report
