"""The use cases: what a command does, between parsing (cli.py) and rendering (ui/).

learn (trace, add a run to a profile), check (trace or load, compare with a baseline), merge, export
(retarget, then a pure exporter), and the container use cases (learn a container, verify a profile under
runc, review an image), which pass the container's stdio through like docker run and say what they do as
they go through the ``Status`` the caller hands them. Nothing here reads ``sys.argv`` or renders: results
go back to cli.py, which hands them to ui/.
"""
from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .errors import Interrupted, UserError
from .fileio import write_atomic
from .learner import aggregate
from .learner.profile import Profile
from .text import plural
from .tracer import select
from .tracer.base import Backend, Target, TraceOptions
from .tracer.recording import Recording

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: the exporters are imported by export itself, typing costs ~1.5 ms
    from typing import Any, Protocol

    from .exporters.base import ExportOptions, ExportResult

    class Status(Protocol):   # what app says as it goes (a Status of ui/, or Quiet)
        def info(self, msg: str) -> None: ...

        def warn(self, msg: str) -> None: ...

    class Tracer(Protocol):   # check's way to trace (trace_quietly, or a test's)
        def __call__(self, chosen: Backend, target: Target, *, known: Any) -> Recording: ...


class Quiet:
    """A Status that says nothing."""

    @staticmethod
    def info(msg: str) -> None:
        pass

    @staticmethod
    def warn(msg: str) -> None:
        pass


# ---------------------------------------------------------------- learn

def choose_backend(backend: str, target: Target, cpu: str = "same", status: Status = Quiet) -> Backend:
    """The backend for --backend, saying which and why."""
    chosen, why = select.choose(backend, target)
    status.info(why)
    if cpu != "same" and chosen.name != "ptrace":
        status.warn(f"--cpu {cpu}: only the ptrace backend places CPUs; {chosen.name} ignores it")
    return chosen


def trace(chosen: Backend, target: Target, progress: Callable[[dict], None] | None = None,
          **options: Any) -> Recording:
    """Run or attach to ``target`` under ``chosen``; the Recording."""
    return chosen.trace(target, TraceOptions(progress=progress, **options))


def add_run(output: str, existing, rec, save_recording: str | None):
    """Add a Recording to the profile at ``output``, save it, then the Recording if asked.

    ``existing`` was read before the run to fail early; under the profile's lock (fileio.locked) the
    profile is read again, so that concurrent learns and merges into one file each keep their run (unless
    the file is still the one ``existing`` was read from: Profile.load_existing).
    The profile is saved first: a bad --save-recording path must not lose the run. When the disk is
    full, the Recording is saved elsewhere (rescue_recording) and the one error line says where.

    Returns (profile, what this run added).
    """
    from .fileio import DiskFull, locked
    from .learner import aggregate
    from .learner.profile import Profile

    try:
        with locked(output):   # read again under the lock, unless it is still the file ``existing`` came from
            profile, added = aggregate.add_recording(Profile.load_existing(output, reuse=existing), rec)
            profile.save(output)
    except DiskFull as exc:
        where = rescue_recording(rec, [save_recording] if save_recording else [], output)
        raise UserError(f"{exc}; this run was not added: {where}") from None
    if save_recording:
        try:
            rec.save(save_recording)
        except DiskFull as exc:
            raise UserError(f"{exc}; the run is in {output}") from None
    return profile, added


def other_programs(existing, rec) -> list[str]:
    """The programs ``existing`` was learned from, when ``rec`` runs another one (else [])."""

    return aggregate.other_programs(existing, rec)


def learn_from_log(source: str, *, since: str | None = None, exes: Sequence[str] = (), comms: Sequence[str] = ()):
    """learn --from-log: the seccomp log records in SOURCE that the filters keep, as a Recording of kind log,
    and the report of what was read and left out."""
    from .tracer import kernlog

    filt = kernlog.LogFilter(since=kernlog.parse_since(since) if since else None, exe=tuple(exes),
                             comm=tuple(comms))
    return kernlog.load(source, filt)


def say_fast_gate(rec: Recording, alternative: str, status: Status) -> None:
    """What the fast gate left out of this run (the backend's own note), or that it was not used."""
    notes = [n for n in rec.notes if n.startswith("fast gate")]
    for n in notes:
        status.info(f"{n} ({alternative})")
    if not notes:
        status.info(f"fast gate: not available with the {rec.backend} backend: every call was looked at")


# ---------------------------------------------------------------- merge / check

def merge(inputs: Sequence[str], output: str) -> tuple[Profile, dict]:
    """Merge profiles and recordings into the profile at ``output`` (which may be one of them: read, merge
    and write under its lock as one step). The profile and a summary (what ``merge --json`` prints)."""
    from .fileio import locked
    from .learner.profile import load_profile_or_recording

    with locked(output):
        profile = aggregate.merge([load_profile_or_recording(p) for p in inputs])
        profile.save(output)
    summary = {"output": output, "inputs": list(inputs), "runs": len(profile.runs),
               "runs_without_growth": profile.runs_without_growth,
               "syscalls": {a: len(t) for a, t in profile.facts.get("syscalls", {}).items()},
               "capabilities": list(profile.rules.capabilities),
               "seen_in_one_run_only": profile.seen_in_one_run()}
    return profile, summary


def check(baseline: str, new: Sequence[str], *, command: bool, backend: str = "auto", full_trace: bool = False,
          save_recording: str | None = None, kinds: Sequence[str] = (), ignore_paths: Sequence[str] = (),
          strict: bool = False, run: Tracer | None = None, status: Status = Quiet) -> dict:
    """check: compare NEW (a profile or recording; with ``command`` the command ``new`` is traced first by
    ``run``, through the fast gate unless ``full_trace``) with the baseline. learner/check.py's result."""
    from .learner.check import check as compare, known_calls
    from .learner.diff import as_profile
    from .learner.profile import load_profile_or_recording
    from .tracer.base import Command

    base = as_profile(load_profile_or_recording(baseline))
    if not new:
        raise UserError("check: give NEW (a profile or recording) or -- CMD")
    known = None
    if command:
        target = Command(tuple(new))
        known = None if full_trace else known_calls(base)
        rec = (run or trace_quietly)(choose_backend(backend, target, status=status), target, known=known)
        if known is not None:
            say_fast_gate(rec, "--full-trace looks at every call", status)
        if rec.exit_status not in (0, None):
            status.warn(f"the workload exited with status {rec.exit_status}: it may have done less than usual")
        if save_recording:
            rec.save(save_recording)
        newp = rec
    else:
        newp = load_profile_or_recording(new[0])
    return compare(base, newp, kinds=kinds, ignore_paths=ignore_paths, unobserved=known, strict=strict)


def trace_quietly(chosen: Backend, target: Target, *, known: Any = None) -> Recording:
    """A Tracer without a live status line."""
    return chosen.trace(target, TraceOptions(known=known))


# ---------------------------------------------------------------- export

def export(profile: Profile, fmt: str, options: ExportOptions) -> ExportResult:
    """The profile in format ``fmt``: retargeted first (--args, --style, --arch: learner/retarget.py), then
    handed finished to the exporter, a pure function of it. A file the export replaces (oci --bundle) is
    written here, atomically."""
    from dataclasses import replace   # here: dataclasses (and inspect) cost every other command ~4 ms

    from .exporters import base as exporters
    from .learner.retarget import retarget
    from .policy.runtime_base import export_runtime

    exporter = exporters.get(fmt)
    # the runtime base: runc's by default for the formats a container runtime enforces (policy/runtime_base)
    options = replace(options, runtime=export_runtime(profile, options.runtime, fmt))
    profile, notes = retarget(profile, args=options.args, style=options.style, arch=options.arch,
                              exact=options.exact)
    result = exporter.export(profile, options)
    if result.target:
        write_atomic(result.target, result.text)
    return replace(result, notes=tuple(notes) + tuple(result.notes))


def reach(profile_path: str | None, exes: Sequence[str] = (), dlopens: Sequence[str] = ()):
    """reach: the static reachability of a profile's executables, or of ``exes`` (each with the shared objects
    in ``dlopens`` it loads at run time). reach/coverage.py's Coverage."""
    import os

    from .learner.diff import as_profile
    from .learner.profile import load_profile_or_recording
    from .reach.coverage import coverage

    if bool(profile_path) == bool(exes):
        raise UserError("reach: give a PROFILE or --exe PATH (not both)")
    if dlopens and not exes:
        raise UserError("reach: --dlopen goes with --exe")
    if exes:
        for e in tuple(exes) + tuple(dlopens):
            if not os.path.isfile(e):
                raise UserError(f"{e}: no such file")
        facts = {"executables": {os.path.abspath(e): {} for e in exes},
                 "files": {os.path.abspath(d): ["read"] for d in dlopens}}
        runs: tuple = ()
    else:
        prof = as_profile(load_profile_or_recording(profile_path))
        facts, runs = prof.facts, prof.runs
    cov = coverage(facts, runs)
    if exes and all(e.reach is None for e in cov.executables):
        raise UserError("; ".join(e.error for e in cov.executables))
    return cov


def rescue_recording(rec, first: list[str], output: str) -> str:
    """Save a run that could not be added to its profile somewhere else; say where (or why nowhere).

    Tried in order: the --save-recording path, $XDG_STATE_HOME/leastpriv/unsaved (~/.local/state),
    /var/tmp, /dev/shm (memory: a full disk does not fill it).
    """
    import os

    from .fileio import DiskFull

    name = f"leastpriv-unsaved-{rec.id}.rec.json"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    candidates = list(first) + [os.path.join(state, "leastpriv", "unsaved", name),
                                os.path.join("/var/tmp", name), os.path.join("/dev/shm", name)]
    tried = []
    for path in candidates:
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            rec.save(path)
        except (OSError, UserError, DiskFull) as exc:
            tried.append(f"{path} ({exc.strerror if isinstance(exc, OSError) else 'no space'})")
            continue
        return f"its recording was saved to {path}; add it with: leastpriv merge {output} {path} -o {output}"
    return "its recording could not be saved anywhere either (tried " + ", ".join(tried) + ")"


@contextmanager
def signals_unwind() -> Iterator[Callable[[], None]]:
    """While a container's files exist (an unpacked image, runc's state): SIGTERM, SIGHUP and SIGQUIT raise,
    like Ctrl-C, so every ``with`` block on the way out removes what it made; runc.run stops the container
    itself when a signal comes while it runs (the run is then saved, marked interrupted).

    A handler's exception can be swallowed: when the signal lands in code whose exceptions Python only prints
    ("Exception ignored in": a weakref callback of the import lock, a ``__del__``). The signal is kept, so the
    block still ends with Interrupted: at the latest when it ends, earlier where the body calls the yielded
    check (before it starts a container)."""
    import threading   # here: a learn of a command never needs it (~1 ms of its start)

    got: list[int] = []

    def check() -> None:
        if got:
            raise Interrupted(got[0])

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def unwind(signum, _frame):
        got.append(signum)
        raise Interrupted(signum)

    def drop(_signum, _frame):   # a handler, not SIG_IGN: the programs started meanwhile get the default
        pass

    from . import launch

    # SIGINT too (Python's own KeyboardInterrupt can be swallowed the same way), unless it was ignored when
    # leastpriv started (a shell's background job); the signals leastpriv passes on (SIGUSR1, SIGWINCH, ...)
    # have no container to go to until runc.run runs it (it passes them on then): dropped, never fatal
    old = {s: signal.signal(s, unwind if s in launch.ENDING else drop)
           for s in launch.FORWARDED if s != signal.SIGINT or signal.getsignal(s) is signal.default_int_handler}
    old_hook = sys.unraisablehook

    def unraisable(u) -> None:   # a swallowed Interrupted is kept in ``got``: no "Exception ignored" traceback
        if not isinstance(u.exc_value, Interrupted):
            old_hook(u)

    sys.unraisablehook = unraisable
    try:
        yield check
    except KeyboardInterrupt:
        raise
    except BaseException:
        if got:   # what failed after a swallowed signal failed because of it (or would not matter): the signal
            raise Interrupted(got[0]) from None
        raise
    else:
        check()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sys.unraisablehook = old_hook


# ----------------------------------------------------------- containers

def _listener_filter() -> dict:
    """The seccomp-notify backend's filter: every call of this host's arch goes to the listener."""
    from .kernel.syscalls import host_arch
    from .policy import seccomp_model as sm

    return sm.listener_oci(host_arch(), set())


def _runc():
    from .oci.runc import Runc

    ok, why = Runc.usable()
    if not ok:
        raise UserError(f"containers: {why}")
    return Runc()


def learn_container_cmd(*, bundle: str | None, image: str | None, args: Sequence[str], backend: str,
                        network: str = "loopback", duration: float | None = None, overrides=None,
                        stdin: bool = False, status: Status = Quiet):
    """Learn one run of a container; its stdout and stderr are ours (like docker run), stdin with ``stdin``."""
    from .tracer.container import learn_container
    from .oci.workspace import open_workspace

    if backend == "ptrace":
        raise UserError("--backend ptrace: cannot attach to a runc container (use ebpf or seccomp-notify; see README "
                        "## Containers)")
    runc = _runc()
    with signals_unwind() as interrupted, open_workspace(image=image, bundle=bundle, args=args, network=network,
                                                         overrides=overrides) as ws:
        for c in ws.changes:
            status.info(f"bundle: {c}")
        if ws.unpack:
            status.info(f"unpacked {plural(ws.unpack.layers, 'layer')}, {plural(ws.unpack.files, 'file')}")
            for n in ws.unpack.neutralized:
                status.warn(n)
        interrupted()
        rec, res, why = learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=duration,
                                        stdio={"passthrough": True, "stdin": stdin},
                                        listener_filter=_listener_filter())
        status.info(why)
        return rec


def verify_cmd(*, bundle: str | None, image: str | None, profile_path: str, runtime: str, args: Sequence[str],
               as_json: bool, network: str = "loopback", duration: float = 120, overrides=None,
               stdin: bool = False, status: Status = Quiet):
    """Verify a container under the profile; the enforced run's stdout and stderr are ours (like docker run),
    stdin with ``stdin``; the complain run before it is captured. The verdict (enforce/verify.py's result) is
    for ui/verify.py to render."""
    from .learner.profile import Profile
    from .enforce.verify import verify
    from .oci.workspace import open_workspace

    profile = Profile.load(profile_path)
    runc = _runc()
    if as_json:
        status.info("the container's stdout goes to stderr: the verdict is on stdout")
    with signals_unwind() as interrupted, \
            open_workspace(image=image, bundle=bundle, args=args, network=network, overrides=overrides) as ws, \
            _stdout_to_stderr(as_json):
        interrupted()
        return verify(runc, ws.bundle, ws.conf, profile, runtime=runtime, timeout=duration,
                      stdio={"passthrough": True, "stdin": stdin})


def review_image_cmd(*, image: str, profile_path: str | None, args: Sequence[str], fmt: str, backend: str,
                     runtime: str, network: str = "loopback", overrides=None, stdin: bool = False,
                     output: str | None = None, status: Status = Quiet) -> dict:
    """Review a container image. The learning run's stdout and stderr are ours (like docker run; its stdout
    goes to stderr when the report itself goes to stdout in a machine format), stdin with ``stdin``.
    The report, for ui/image_review.py to render."""
    from .learner import aggregate
    from .learner.profile import Profile
    from .tracer.container import learn_container
    from .learner.image_review import build_report
    from .enforce.verify import verify
    from .oci.workspace import open_workspace

    runc = _runc()
    machine_on_stdout = output is None and fmt in ("json", "markdown")
    with signals_unwind() as interrupted, open_workspace(image=image, args=args, network=network,
                                                         overrides=overrides) as ws:
        from .oci.image import scan_rootfs
        scan = scan_rootfs(ws.rootfs)   # before anything runs in it
        interrupted()
        learn_exit = None
        if profile_path:
            profile = Profile.load(profile_path)
        else:
            if machine_on_stdout:
                status.info("the container's stdout goes to stderr: the report is on stdout (-o FILE to keep "
                             "them apart)")
            with _stdout_to_stderr(machine_on_stdout):
                rec, res, why = learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=120,
                                                stdio={"passthrough": True, "stdin": stdin},
                                                listener_filter=_listener_filter())
            status.info(why)
            learn_exit = res.exit_status
            profile, _ = aggregate.add_recording(None, rec)
        # prove the capability set: run under the profile with exactly the learned capabilities
        interrupted()
        v = verify(runc, ws.bundle, ws.conf, profile, runtime=runtime)
        first = v.complain if v.complain is not None else v.enforce
        if first is not None and not first.started:   # not even the unenforced run started: no review to give
            raise UserError(f"runc could not start the container: {first.runc_error or 'no reason given'}")
        caps_proved = bool(v.ok)
        report = build_report(image=image, name=ws.name, conf=ws.conf, profile=profile, unpack=ws.unpack,
                              rootfs=ws.rootfs, runtime=runtime, caps_proved=caps_proved, learn_exit=learn_exit,
                              scan=scan)
        report["verify"] = v.to_json()
        try:
            from .learner.review import review as profile_review
            report["profile_review"] = profile_review(profile)
        except Exception as exc:  # noqa: BLE001 - the learner's review is an extra
            report["profile_review"] = {"error": str(exc)}
    return report


def container_overrides(*, env=(), workdir=None, user=None, entrypoint=None):
    """docker run's -e/--workdir/--user/--entrypoint for a container run."""
    from .oci.bundle import Overrides

    return Overrides(env=tuple(env), workdir=workdir, user=user, entrypoint=entrypoint)


class _stdout_to_stderr:
    """While active (``on``), fd 1 is fd 2: a child's stdout lands on our stderr."""

    def __init__(self, on: bool):
        self.on, self.saved = on, None

    def __enter__(self):
        import os
        if self.on:
            sys.stdout.flush()
            self.saved = os.dup(1)
            os.dup2(2, 1)
        return self

    def __exit__(self, *exc):
        import os
        if self.saved is not None:
            os.dup2(self.saved, 1)
            os.close(self.saved)
