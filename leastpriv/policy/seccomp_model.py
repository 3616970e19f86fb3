"""Profile rules -> seccomp rules: the one translation every seccomp consumer uses.

The local enforcer (``policy/libseccomp.py``, loaded by enforce/run.py, per architecture, through
libseccomp) and the JSON exporters (OCI, Docker, Kubernetes SPO: one flat
list for every ABI) both read :func:`build`'s :class:`Model`, so what
``leastpriv run`` enforces and what a runtime enforces come from the same
place.

Two styles (``Rules.style``):

* ``allowlist`` (default): default action ERRNO(EPERM); the learned syscalls
  are allowed, argument rules allow only the values seen, ``errno`` rules
  answer with an errno (clone3 -> ENOSYS so glibc falls back to clone).
* ``denylist``: default action ALLOW; ``Rules.denylist[arch]`` names what
  to deny (``names`` unconditionally, ``conditional`` when the arguments
  match), answered with EPERM.

``complain`` turns every denial (the default action of an allowlist, the deny
rules of a denylist) into ``SCMP_ACT_LOG``; consumers map LOG to their own
"record and let it run" mechanism. Compatibility answers (clone3 -> ENOSYS)
stay as they are: they are not denials, glibc handles them by design.

Runtimes: an OCI runtime makes syscalls of its own after it installs the
filter and before it execs the workload (runc, crun), and so does leastpriv's
own ``run`` (only ``execve``). :func:`register_runtime` lets a module add the
names a runtime needs; ``build(runtime=NAME)`` allows them on the native ABI.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import UserError
from ..kernel import syscalls
from .denylist import denylist_rules
from .runtime_base import runtime_base
from .rules import ArgRule, Rules

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
LOG = "SCMP_ACT_LOG"
NOTIFY = "SCMP_ACT_NOTIFY"   # only in listener models (tracer/seccomp_notify.py, enforce/verify.py)
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ")

# errno values that differ from the generic (x86/arm/riscv/s390/ppc) numbering
_ERRNO_ARCH = {
    ("mips", "ENOSYS"): 89, ("mipsel", "ENOSYS"): 89, ("mips64", "ENOSYS"): 89, ("mipsel64", "ENOSYS"): 89,
    ("mips64n32", "ENOSYS"): 89, ("mipsel64n32", "ENOSYS"): 89, ("parisc", "ENOSYS"): 251,
    ("parisc64", "ENOSYS"): 251,
}


def errno_value(name: str | int, arch: str | None = None) -> int:
    """An errno name's number (on ``arch``, host numbering otherwise)."""
    if isinstance(name, int):
        return name
    if arch and (arch, name) in _ERRNO_ARCH:
        return _ERRNO_ARCH[(arch, name)]
    try:
        return getattr(_errno, name)
    except AttributeError:
        raise UserError(f"profile: unknown errno name {name!r} in rules") from None


# ---------------------------------------------------------------- runtimes

RuntimeSyscalls = Callable[[str], Iterable[str]]


def _measured(runtime: str, nnp: bool) -> RuntimeSyscalls:
    return lambda arch: runtime_base(runtime, None, nnp, arch).syscalls


def _both(nnp: bool) -> RuntimeSyscalls:
    return lambda arch: sorted(set(runtime_base("runc", None, nnp, arch).syscalls) |
                               set(runtime_base("crun", None, nnp, arch).syscalls))


_RUNTIMES: dict[str, RuntimeSyscalls] = {
    "none": lambda arch: (),
    # leastpriv run: the filter is loaded by leastpriv, then it calls execve.
    "leastpriv": lambda arch: ("execve",),
    # the measured runtime bases (policy/runtime_base.py): with noNewPrivileges (what exported profiles use),
    # and without it (":new-privileges": the runtime installs the filter earlier, so it needs more)
    **{rt: _measured(rt, True) for rt in ("runc", "crun")},
    **{f"{rt}:new-privileges": _measured(rt, False) for rt in ("runc", "crun")},
    # both runtimes' bases (Docker runs runc, Podman crun by default)
    "runc+crun": _both(True),
    "runc+crun:new-privileges": _both(False),
}


def register_runtime(name: str, fn: RuntimeSyscalls) -> None:
    """Extension point: ``fn(arch)`` returns the syscall names the runtime makes
    between installing the filter and exec'ing the workload."""
    _RUNTIMES[name] = fn


def runtimes() -> list[str]:
    return sorted(_RUNTIMES)


def runtime_syscalls(runtime: str, arch: str) -> tuple[str, ...]:
    if runtime not in _RUNTIMES:
        raise UserError(f"--runtime: unknown runtime {runtime!r} (known: {', '.join(sorted(_RUNTIMES))})")
    return tuple(sorted(set(_RUNTIMES[runtime](arch))))


# ------------------------------------------------------------------- model

@dataclass(frozen=True, order=True)
class Cond:
    """One argument comparison (ANDed with the other conditions of its rule)."""

    index: int
    value: int
    value_two: int = 0
    op: str = "SCMP_CMP_EQ"

    def to_json(self) -> dict:
        return {"index": self.index, "value": self.value, "valueTwo": self.value_two, "op": self.op}


@dataclass(frozen=True)
class Rule:
    """``action`` for ``names`` when every condition in ``args`` holds."""

    action: str
    names: tuple[str, ...]
    args: tuple[Cond, ...] = ()
    errno: str | None = None          # errno name for SCMP_ACT_ERRNO ("EPERM", "ENOSYS")
    comment: str = ""

    def key(self) -> tuple:
        return (self.action, self.errno or "", self.args, self.names)


@dataclass(frozen=True)
class Model:
    """The seccomp policy of a profile, per ABI.

    ``rules[arch]`` holds the rules for that ABI (architectures listed in
    ``arches`` without rules get the default action for every syscall).
    """

    style: str                          # "allowlist" | "denylist"
    default_action: str                 # SCMP_ACT_ERRNO | SCMP_ACT_ALLOW | SCMP_ACT_LOG
    default_errno: str | None           # "EPERM" with SCMP_ACT_ERRNO
    native: str
    arches: tuple[str, ...]             # libseccomp names, native first
    rules: Mapping[str, tuple[Rule, ...]]
    complain: bool = False
    runtime: str = "none"
    notes: tuple[str, ...] = ()
    skipped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # arch -> names not on that ABI

    def flat(self) -> list[Rule]:
        """One rule list for all ABIs (the OCI/Docker format has no per-ABI lists).

        Names are united across ABIs; rules with the same action, errno and
        conditions are merged; a conditional allow is dropped for a name that
        is allowed unconditionally anyway.
        """
        merged: dict[tuple, set[str]] = {}
        comments: dict[tuple, str] = {}
        for arch in self.arches:
            for r in self.rules.get(arch, ()):
                k = (r.action, r.errno or "", r.args)
                merged.setdefault(k, set()).update(r.names)
                if r.comment and k not in comments:
                    comments[k] = r.comment
        unconditional = merged.get((ALLOW, "", ()), set())
        out = []
        for k in sorted(merged, key=lambda k: (k[0] != ALLOW, k[2] != (), k[0], k[1], k[2])):
            action, err, args = k
            names = merged[k] - (unconditional if (action == ALLOW and args) else set())
            if names:
                out.append(Rule(action, tuple(sorted(names)), args, err or None, comments.get(k, "")))
        return out

    def abis_left_out(self) -> list[str]:
        """The native ABI's compat ABIs this filter does not list (the workload ran no code in them)."""
        return [a for a in syscalls.COMPAT.get(self.native, ()) if a in syscalls.arches() and a not in self.arches]

    def allowed_names(self, arch: str) -> set[str]:
        return {n for r in self.rules.get(arch, ()) if r.action == ALLOW for n in r.names}


def _rules_of(profile_or_rules: Any) -> Rules:
    rules = getattr(profile_or_rules, "rules", profile_or_rules)
    if not isinstance(rules, Rules):
        raise UserError("profile: rules must be an object")
    return rules


def _conds(rule: ArgRule, where: str) -> tuple[Cond, ...]:
    out = []
    for a in rule.args:
        if a.op not in OPS:
            raise UserError(f"profile: {where}: unknown comparison {a.op!r}")
        out.append(Cond(a.index, a.value, a.value_two, a.op))
    return tuple(out)


def build(profile_or_rules: Any, *, complain: bool = False, arch: str | None = None,
          runtime: str = "none", extra_allow: Iterable[str] = (), compat: bool = False) -> Model:
    """The seccomp model of a Profile (or of its Rules).

    ``arch``: the native ABI of the machine that will enforce it (default: this
    host). The filter lists only the ABIs the workload ran code in: the native
    one and the compat ABIs (x86_64 -> x86, x32) the profile has syscalls for,
    so a 64-bit program's filter denies every 32-bit and x32 entry point
    (``int $0x80`` of an allowed name included). ``compat``: list every compat
    ABI anyway (as Docker's default does). ``runtime``: allow what that runtime needs after installing
    the filter (see :func:`register_runtime`). ``extra_allow``: more names to
    allow on the native ABI.
    """
    rules = _rules_of(profile_or_rules)
    native = arch or syscalls.host_arch()
    if native not in syscalls.arches():
        raise UserError(f"--arch: unknown architecture {native!r} (known: {', '.join(syscalls.arches())})")
    style = rules.style
    profile_arches = set(rules.syscalls) | set(rules.conditional) | set(rules.errno) | set(rules.denylist or {})
    if style == "denylist":   # a denylist's keys are every ABI it could deny on: use what the workload ran
        profile_arches = {a for a, v in rules.syscalls.items() if v} or profile_arches
    arches = [native] + [a for a in syscalls.COMPAT.get(native, ()) if a in syscalls.arches()
                         and (compat or a in profile_arches)]
    deny_action = LOG if complain else ERRNO
    deny_errno = None if complain else "EPERM"
    per_arch: dict[str, list[Rule]] = {a: [] for a in arches}
    skipped: dict[str, list[str]] = {}
    notes: list[str] = []

    def known(a: str, names: Iterable[str]) -> tuple[str, ...]:
        ok, bad = [], []
        for n in names:
            (ok if (not n.startswith("#") and syscalls.exists(a, n)) else bad).append(n)
        if bad:
            skipped.setdefault(a, []).extend(bad)
        return tuple(sorted(set(ok)))

    foreign = sorted(profile_arches - set(arches))
    if foreign:
        notes.append(f"the profile has syscalls for {', '.join(foreign)}, which a {native} kernel does not run: "
                     f"left out (translate with --arch)")

    if style == "allowlist":
        for a in arches:
            names = known(a, rules.allowed(a))
            if names:
                per_arch[a].append(Rule(ALLOW, names))
            for i, r in enumerate(rules.conditional_of(a)):
                ns = known(a, r.names)
                if ns:
                    per_arch[a].append(Rule(ALLOW, ns, _conds(r, f"conditional[{a}][{i}]"), None, r.comment))
            for r in rules.errno_of(a):
                ns = known(a, r.names)
                if ns:
                    per_arch[a].append(Rule(ERRNO, ns, (), r.errno or "EPERM", r.comment))
        default_action, default_errno = (LOG, None) if complain else (ERRNO, "EPERM")
    elif style == "denylist":
        deny = dict(rules.denylist or {})
        for a in arches:
            if a not in deny:
                # an ABI the workload never used gets the whole denylist (no facts: nothing was used)
                deny[a] = denylist_rules(a, {})
            d = deny[a]
            names = known(a, d.names)
            if names:
                per_arch[a].append(Rule(deny_action, names, (), deny_errno, "denied: never used by the workload"))
            for i, r in enumerate(d.conditional):
                ns = known(a, r.names)
                if ns:
                    per_arch[a].append(Rule(deny_action, ns, _conds(r, f"denylist[{a}].conditional[{i}]"),
                                            deny_errno, r.comment))
            for r in d.errno:
                ns = known(a, r.names)
                if ns:
                    per_arch[a].append(Rule(ERRNO, ns, (), r.errno or "EPERM", r.comment))
        default_action, default_errno = ALLOW, None
    else:
        raise UserError(f"profile: unknown rules style {style!r} (allowlist or denylist)")

    if style == "allowlist":
        extra = set(runtime_syscalls(runtime, native)) | set(extra_allow)
        extra -= {n for r in per_arch[native] if r.action == ALLOW and not r.args for n in r.names}
        extra_known = known(native, sorted(extra))
        if extra_known:
            per_arch[native].append(Rule(ALLOW, extra_known, (), None,
                                         f"needed by the {runtime} runtime after the filter is installed"
                                         if runtime != "none" else "added by request"))
    return Model(style=style, default_action=default_action, default_errno=default_errno, native=native,
                 arches=tuple(arches), rules={a: tuple(r) for a, r in per_arch.items()}, complain=complain,
                 runtime=runtime, notes=tuple(notes), skipped={a: tuple(sorted(set(v))) for a, v in skipped.items()})


# --------------------------------------------------------- deciding, writing

def _holds(cond: Cond, args: tuple[int, ...]) -> bool:
    a = args[cond.index] & 0xFFFFFFFFFFFFFFFF
    v = cond.value & 0xFFFFFFFFFFFFFFFF
    return {"SCMP_CMP_NE": a != v, "SCMP_CMP_LT": a < v, "SCMP_CMP_LE": a <= v, "SCMP_CMP_EQ": a == v,
            "SCMP_CMP_GE": a >= v, "SCMP_CMP_GT": a > v,
            "SCMP_CMP_MASKED_EQ": (a & v) == (cond.value_two & 0xFFFFFFFFFFFFFFFF)}[cond.op]


def decide(model: Model, arch: str, name: str, args: tuple[int, ...]) -> tuple[str, int | None, str]:
    """What the filter of ``model`` does with one call: ("allow" | "errno" | "deny", errno to answer, why).

    An allowlist's rules are ALLOW (conditional or not) and ERRNO answers; everything else is denied.
    """
    rules = model.rules.get(arch, ())
    for r in rules:
        if name in r.names and all(_holds(c, args) for c in r.args):
            if r.action == ALLOW:
                return "allow", None, ""
            if r.action == ERRNO:
                return "errno", errno_value(r.errno or "EPERM", arch), ""
    if any(name in r.names and r.args for r in rules):
        return "deny", None, "arguments not allowed by the profile"
    return "deny", None, "not in the profile"


def listener_model(arch: str, allow: Iterable[str], notify: Iterable[str]) -> Model:
    """A filter that allows ``allow``, sends ``notify`` to a seccomp user-notification listener and answers
    EPERM to the rest (the runtime's listenerPath; tracer/seccomp_notify.py)."""
    arches = (arch,) + tuple(a for a in syscalls.COMPAT.get(arch, ()) if a in syscalls.arches())
    rules = []
    if allow:
        rules.append(Rule(ALLOW, tuple(sorted(set(allow)))))
    if notify:
        rules.append(Rule(NOTIFY, tuple(sorted(set(notify)))))
    return Model(style="allowlist", default_action=ERRNO, default_errno="EPERM", native=arch, arches=arches,
                 rules={arch: tuple(rules)})


NO_NOTIFY = frozenset({"write"})        # runc: "SCMP_ACT_NOTIFY cannot be used for the write syscall"


def listener_oci(arch: str, allow: set[str], notify_all_others: bool = True) -> dict:
    """An OCI ``linux.seccomp`` that allows ``allow`` and sends every other known syscall of ``arch`` to the
    listener (EPERM for the rest): the seccomp-notify tracer's filter (tracer/container.py, learning) and
    verify's complain run (enforce/verify.py). The caller adds ``listenerPath``."""
    known = set(syscalls.table(arch))
    notify = sorted(known - allow - NO_NOTIFY) if notify_all_others else []
    allowed = sorted((allow | (NO_NOTIFY & known)) & known)
    return to_oci(listener_model(arch, allowed, notify))


def to_oci(model: Model, *, comments: bool = False) -> dict:
    """The model as an OCI runtime-spec ``linux.seccomp`` object: the one writer of seccomp JSON (OCI bundles,
    Docker's --security-opt seccomp=, the SPO SeccompProfile spec, verify's and the listener's filters).

    One rule list for every ABI in ``architectures`` (:meth:`Model.flat`); ``comments`` keeps each rule's
    reason (Docker's format has a ``comment`` field; runc ignores unknown fields).
    """
    obj: dict[str, Any] = {"defaultAction": model.default_action}
    if model.default_action == ERRNO:
        obj["defaultErrnoRet"] = errno_value(model.default_errno or "EPERM", model.native)
    obj["architectures"] = [syscalls.oci_arch(a) for a in model.arches]
    out = []
    for r in model.flat():
        d: dict[str, Any] = {"names": list(r.names), "action": r.action}
        if r.action == ERRNO:
            d["errnoRet"] = errno_value(r.errno or "EPERM", model.native)
        if r.args:
            d["args"] = [c.to_json() for c in r.args]
        if comments and r.comment:
            d["comment"] = r.comment
        out.append(d)
    obj["syscalls"] = out
    return obj

