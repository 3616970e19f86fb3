"""The use cases: what a command does, between parsing (cli.py) and rendering (ui/).

learn (add a run to a profile), and the container use cases: learn a container,
verify a profile under runc, review an image.
"""
from __future__ import annotations

import json
from typing import Sequence

from .errors import UserError
from .ui import console


def add_run(output: str, existing, rec, save_recording: str | None):
    """Add a Recording to the profile at ``output`` (``existing``: its loaded content, or None), save it
    (first: a bad --save-recording path must not lose the run), then the Recording if asked.

    Returns (profile, what this run added).
    """
    from .learner import aggregate

    profile, added = aggregate.add_recording(existing, rec)
    profile.save(output)
    if save_recording:
        rec.save(save_recording)
    return profile, added


def other_programs(existing, rec) -> list[str]:
    """The programs ``existing`` was learned from, when ``rec`` runs another one (else [])."""
    from .learner import aggregate

    return aggregate.other_programs(existing, rec)


def learn_from_log(source: str, *, since: str | None = None, exes: Sequence[str] = (), comms: Sequence[str] = ()):
    """learn --from-log: the seccomp log records in SOURCE that the filters keep, as a Recording of kind log,
    and the report of what was read and left out."""
    from .tracer import kernlog

    filt = kernlog.LogFilter(since=kernlog.parse_since(since) if since else None, exe=tuple(exes),
                             comm=tuple(comms))
    return kernlog.load(source, filt)


def _runc():
    from .oci.runc import Runc

    ok, why = Runc.usable()
    if not ok:
        raise UserError(f"containers: {why}")
    return Runc()


def learn_container_cmd(*, bundle: str | None, image: str | None, args: Sequence[str], backend: str,
                        network: str = "loopback", duration: float | None = None):
    from .tracer.container import learn_container
    from .oci.workspace import open_workspace

    if backend == "ptrace":
        raise UserError("--backend ptrace: cannot attach to a runc container (use ebpf or seccomp-notify; see README "
                        "## Containers)")
    runc = _runc()
    with open_workspace(image=image, bundle=bundle, args=args, network=network) as ws:
        for c in ws.changes:
            console.info(f"bundle: {c}")
        if ws.unpack:
            console.info(f"unpacked {ws.unpack.layers} layers, {ws.unpack.files} files")
            for n in ws.unpack.neutralized:
                console.warn(n)
        rec, res, why = learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=duration)
        console.info(why)
        if res.stdout:
            console.info("container stdout: " + res.stdout.strip()[-500:])
        if res.stderr:
            console.info("container stderr: " + res.stderr.strip()[-500:])
        return rec


def verify_cmd(*, bundle: str | None, image: str | None, profile_path: str, runtime: str, args: Sequence[str],
               as_json: bool, network: str = "loopback", duration: float = 120) -> int:
    from .learner.profile import Profile
    from .enforce.verify import verify
    from .oci.workspace import open_workspace

    profile = Profile.load(profile_path)
    runc = _runc()
    with open_workspace(image=image, bundle=bundle, args=args, network=network) as ws:
        res = verify(runc, ws.bundle, ws.conf, profile, runtime=runtime, timeout=duration)
    if as_json:
        console.out.print_json(json.dumps(res.to_json()))
    for d in res.denials:
        if d.name.startswith("CAP_"):
            console.err.print(f"[red]denied[/] {d.name} to the {d.by}: {d.why}", highlight=False)
        else:
            console.err.print(f"[red]denied[/] {d.name} ({d.arch}) by the {d.by}: {d.why}, {d.count} call"
                              f"{'s' * (d.count != 1)}", highlight=False)
    for m in res.messages:
        console.warn(m)
    if res.ok:
        e = res.enforce
        console.info(f"verified under runc with runtime base {res.runtime!r}: the container ran with the profile's "
                     f"seccomp filter and capabilities [{', '.join(res.capabilities) or 'none'}] and exited "
                     f"{e.exit_status if e else '?'}")
        return 0
    console.err.print("[red]leastpriv: verify: FAILED[/]")
    return 1


def review_image_cmd(*, image: str, profile_path: str | None, args: Sequence[str], fmt: str, backend: str,
                     runtime: str, network: str = "loopback") -> None:
    from .learner import aggregate
    from .learner.profile import Profile
    from .tracer.container import learn_container
    from .ui.image_review import build_report, markdown, render
    from .enforce.verify import verify
    from .oci.workspace import open_workspace

    runc = _runc()
    with open_workspace(image=image, args=args, network=network) as ws:
        from .ui.image_review import scan_rootfs
        scan = scan_rootfs(ws.rootfs)   # before anything runs in it
        learn_exit = None
        if profile_path:
            profile = Profile.load(profile_path)
        else:
            rec, res, why = learn_container(runc, ws.bundle, ws.conf, ws.target, backend, timeout=120)
            console.info(why)
            learn_exit = res.exit_status
            profile, _ = aggregate.add_recording(None, rec)
        # prove the capability set: run under the profile with exactly the learned capabilities
        v = verify(runc, ws.bundle, ws.conf, profile, runtime=runtime)
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
    if fmt == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    elif fmt == "markdown":
        print(markdown(report))
    else:
        render(report)
