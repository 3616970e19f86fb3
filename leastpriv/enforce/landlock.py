"""Apply a profile's Landlock ruleset to the process about to exec the workload (ctypes).

Best effort for the running kernel's ABI (landlock_create_ruleset(NULL, 0,
LANDLOCK_CREATE_RULESET_VERSION)): rights, TCP rules and scopes the kernel
does not know are left out and reported. The ruleset is built in the parent
(paths opened with O_PATH, rules added) so every problem is reported before
anything runs; the child only calls landlock_restrict_self().
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

from ..kernel import syscalls
from ..errors import UserError
from ..policy.landlock import FS_RIGHTS, NET_RIGHTS, PRIVATE_TMP, SCOPES, Ruleset, ruleset

LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 1 << 18
# rights that let a workload change or add files: a temporary directory granted them is made private
_WRITING = frozenset({"write_file", "truncate", "remove_file", "remove_dir", "make_reg", "make_dir", "make_sock",
                      "make_fifo", "make_sym", "make_char", "make_block", "refer"})

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _sys(name: str, *args) -> int:
    nr = syscalls.number(syscalls.host_arch(), name)
    res = _libc.syscall(ctypes.c_long(nr), *args)
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return res


def kernel_abi() -> int:
    """The Landlock ABI of this kernel; 0 when Landlock is off or unknown."""
    try:
        return _sys("landlock_create_ruleset", ctypes.c_void_p(0), ctypes.c_size_t(0),
                    ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def _mask(names, table) -> int:
    m = 0
    for n in names:
        m |= table[n][0]
    return m


@dataclass
class Plan:
    """A built ruleset fd waiting for the child's restrict_self."""

    fd: int | None
    abi: int
    notes: list[str] = field(default_factory=list)
    no_new_privs: bool = True
    rules: Ruleset | None = None
    private_tmp: tuple[str, ...] = ()                       # tmpfs mounted here in the child's mount namespace
    child_rules: tuple[tuple[str, int], ...] = ()           # (path, rights) added in the child, after those mounts
    tmpdir: str = ""                                         # $TMPDIR to recreate inside a private /tmp

    @property
    def label(self) -> str:
        return f"landlock (ABI {self.abi})" if self.fd is not None else "landlock (not available)"

    def apply(self) -> None:
        """In the child: restrict this process (and what it execs) to the ruleset."""
        if self.fd is None:
            return
        if self.private_tmp:
            _private_tmp(self.private_tmp, self.tmpdir)
        for path, mask in self.child_rules:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                pb = _PathBeneath(mask, pfd)
                _sys("landlock_add_rule", ctypes.c_int(self.fd), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                     ctypes.byref(pb), ctypes.c_uint32(0))
            finally:
                os.close(pfd)
        if self.no_new_privs and _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(e)}")
        _sys("landlock_restrict_self", ctypes.c_int(self.fd), ctypes.c_uint32(0))


def _check(res: int, what: str) -> None:
    if res != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _private_tmp(dirs: tuple[str, ...], tmpdir: str) -> None:
    """In the child: a mount namespace of its own with an empty tmpfs on each of ``dirs`` (systemd's
    PrivateTmp=): the workload's temporary files are its own and other users' files there are out of reach."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    for d in dirs:
        _check(_libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=1777"), f"mount tmpfs {d}")
    if tmpdir and any(tmpdir.startswith(d + "/") for d in dirs):
        os.makedirs(tmpdir, mode=0o700, exist_ok=True)


def private_tmp_choice(rs: Ruleset, env: dict | None = None) -> tuple[tuple[str, ...], list[str]]:
    """Which temporary directories ``run`` makes private, and why (or why not).

    Landlock attaches rights to inodes: a workload that creates its own files in /tmp (mktemp -d) needs
    create and write rights on /tmp itself, which would also let it write every pre-existing file there.
    A private /tmp (a tmpfs in a mount namespace of the workload's own, like systemd's PrivateTmp=) keeps
    those rights to the workload's own files. It is chosen when a rule grants writing on /tmp or /var/tmp
    itself, leastpriv runs as root (mounting needs CAP_SYS_ADMIN), and no other rule names a path beneath
    that directory, literally or by a pattern that is not an owned directory (``/tmp/ci-*/tests/run.sh``:
    the workload would not find it in the private one).
    """
    notes: list[str] = []
    chosen = []
    for d in PRIVATE_TMP:
        rule = next((p for p in rs.paths if p.path == d), None)
        if rule is None or not set(rule.access) & _WRITING:
            continue
        beneath = [p.path for p in rs.paths if p.path.startswith(d + "/")] + \
            [pat for pat in rs.patterns if pat.startswith(d + "/")]
        if os.geteuid() != 0:
            notes.append(f"Landlock: the workload may create and write in {d}, which includes other users' "
                         f"files there (rights attach to existing inodes); a private {d} needs root")
        elif beneath:
            notes.append(f"Landlock: {d} is shared (the profile names paths in it: {', '.join(beneath[:3])}): the "
                         f"workload may write other users' files there")
        else:
            chosen.append(d)
    if chosen:
        notes.append(f"private {', '.join(chosen)} for the workload (as systemd's PrivateTmp=): it creates its own "
                     f"files there, and Landlock's rights on the directory must not reach other users' files")
    return tuple(chosen), notes


def plan(profile, *, abi: int | None = None, env: dict | None = None) -> Plan | None:
    """Build the Landlock ruleset for ``profile`` on this kernel (None when the profile has no file facts)."""
    rules = profile.rules
    if not rules.files.all_paths():
        return Plan(None, 0, ["Landlock: the profile has no file facts; not applied"])
    k_abi = kernel_abi() if abi is None else abi
    if k_abi <= 0:
        return Plan(None, 0, ["Landlock: not available in this kernel (or disabled): file and network rules "
                              "not enforced"])
    rs = ruleset(profile, k_abi)
    notes = list(rs.notes)
    attr = _RulesetAttr(_mask(rs.handled_fs, FS_RIGHTS), _mask(rs.handled_net, NET_RIGHTS),
                        _mask(rs.scoped, SCOPES))
    size = 8 if k_abi < 4 else 16 if k_abi < 6 else 24
    try:
        fd = _sys("landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    except OSError as exc:
        raise UserError(f"Landlock: cannot create a ruleset: {exc.strerror}", exit_code=126) from None
    private, pnotes = private_tmp_choice(rs, env)
    notes += pnotes
    child_rules = tuple((p.path, _mask(p.access, FS_RIGHTS)) for p in rs.paths if p.path in private)
    missing = []
    for p in rs.paths:
        if p.path in private:
            continue   # added in the child, on the private directory's inode
        try:
            pfd = os.open(p.path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            missing.append(p.path)
            continue
        try:
            pb = _PathBeneath(_mask(p.access, FS_RIGHTS), pfd)
            try:
                _sys("landlock_add_rule", ctypes.c_int(fd), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                     ctypes.byref(pb), ctypes.c_uint32(0))
            except OSError as exc:
                notes.append(f"Landlock: rule for {p.path} ({', '.join(p.access)}) refused: {exc.strerror}")
        finally:
            os.close(pfd)
    if missing:
        notes.append(f"Landlock: {len(missing)} path(s) of the profile do not exist here, no rule for them: "
                     + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    for right, ports in rs.ports.items():
        for port in ports:
            np_ = _NetPort(NET_RIGHTS[right][0], port)
            _sys("landlock_add_rule", ctypes.c_int(fd), ctypes.c_int(LANDLOCK_RULE_NET_PORT),
                 ctypes.byref(np_), ctypes.c_uint32(0))
    nnp = os.geteuid() != 0 or rules.no_new_privileges
    tmpdir = (env if env is not None else os.environ).get("TMPDIR", "")
    return Plan(fd, k_abi, notes, nnp, rs, private, child_rules, tmpdir)
