"""The use cases: what a command does, between parsing (cli.py) and rendering (ui/).

Each function takes what the user asked for, does it with the packages below (tracer, learner, exporters,
enforce, oci) and returns a result for ui/ to render; progress lines go to a ``status`` object (ui/console
in the CLI; anything with ``info`` and ``warn``). Nothing here prints or reads ``sys.argv``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from .errors import UserError
from .exporters import base as exporters
from .exporters.base import ExportOptions, ExportResult
from .fileio import write_atomic
from .learner import aggregate
from .learner.profile import Profile
from .learner.retarget import retarget
from .tracer import kernlog, select
from .tracer.base import Backend, Target, TraceOptions
from .tracer.recording import Recording

if TYPE_CHECKING:
    from .enforce.verify import VerifyResult
    from .oci.runc import Runc


class Status(Protocol):
    def info(self, msg: str) -> None: ...

    def warn(self, msg: str) -> None: ...


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


def add_run(output: str, existing: Profile | None, rec: Recording, save_recording: str | None):
    """Add a Recording to the profile at ``output`` (``existing``: its loaded content, or None), save it
    (first: a bad --save-recording path must not lose the run), then the Recording if asked.

    Returns (profile, what this run added).
    """
    profile, added = aggregate.add_recording(existing, rec)
    profile.save(output)
    if save_recording:
        rec.save(save_recording)
    return profile, added


def learn_from_log(source: str, *, since: str | None = None, exes: Sequence[str] = (), comms: Sequence[str] = ()):
    """learn --from-log: the seccomp log records in SOURCE that the filters keep, as a Recording of kind log,
    and the report of what was read and left out."""
    filt = kernlog.LogFilter(since=kernlog.parse_since(since) if since else None, exe=tuple(exes),
                             comm=tuple(comms))
    return kernlog.load(source, filt)


# ---------------------------------------------------------------- export

def export(profile: Profile, fmt: str, options: ExportOptions) -> ExportResult:
    """The profile in format ``fmt``: retargeted first (--args, --style, --arch: learner/retarget.py), then
    handed finished to the exporter, a pure function of it. A file the export replaces (oci --bundle) is
    written here, atomically."""
    exporter = exporters.get(fmt)
    profile, notes = retarget(profile, args=options.args, style=options.style, arch=options.arch,
                              exact=options.exact)
    result = exporter.export(profile, options)
    if result.target:
        write_atomic(result.target, result.text)
    return replace(result, notes=tuple(notes) + tuple(result.notes))


# ----------------------------------------------------------- containers

def _runc() -> Runc:
    from .oci.runc import Runc   # the container machinery loads only for the container commands

    ok, why = Runc.usable()
    if not ok:
        raise UserError(f"containers: {why}")
    return Runc()


def learn_container(*, bundle: str | None, image: str | None, args: Sequence[str], backend: str,
                    network: str = "loopback", duration: float | None = None, status: Status = Quiet) -> Recording:
    """Run an OCI bundle or image under runc and record it (eBPF by cgroup, or seccomp-notify)."""
    from .oci.workspace import open_workspace
    from .tracer.container import learn_container as _learn_container

    if backend == "ptrace":
        raise UserError("--backend ptrace: cannot attach to a runc container (use ebpf or seccomp-notify; see README "
                        "## Containers)")
    runc = _runc()
    with open_workspace(image=image, bundle=bundle, args=args, network=network) as ws:
        for c in ws.changes:
            status.info(f"bundle: {c}")
        if ws.unpack:
            status.info(f"unpacked {ws.unpack.layers} layers, {ws.unpack.files} files")
            for n in ws.unpack.neutralized:
                status.warn(n)
        rec, res, why = _learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=duration)
        status.info(why)
        if res.stdout:
            status.info("container stdout: " + res.stdout.strip()[-500:])
        if res.stderr:
            status.info("container stderr: " + res.stderr.strip()[-500:])
        return rec


def verify_container(*, bundle: str | None, image: str | None, profile_path: str, runtime: str,
                     args: Sequence[str], network: str = "loopback", duration: float = 120) -> VerifyResult:
    """Run the container under runc with the profile's filter and capabilities: complain run, then enforce run."""
    from .enforce.verify import verify
    from .oci.workspace import open_workspace

    profile = Profile.load(profile_path)
    runc = _runc()
    with open_workspace(image=image, bundle=bundle, args=args, network=network) as ws:
        return verify(runc, ws.bundle, ws.conf, profile, runtime=runtime, timeout=duration)


def review_image(*, image: str, profile_path: str | None, args: Sequence[str], backend: str, runtime: str,
                 network: str = "loopback", status: Status = Quiet) -> dict:
    """The security review of a container image: learn it (or use PROFILE), prove the capability set by a run
    with exactly those capabilities, scan the rootfs. The report (learner/image_review.py)."""
    from .enforce.verify import verify
    from .learner.image_review import build_report
    from .learner.review import review as profile_review
    from .oci.image import scan_rootfs
    from .oci.workspace import open_workspace
    from .tracer.container import learn_container as _learn_container

    runc = _runc()
    with open_workspace(image=image, args=args, network=network) as ws:
        scan = scan_rootfs(ws.rootfs)   # before anything runs in it
        learn_exit = None
        if profile_path:
            profile = Profile.load(profile_path)
        else:
            rec, res, why = _learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=120)
            status.info(why)
            learn_exit = res.exit_status
            profile, _ = aggregate.add_recording(None, rec)
        # prove the capability set: run under the profile with exactly the learned capabilities
        v = verify(runc, ws.bundle, ws.conf, profile, runtime=runtime)
        report = build_report(image=image, name=ws.name, conf=ws.conf, profile=profile, unpack=ws.unpack,
                              rootfs=ws.rootfs, runtime=runtime, caps_proved=bool(v.ok), learn_exit=learn_exit,
                              scan=scan)
        report["verify"] = v.to_json()
        try:
            report["profile_review"] = profile_review(profile)
        except Exception as exc:  # noqa: BLE001 - the learner's review is an extra
            report["profile_review"] = {"error": str(exc)}
    return report
