"""Learning a container: run it under runc and record the workload from its start.

Two ways, best first:

* **ebpf** (``leastpriv.tracer.ebpf``, when usable): ``runc create``, trace the
  container's cgroup in a thread (``Cgroup(path)`` target; it sets
  ``extra["ready_event"]`` once attached), ``runc start``, wait for the
  container to exit, set ``extra["stop_event"]``. Capability checks are seen.
  runc's own calls between ``runc start`` and the execve (a handful: the exec
  fifo, closing fds) are in the cgroup too and are removed by attribution
  (executables named ``runc:[2:INIT]``).
* **seccomp-notify** (no eBPF needed, root): the container's filter sends
  every syscall but ``write`` to leastpriv, which records it with its
  arguments and lets it run; calls made by ``runc:[2:INIT]`` before the
  execve are the runtime's and are not recorded. Capabilities are not seen;
  ``write`` is assumed (runc forbids notifying it). Each call costs a round
  trip to leastpriv, like a ptrace stop.

ptrace cannot follow into a runc container usefully: tracing ``runc run``
records runc's own setup (mount, pivot_root, ...) mixed with the workload,
and runc's init refuses to be re-parented under a tracer's control in some
paths; attach-by-cgroup is eBPF's job.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import time

from ..kernel import syscalls
from ..errors import UserError
from .recording import Recording, RecordingBuilder
from .seccomp_notify import Call, Observer
from ..oci.runc import RunResult, Runc
from . import select
from .base import Cgroup, TraceOptions

RUNC_INIT = "runc:[2:INIT]"


def _ebpf_backend():

    try:
        cls = select.load("ebpf")
    except (ImportError, UserError) as exc:
        return None, str(exc)
    ok, why = cls.usable()
    return (cls, "") if ok else (None, why)


def choose(backend: str) -> str:
    if backend in ("auto", "ebpf"):
        cls, why = _ebpf_backend()
        if cls is not None:
            return "ebpf"
        if backend == "ebpf":
            raise UserError(f"--backend ebpf: not usable here: {why}")
        return "seccomp-notify"
    if backend in ("seccomp-notify", "notify"):
        return "seccomp-notify"
    raise UserError(f"--backend {backend}: containers are learned with ebpf or seccomp-notify "
                    "(ptrace cannot attach to a runc container's cgroup)")


def learn_container(runc: Runc, bundle: str, conf: dict, target: str, backend: str = "auto",
                    timeout: float | None = None, stdio: dict | None = None,
                    listener_filter: dict | None = None) -> tuple[Recording, RunResult, str]:
    """(recording, the run, why this backend) for one run of the container.
    ``stdio``: Runc.run's passthrough/stdin (the container's stdio are the caller's, like docker run).
    ``listener_filter``: the seccomp-notify backend's filter (an OCI ``linux.seccomp`` that sends every call
    of the host's arch to the listener: policy/seccomp_model.listener_oci, built by the caller)."""
    which = choose(backend)
    if which == "ebpf":
        return (*_learn_ebpf(runc, bundle, conf, target, timeout, stdio=stdio), "backend ebpf (container cgroup)")
    if listener_filter is None:
        raise UserError("the seccomp-notify backend needs the listener's filter (policy/seccomp_model.listener_oci)")
    return (*_learn_notify(runc, bundle, conf, target, timeout, listener_filter, stdio=stdio),
            "backend seccomp-notify (ebpf not usable: " + _ebpf_backend()[1] + ")" if backend == "auto"
            else "backend seccomp-notify (asked for)")


def _learn_notify(runc: Runc, bundle: str, conf: dict, target: str,
                  timeout: float | None, listener_filter: dict, stdio: dict | None = None) -> tuple[Recording, RunResult]:
    arch = syscalls.host_arch()
    b = RecordingBuilder(conf["process"]["args"], "seccomp-notify", target=target, uid=conf["process"]["user"]["uid"])
    lock = threading.Lock()
    exec_seen: set[int] = set()

    def decide(call: Call) -> int | None:
        if call.comm == RUNC_INIT:
            if call.name == "execve":      # runc's execve of the workload: the first call of the workload
                with lock:
                    exec_seen.add(call.pid)
                    b.syscall(call.arch, "execve")
                    b.attribute(conf["process"]["args"][0], call.arch, "execve")
            return None
        with lock:
            b.syscall(call.arch, call.name)
            spec = syscalls.tracked_args(call.arch, call.name)
            if spec is not None:
                b.arg(call.arch, call.name, tuple(call.args[i] for i in spec.indexes))
            b.attribute(call.comm, call.arch, call.name)
        return None

    d = tempfile.mkdtemp(prefix="lp-listen-")
    obs = Observer(os.path.join(d, "seccomp.sock"), decide)
    c = dict(conf)
    c["linux"] = {**conf.get("linux", {}), "seccomp": {**listener_filter, "listenerPath": obs.path}}
    try:
        res = runc.run(bundle, c, timeout=timeout, **(stdio or {}))
    finally:
        obs.close()
        os.rmdir(d)
    if not res.started:
        raise _not_started(res)
    b.syscall(arch, "write")
    b.note("seccomp-notify backend: write is assumed (runc cannot send write to a listener); "
           "capabilities are not observed (use the ebpf backend)")
    for e in obs.errors + list(res.notes):
        b.note(e)
    return b.build(res.exit_status, complete=not res.interrupted, interrupted=res.interrupted), res


def _learn_ebpf(runc: Runc, bundle: str, conf: dict, target: str, timeout: float | None,
                ephemeral: bool = False, stdio: dict | None = None) -> tuple[Recording, RunResult]:

    backend = select.load("ebpf")()
    ready, stop = threading.Event(), threading.Event()
    box: dict = {}

    def trace(path: str) -> None:
        try:
            box["rec"] = backend.trace(Cgroup(path), TraceOptions(extra={"ready_event": ready, "stop_event": stop,
                                                                            "ignore_comms": (RUNC_INIT,)}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
            ready.set()

    thread: list[threading.Thread] = []

    def on_created(cgroup: str, pid: int) -> None:
        t = threading.Thread(target=trace, args=(cgroup,), name="lp-ebpf", daemon=True)
        t.start()
        thread.append(t)
        box["pid"] = pid
        if not ready.wait(60):
            raise UserError("ebpf tracer did not attach within 60 s")
        if "error" in box:
            raise box["error"]
        # The backend learns a cgroup process's executable when it handles the process's first event,
        # reading /proc/PID/exe; if that happens after runc's init has exec'd the workload, init's few
        # calls are attributed to the workload. Make init show itself now, while it still waits on the
        # exec fifo: SIGURG is Go's preemption signal (handled, restarts the wait), its rt_sigreturn is
        # init's first traced call. Then give the backend a few polls to handle it.
        try:
            os.kill(pid, signal.SIGURG)
        except ProcessLookupError:
            pass
        time.sleep(0.35)

    try:
        res = runc.run(bundle, conf, on_created=on_created, timeout=timeout, ephemeral=ephemeral, **(stdio or {}))
    finally:
        stop.set()
        for t in thread:
            t.join(30)
    if "error" in box:
        raise box["error"]
    if not res.started:
        raise _not_started(res)
    from dataclasses import replace

    rec: Recording = replace(box["rec"], target=target, command=tuple(conf["process"]["args"]),
                             notes=box["rec"].notes + tuple(res.notes), exit_status=res.exit_status,
                             complete=box["rec"].complete and not res.interrupted,
                             interrupted=res.interrupted or box["rec"].interrupted)
    return _drop_runtime(rec, res), res


def _not_started(res: RunResult) -> UserError:
    """runc did not start the container: one line; when leastpriv was told to stop, exit 128+N (nothing ran)."""
    if res.interrupted:
        return UserError(f"{res.interrupted}: stopped before the container started (nothing to save; the container "
                         "and its files were removed)", exit_code=128 + signal.Signals[res.interrupted].value)
    return UserError(f"runc could not start the container: {res.runc_error}")


def _drop_runtime(rec: Recording, res: RunResult) -> Recording:
    """Remove what runc's init did between `runc start` and the execve (attributed to runc:[2:INIT])."""
    from dataclasses import replace

    # runc's init runs from a sealed memfd copy of runc: the kernel names its exe "/" (or runc:[2:INIT] by comm)
    runtime = {k for k in rec.executables if k == "/" or "runc" in os.path.basename(k) or k.startswith("runc:")}
    # (runc's init's own paths, e.g. /proc/self/fd and its exec fifo, never reach the Recording: the eBPF
    # backend leaves out paths of tasks named runc:[2:INIT], see `ignore_comms`)
    if not runtime:
        return replace(rec, exit_status=res.exit_status, complete=not res.interrupted, interrupted=res.interrupted)
    keep: dict[str, set[str]] = {}
    for exe, t in rec.executables.items():
        if exe in runtime:
            continue
        for arch, names in t.items():
            keep.setdefault(arch, set()).update(names)
    syscalls_ = {a: {n: s for n, s in t.items() if n in keep.get(a, set()) or n == "execve"}
                 for a, t in rec.syscalls.items()}
    caps = tuple(c for c in rec.capabilities if c.exe not in runtime)
    args = {a: {n: v for n, v in t.items() if n in syscalls_.get(a, {})} for a, t in rec.args.items()}
    return replace(rec, syscalls=syscalls_, args=args, capabilities=caps, exit_status=res.exit_status,
                   complete=not res.interrupted, interrupted=res.interrupted,
                   executables={e: t for e, t in rec.executables.items() if e not in runtime},
                   notes=rec.notes + ("runc's own calls before the workload's execve were removed "
                                      f"(attributed to {', '.join(sorted(runtime))})",))
