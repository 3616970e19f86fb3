"""Build a libseccomp filter (pyseccomp) from the seccomp model, per ABI.

One libseccomp filter is built per ABI (only that ABI's rules), then the
filters are merged: unlike the flat OCI/Docker lists, a syscall learned only
for i386 is not allowed for x86_64 and vice versa.

Complain mode maps the model's ``SCMP_ACT_LOG`` to ``SCMP_ACT_NOTIFY``: the
kernel hands each would-be-denied call to ``leastpriv run``'s listener, which
records it and lets it continue (SECCOMP_USER_NOTIF_FLAG_CONTINUE). LOG itself
is not used: without auditd its records (audit type=1326) go to the kernel
ring buffer, rate limited ("kauditd_printk_skb: N callbacks suppressed", seen
on the development VM), without arguments, and readable only by root.

Enforcing, the same listener names what is denied: a denial (the default
action, or a deny rule answered EPERM) becomes SECCOMP_RET_USER_NOTIF and the
listener answers it with EPERM after recording it. Syscalls listed in
``watch`` (allowed ones that open, execute, create or remove a path) are
notified too and continued, so ``leastpriv run`` can check them against the
Landlock ruleset and name what Landlock denies (enforce/run.py).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import Iterable

from ..kernel import syscalls
from ..errors import UserError
from . import seccomp_model as sm

try:
    import pyseccomp
except ImportError:  # pragma: no cover - declared dependency
    pyseccomp = None  # type: ignore

_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
NOTIFY = 0x7FC00000
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


def library():
    """libseccomp itself (through pyseccomp), with name resolution per architecture set up."""
    if pyseccomp is None:
        raise UserError("seccomp: pyseccomp is not installed (make install)")
    lib = pyseccomp._libseccomp  # noqa: SLF001 - the binding exposes no resolve-by-name for an arch
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    return lib


def scmp_arch(arch: str) -> int:
    """libseccomp's token for an ABI (same as its AUDIT_ARCH value)."""
    try:
        return getattr(pyseccomp.Arch, arch.upper())
    except AttributeError:
        raise UserError(f"seccomp: libseccomp has no architecture {arch!r}") from None


def _action(rule_action: str, errno_name: str | None, arch: str, complain_mode: bool,
            notify_denials: bool = False) -> int:
    if rule_action == sm.ALLOW:
        return pyseccomp.ALLOW
    if rule_action == sm.ERRNO:
        if notify_denials and (errno_name or "EPERM") == "EPERM":
            return NOTIFY    # a denial: the listener records it and answers EPERM
        return pyseccomp.ERRNO(sm.errno_value(errno_name or "EPERM", arch))
    if rule_action == sm.LOG:
        return NOTIFY if complain_mode else pyseccomp.LOG
    raise ValueError(rule_action)


def _syscall_number(lib, arch: str, name: str) -> int | None:
    """The number to give libseccomp: the native ABI's number, or libseccomp's
    pseudo number for a name that exists only on other ABIs (it translates
    per ABI by name). A name this libseccomp does not know is only usable on
    the native ABI, by the number from our tables."""
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr != -1 and nr != -10000:  # __NR_SCMP_ERROR
        return nr
    if arch == syscalls.host_arch():
        return syscalls.number(arch, name)
    return None


class Filter:
    """A merged, loadable libseccomp filter and what could not be expressed."""

    def __init__(self, flt, skipped: dict[str, list[str]], notify: bool):
        self.flt = flt
        self.skipped = skipped
        self.notify = notify
        self.watched: frozenset[tuple[str, str]] = frozenset()   # (arch, name) notified and continued

    def load(self) -> int | None:
        """Install the filter on this process; returns the listener fd in notify mode."""
        self.flt.load()
        if self.notify:
            fd = pyseccomp._libseccomp.seccomp_notify_fd(self.flt._filter)  # noqa: SLF001
            return fd if fd >= 0 else None
        return None

    def pfc(self) -> str:
        """The filter in libseccomp's pseudo-code (for --explain and tests)."""
        import tempfile
        with tempfile.TemporaryFile("w+") as fh:
            self.flt.export_pfc(fh)
            fh.seek(0)
            return fh.read()


def build_filter(model: sm.Model, *, complain_mode: bool | None = None, no_new_privs: bool = True,
                 notify_denials: bool = False, watch: Iterable[str] = ()) -> Filter:
    """A libseccomp filter for ``model`` (built for this host: the model's native ABI must be ours).

    ``complain_mode`` (default: ``model.complain``) maps LOG to NOTIFY;
    ``notify_denials`` maps EPERM denials to NOTIFY (the listener answers EPERM);
    ``watch``: names allowed unconditionally by the model that are notified
    too (the listener continues them). ``Filter.watched`` says which were.
    """
    watch = set(watch)
    watched: set[tuple[str, str]] = set()
    lib = library()
    if model.native != syscalls.host_arch():
        raise UserError(f"seccomp: cannot enforce a {model.native} filter on this {syscalls.host_arch()} host")
    notify = model.complain if complain_mode is None else complain_mode
    default = _action(model.default_action, model.default_errno, model.native, notify, notify_denials)
    merged = None
    skipped: dict[str, list[str]] = {a: list(v) for a, v in model.skipped.items()}
    for arch in model.arches:
        f = pyseccomp.SyscallFilter(default)
        token = scmp_arch(arch)
        if token != pyseccomp.system_arch():
            f.add_arch(token)
            f.remove_arch(pyseccomp.Arch.NATIVE)
        f.set_attr(pyseccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
        for rule in model.rules.get(arch, ()):
            action = _action(rule.action, rule.errno, arch, notify, notify_denials)
            if action == pyseccomp.ALLOW and not rule.args and watch & set(rule.names):
                for name in sorted(watch & set(rule.names)):
                    nr = _syscall_number(lib, arch, name)
                    if nr is not None:
                        if default != NOTIFY:   # else the default action notifies it already
                            f.add_rule(NOTIFY, nr)
                        watched.add((arch, name))
            if action == default and not rule.args:
                continue
            args = [pyseccomp.Arg(c.index, _OPS[c.op], c.value, c.value_two) for c in rule.args]
            for name in rule.names:
                nr = _syscall_number(lib, arch, name)
                if nr is None:
                    skipped.setdefault(arch, []).append(name)
                    continue
                if (arch, name) in watched:
                    continue
                try:
                    f.add_rule(action, nr, *args)
                except OSError as exc:
                    if exc.errno == _errno.EEXIST:
                        continue
                    skipped.setdefault(arch, []).append(f"{name} ({exc.strerror})")
        if merged is None:
            merged = f
        else:
            merged.merge(f)
    flt = Filter(merged, skipped, notify or notify_denials or bool(watched))
    flt.watched = frozenset(watched)
    return flt


def notify_receive(fd: int):
    """One pending notification from listener ``fd`` (a pyseccomp Notification)."""
    lib = pyseccomp._libseccomp  # noqa: SLF001
    req = ctypes.POINTER(pyseccomp._Notif)()  # noqa: SLF001
    rc = lib.seccomp_notify_alloc(ctypes.byref(req), None)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))
    try:
        rc = lib.seccomp_notify_receive(fd, req)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        return pyseccomp.Notification._from_raw(req.contents)  # noqa: SLF001
    finally:
        lib.seccomp_notify_free(req, None)


def _respond(fd: int, notif_id: int, error: int, flags: int) -> None:
    """Answer one notification (libseccomp allocates the response: its size is the kernel's)."""
    lib = pyseccomp._libseccomp  # noqa: SLF001
    resp = ctypes.POINTER(pyseccomp._NotifResp)()  # noqa: SLF001
    rc = lib.seccomp_notify_alloc(None, ctypes.byref(resp))
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))
    try:
        resp.contents.id = notif_id
        resp.contents.val = 0
        resp.contents.error = error
        resp.contents.flags = flags
        lib.seccomp_notify_respond(fd, resp)   # ENOENT: the task died meanwhile; nothing to do
    finally:
        lib.seccomp_notify_free(None, resp)


def notify_continue(fd: int, notif_id: int) -> None:
    """Let the notified syscall run as if no filter were there."""
    _respond(fd, notif_id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)


def notify_error(fd: int, notif_id: int, err: int) -> None:
    """Fail the notified syscall with ``err`` (an errno number)."""
    _respond(fd, notif_id, -err, 0)


def notify_id_valid(fd: int, notif_id: int) -> bool:
    """The notified task is still waiting (so what was read from its memory is its own)."""
    lib = pyseccomp._libseccomp  # noqa: SLF001
    return lib.seccomp_notify_id_valid(fd, ctypes.c_uint64(notif_id)) == 0


def describe_skipped(skipped: dict[str, Iterable[str]]) -> list[str]:
    return [f"{arch}: {', '.join(sorted(set(names)))} cannot be put in the filter (unknown to this libseccomp "
            f"or to the ABI); calls to them get the default action" for arch, names in sorted(skipped.items()) if names]
