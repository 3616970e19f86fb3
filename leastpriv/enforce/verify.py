"""Prove a profile under runc: complain first, then enforce.

1. **Complain run.** The container runs with the profile's unconditional
   allows as ALLOW and every other syscall sent to leastpriv
   (``SCMP_ACT_NOTIFY``, see tracer/seccomp_notify.py). Each call is judged as the enforced
   filter would judge it (argument conditions evaluated in leastpriv, errno
   rules answered with their errno) and, when it would be denied, recorded and
   let run. A denied call made by ``runc:[2:INIT]`` is one the *runtime* needs
   (the runtime base); any other is one the *workload* needs.
2. **Enforce run.** The container runs with exactly the exported filter, the
   learned capability set and noNewPrivileges as the profile says. It passes
   when runc starts it and it exits as it did in the complain run.

Exit codes: 0 passed, 1 denied (a syscall named, or the enforced run failed),
2 error.
"""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field

from ..policy import seccomp_model as sm
from ..oci.bundle import caps_block
from ..tracer.seccomp_notify import Call, Observer
from ..oci.runc import RunResult, Runc
from ..errors import UserError
from ..learner.aggregate import facts_of
from ..learner.capabilities import capability_set
from ..tracer.container import _ebpf_backend, _learn_ebpf
from ..errors import Interrupted


# With a listenerPath, runc's init waits for its parent to hand the notify fd over (a read on
# the init pipe) after installing the filter: a call of the complain run only.
LISTENER_ONLY = frozenset({"read"})


@dataclass(frozen=True)
class Denial:
    name: str
    arch: str
    by: str            # "runtime" | "workload"
    args: tuple[int, ...]
    count: int
    why: str = ""      # "not in the profile" | "arguments not allowed: ..."

    def to_json(self) -> dict:
        return {"kind": "capability" if self.name.startswith("CAP_") else "syscall",
                "syscall": self.name, "arch": self.arch, "by": self.by, "count": self.count, "why": self.why,
                "args": [hex(a) for a in self.args]}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    runtime: str
    complain: RunResult | None
    enforce: RunResult | None
    denials: tuple[Denial, ...]
    capabilities: tuple[str, ...]
    messages: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        def rr(r: RunResult | None):
            return None if r is None else {"started": r.started, "exit_status": r.exit_status,
                                           "runc_error": r.runc_error, "stderr": r.stderr[-2000:],
                                           "seconds": round(r.duration, 3)}
        return {"ok": self.ok, "runtime": self.runtime, "capabilities": list(self.capabilities),
                "denials": [d.to_json() for d in self.denials], "complain": rr(self.complain),
                "enforce": rr(self.enforce), "messages": list(self.messages)}


def _with(conf: dict, seccomp: dict | None, caps, nnp: bool) -> dict:
    c = copy.deepcopy(conf)
    if seccomp is None:
        c.get("linux", {}).pop("seccomp", None)
    else:
        c.setdefault("linux", {})["seccomp"] = seccomp
    if caps is not None:
        c["process"]["capabilities"] = caps_block(caps)
    c["process"]["noNewPrivileges"] = nnp
    return c


def verify(runc: Runc, bundle: str, conf: dict, profile, runtime: str = "runc", timeout: float = 120,
           complain_first: bool = True, trace_caps: bool | None = None, stdio: dict | None = None) -> VerifyResult:
    """Complain run, then enforce run, of the container ``conf`` (rootfs in ``bundle``) under ``profile``."""
    rules = profile.rules
    nnp = rules.no_new_privileges
    caps = tuple(rules.capabilities)
    rt = runtime if runtime in ("none",) else (runtime if nnp else f"{runtime}:new-privileges")
    model = sm.build(profile, runtime=rt)
    messages: list[str] = list(model.notes)
    denials: list[Denial] = []
    cap_denials: list[str] = []
    complain = None
    if trace_caps is None:
        trace_caps = _ebpf_backend()[0] is not None
    if complain_first:
        allow_uncond = {n for r in model.rules.get(model.native, ()) if r.action == sm.ALLOW and not r.args
                        for n in r.names}
        d = tempfile.mkdtemp(prefix="lp-listen-")
        obs = Observer(os.path.join(d, "seccomp.sock"))
        verdicts: dict[tuple, list] = {}

        def decide(call: Call) -> int | None:
            if call.by_runtime and call.name in LISTENER_ONLY:
                return None   # runc's handshake with the listener: not made in the enforced run
            what, err, why = sm.decide(model, call.arch, call.name, call.args)
            if what == "errno":
                return err
            if what == "deny":
                k = (call.name, call.arch, "runtime" if call.by_runtime else "workload", why)
                v = verdicts.setdefault(k, [0, call.args])
                v[0] += 1
            return None

        obs.decide = decide
        sec = sm.listener_oci(model.native, allow_uncond)
        sec["listenerPath"] = obs.path
        try:
            if trace_caps:
                # complain for capabilities too: the container keeps its own capability set, and the eBPF
                # tracer names every capability it needed that the learned set does not have
                complain, needed = _complain_with_caps(runc, bundle, _with(conf, sec, None, nnp), timeout)
                for cap in sorted(set(needed) - set(caps)):
                    cap_denials.append(cap)
            else:
                # same capabilities as enforcement, so the run is the same but for the filter
                complain = runc.run(bundle, _with(conf, sec, caps, nnp), timeout=timeout, ephemeral=True)
        finally:
            obs.close()
            os.rmdir(d)
        _stop_if_interrupted(complain)
        messages += obs.errors
        for (name, arch, by, why), (count, args) in sorted(verdicts.items()):
            denials.append(Denial(name, arch, by, tuple(args), count, why))
        if "write" not in allow_uncond:
            messages.append("write is not in the profile: runc cannot send write to a listener, so the complain run "
                            "let it run unobserved; the enforce run will show whether it is needed")
    # enforce with exactly what `leastpriv export --format oci --runtime RUNTIME` writes
    exported = sm.to_oci(model)
    enforce = runc.run(bundle, _with(conf, exported, caps, nnp), timeout=timeout, ephemeral=True, **(stdio or {}))
    _stop_if_interrupted(enforce)
    for cap in cap_denials:
        denials.append(Denial(cap, "", "workload", (), 1, "capability not in the learned set"))
    ok = not denials and enforce.started and enforce.exit_status == (complain.exit_status if complain else 0)
    if not enforce.started:
        tail = [t for t in enforce.stderr.strip().splitlines()[-3:] if t not in enforce.runc_error]
        messages.append(f"runc could not start the container under the profile: {enforce.runc_error}"
                        + (f" (container stderr: {' | '.join(tail)})" if tail else ""))
    elif complain is not None and enforce.exit_status != complain.exit_status:
        messages.append(f"the workload exited {enforce.exit_status} under the profile and {complain.exit_status} "
                        "without enforcement")
    if not ok and not denials and enforce.started:
        messages.append("no syscall was denied" + ("" if trace_caps else " (capability checks not traced: eBPF "
                                                   "not usable)") + ": a capability outside the learned set "
                        f"({', '.join(caps) or 'none'}) is the likely cause")
    if any(d.by == "runtime" for d in denials):
        messages.append("the runtime itself needs syscalls the profile denies: export with --runtime runc "
                        "(the runtime base) or add them")
    return VerifyResult(ok, rt, complain, enforce, tuple(denials), caps, tuple(messages))


def _stop_if_interrupted(res: RunResult | None) -> None:
    """A verify run that leastpriv was told to stop proves nothing: unwind (the CLI exits 128+N)."""
    if res is not None and res.interrupted:
        import signal

        raise Interrupted(signal.Signals[res.interrupted].value)


def _complain_with_caps(runc: Runc, bundle: str, conf: dict, timeout: float) -> tuple[RunResult, list[str]]:
    """The complain run traced by eBPF by cgroup: (the run, the capabilities the workload needed)."""

    try:
        rec, res = _learn_ebpf(runc, bundle, conf, "verify", timeout, ephemeral=True)
    except UserError as exc:
        if exc.exit_code > 128:   # stopped by a signal before the container started
            raise Interrupted(exc.exit_code - 128) from None
        if "could not start" in str(exc):
            return runc.run(bundle, conf, timeout=timeout, ephemeral=True), []
        raise
    return res, capability_set(facts_of(rec))
