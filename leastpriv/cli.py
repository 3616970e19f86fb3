"""Command line: parse, call the packages, render. No logic of its own.

Exit codes (README has the table): a command's own status for learn/run
(128+N when killed by signal N); 0 ok; 1 check found growth / verify denied;
2 bad input or usage; 126 command not executable; 127 command not found.
"""
from __future__ import annotations

import json
import signal
import sys

import click

from . import __version__
from .errors import UserError
from .ui import console
from .ui.console import escape

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """Turns UserError, click's usage errors (and Ctrl-C outside a trace) into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # file names a program chose need not be UTF-8 (the tracers keep their bytes as surrogates): print
        # them as \udcXX escapes rather than fail on a strict UTF-8 terminal or pipe
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError):
                pass
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:   # bare `leastpriv`: the help
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:   # one line, and where to look, instead of click's three
            where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            console.error(exc.format_message() + where)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            console.error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            console.err.print("leastpriv: interrupted")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            console.error(str(exc))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM/SIGHUP while a container's files exist (app.py)
            signum = getattr(exc, "signum", 2)
            console.err.print(f"leastpriv: interrupted ({signal.Signals(signum).name}); nothing was saved",
                              markup=False)
            sys.exit(128 + signum)
        except BrokenPipeError:
            sys.exit(141)
        except OSError as exc:
            if not exc.filename:   # not about a file the user named: a bug, keep the traceback
                raise
            console.error(f"{exc.filename}: {exc.strerror or exc}")
            sys.exit(2)


class DashDashCommand(click.Command):
    """Remembers whether the arguments had a ``--`` (click drops it): ``check -- CMD`` traces CMD even when it
    is one word, ``check NEW`` reads a file.

    An option leastpriv does not know, before ``--`` (and, for commands that run a COMMAND, before its first
    word), is a usage error (exit 2: ``no such option: --foo``), never taken for the command.
    """

    stop_at_positional = False   # True: the first word that is not an option starts COMMAND (learn ls -la)

    def parse_args(self, ctx, args):
        ctx.meta["leastpriv.dashdash"] = "--" in args
        ctx.meta["leastpriv.after_dashdash"] = tuple(args[args.index("--") + 1:]) if "--" in args else ()
        return super().parse_args(ctx, self._refuse_unknown_options(ctx, args))

    def _refuse_unknown_options(self, ctx, args) -> list[str]:
        """``args``, with a short option of ours that stands alone (``-o FILE``) spelled long (``--output
        FILE``), which click reads the same: it tries every option as a long one first and, for a short one,
        builds a NoSuchOption that imports difflib for its suggestions (~1 ms of every start)."""
        args = list(args)
        opts: dict[str, click.Option] = {}
        for p in self.get_params(ctx):
            if isinstance(p, click.Option):
                for name in (*p.opts, *p.secondary_opts):
                    opts[name] = p
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--":
                return args
            if a.startswith("-") and a != "-":
                name = a.split("=", 1)[0]
                p = opts.get(name)
                attached = "=" in a
                if p is None and not a.startswith("--") and len(a) > 2 and a[:2] in opts:
                    p, attached = opts[a[:2]], not (opts[a[:2]].is_flag or opts[a[:2]].count)   # -oFILE, -ix
                    name = a[:2]
                if p is None:
                    raise click.NoSuchOption(name, possibilities=list(opts), ctx=ctx)
                flag = p.is_flag or p.count
                long = next((o for o in p.opts if o.startswith("--")), None)
                if a == name and len(a) == 2 and a in p.opts and long and (flag or i + 1 < len(args)):
                    args[i] = long
                if not flag and not attached:
                    i += 1   # its value
            elif self.stop_at_positional:
                return args
            i += 1
        return args


class CommandRunner(DashDashCommand):
    """A command that runs COMMAND: options end at ``--`` or at COMMAND's first word."""

    stop_at_positional = True


_FORMAT_TEXT_JSON = click.Choice(["text", "json"])
# click's path types, one instance of each shared by the options (types keep no state): each instance asks
# gettext for its name, a search for message catalogues (~0.9 ms at every start for the ~30 options)
_FILE = click.Path(dir_okay=False)
_EXISTING_FILE = click.Path(dir_okay=False, exists=True)
_DIR = click.Path(file_okay=False)
_EXISTING_DIR = click.Path(file_okay=False, exists=True)
_PATH = click.Path()
_EXISTING = click.Path(exists=True)


def container_options(f):
    """docker run's process options, for learn/verify/review --image (and --bundle)."""
    for dec in reversed([
        click.option("-i", "--interactive", is_flag=True,
                     help="Containers: keep stdin attached (docker run -i); else it reads /dev/null."),
        click.option("-e", "--env", "env", multiple=True, metavar="KEY[=VALUE]",
                     help="Containers: set an environment variable (KEY alone: pass this one's value); "
                          "repeatable."),
        click.option("-w", "--workdir", default=None, metavar="DIR", help="Containers: the process's working "
                                                                          "directory."),
        click.option("-u", "--user", default=None, metavar="USER[:GROUP]",
                     help="Containers: run as this user (name or uid, resolved in the image)."),
        click.option("--entrypoint", default=None, metavar="PROGRAM",
                     help="Containers: replace the image's Entrypoint (its Cmd is then not used; ARGS follow "
                          "PROGRAM)."),
    ]):
        f = dec(f)
    return f


def _given(param: str) -> bool:
    """Was this option on the command line (not its default)?"""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(param) == ParameterSource.COMMANDLINE


def _only_with(option: str, given: bool, applies, where: str) -> None:
    """An option that would be silently ignored is a usage error instead."""
    if given and not applies:
        raise click.UsageError(f"{option}: only with {where}")


def _container_overrides(env, workdir, user, entrypoint, interactive, containers: bool):
    """The docker-run overrides, refused (usage) without a container."""
    given = [n for n, v in (("--env", env), ("--workdir", workdir), ("--user", user), ("--entrypoint", entrypoint),
                            ("--interactive", interactive)) if v]
    if given and not containers:
        raise click.UsageError(f"{', '.join(given)}: only with --image or --bundle (a command run here keeps "
                               "leastpriv's own stdin, environment, directory and user)")
    if not containers:
        return None   # (oci/ is not imported for a command run here)
    from .app import container_overrides
    return container_overrides(env=tuple(env), workdir=workdir, user=user, entrypoint=entrypoint)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="leastpriv")
def main() -> None:
    """Watch a program run and learn the least privilege it needs.

    \b
    Learn (run it a few times, with different inputs):
      leastpriv learn -o app.lp.json -- ./app --serve
    Read it, try it, export it:
      leastpriv show app.lp.json
      leastpriv run --profile app.lp.json -- ./app --serve
      leastpriv export app.lp.json --format docker -o seccomp.json
    In CI, fail when usage grows:
      leastpriv check --baseline app.lp.json -- ./app --selftest
    """


# --------------------------------------------------------------------- learn

@main.command(cls=CommandRunner, context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option("-o", "--output", "output", default="leastpriv.json", show_default=True,
              type=_FILE, help="Profile to write; an existing one gets this run added.")
@click.option("--backend", type=click.Choice(["auto", "ptrace", "ebpf", "seccomp-notify"]), default="auto",
              show_default=True,
              help="How to observe: auto = ebpf when root and bcc are usable, else ptrace (containers: else "
                   "seccomp-notify).")
@click.option("--cpu", default="same", show_default=True, metavar="same|any|N",
              help="ptrace CPU placement: 'same' pins tracer and workload to one CPU (a stop costs ~7 µs "
                   "instead of up to ~90 µs, but the workload gets one CPU); 'any' leaves the scheduler alone.")
@click.option("--pid", type=int, default=None, help="Attach to a running process and its descendants (ebpf).")
@click.option("--cgroup", type=_PATH, default=None, help="Record every process in this cgroup v2 (ebpf).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --pid/--cgroup: stop after SECONDS (default: Ctrl-C).")
@click.option("--save-recording", type=_FILE, default=None,
              help="Also write this run's raw Recording (for merge).")
@click.option("--format", "fmt", type=_FORMAT_TEXT_JSON, default="text", show_default=True,
              help="json: what this run added, as JSON on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--bundle", "bundle", type=_DIR, default=None,
              help="Run this OCI bundle with runc and learn the container (root; ARGS replace process.args).")
@click.option("--image", "image", type=_PATH, default=None,
              help="Unpack this OCI layout / docker-save archive, run it with runc, learn it (ARGS replace Cmd).")
@click.option("--network", type=click.Choice(["loopback", "none"]), default="loopback", show_default=True,
              help="With --image: the container's network namespace (never the host's).")
@click.option("--from-log", "from_log", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              metavar="SOURCE",
              help="Add the seccomp log records (audit type 1326) in SOURCE as a run: audit.log, dmesg, "
                   "journalctl -k, /dev/kmsg, or '-'. Filters: --since, --exe, --comm.")
@click.option("--since", default=None, metavar="TIME", help="--from-log: records from TIME on (ISO time, @EPOCH, "
                                                            "or 30m/2h/1d ago).")
@click.option("--exe", "exes", multiple=True, metavar="GLOB", help="--from-log: keep this executable's records.")
@click.option("--comm", "comms", multiple=True, metavar="GLOB", help="--from-log: keep records of this comm.")
@click.option("--fast", is_flag=True,
              help="Into an existing profile: let the kernel allow, without a stop, the calls the profile "
                   "already explains (the fast gate of check); their counts are not collected.")
@container_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def learn(output, backend, cpu, pid, cgroup, duration, save_recording, as_json, command, bundle=None, image=None,
          network="loopback", from_log=None, since=None, exes=(), comms=(), fast=False, fmt="text",
          interactive=False, env=(), workdir=None, user=None, entrypoint=None):
    """Run COMMAND (or attach) and add what it did to a profile.

    \b
    Examples:
      leastpriv learn -- ls -l /etc
      leastpriv learn -o web.json -- python3 -m http.server 8080
      sudo leastpriv learn --backend ebpf --pid 1234 --duration 60 -o web.json
      sudo leastpriv learn --cgroup /sys/fs/cgroup/system.slice/nginx.service -o nginx.json
      sudo leastpriv learn --image app.tar -o app.json              # OCI layout or docker save, run by runc
      sudo leastpriv learn --image app.tar -e MODE=test -u app -- /app --selftest   # like docker run
      sudo leastpriv learn --bundle ./bundle -o app.json -- /app --selftest
      sudo leastpriv learn --from-log /var/log/audit/audit.log --exe /usr/sbin/nginx --since 1d -o nginx.json
      leastpriv learn --fast -o app.json -- ./app --other-input   # re-learn at near-native speed

    Exits with the workload's exit status (128+N if a signal N killed it).
    Ctrl-C reaches the workload; what was seen until then is saved and marked
    incomplete. A container's stdout and stderr are yours, as with docker run
    (stdin with -i); leastpriv's own lines go to stderr.
    """
    from . import app
    from .launch import resolve_command
    from .learner.profile import Profile
    from .tracer.base import Cgroup, Command, Pid
    from .ui.output import refuse_special

    if save_recording:
        refuse_special(save_recording, "recording")
    as_json = as_json or fmt == "json"
    overrides = _container_overrides(env, workdir, user, entrypoint, interactive, bool(bundle or image))
    _only_with("--duration", duration is not None, pid is not None or cgroup or bundle or image,
               "--pid, --cgroup, --image or --bundle (a command runs until it exits; Ctrl-C stops it)")
    _only_with("--network", _given("network"), bundle or image, "--image or --bundle (a command run here uses "
               "this host's network)")
    command = tuple(command)
    if command and command[0] == "--":
        command = command[1:]
    if from_log or since or exes or comms:   # seccomp log records: app -> tracer/kernlog.py
        if not from_log or command or pid is not None or cgroup or bundle or image or fast:
            raise UserError("learn: --from-log SOURCE takes no command, --pid, --cgroup, --bundle, --image or --fast; "
                            "--since, --exe and --comm need --from-log")
        existing = Profile.load_existing(output)
        rec, report = app.learn_from_log(from_log, since=since, exes=exes, comms=comms)
        for line in report.summary():
            console.info(line)
        _add_run(output, existing, rec, save_recording, as_json)
        sys.exit(0)
    if bundle or image:   # containers: app -> tracer/container.py (ebpf by cgroup, or seccomp-notify)
        if pid is not None or cgroup or fast:
            raise UserError("learn: --bundle/--image cannot be combined with --pid/--cgroup/--fast")
        existing = Profile.load_existing(output)   # fail before running anything
        from .app import learn_container_cmd
        rec = learn_container_cmd(bundle=bundle, image=image, args=command, backend=backend, network=network,
                                  duration=duration, overrides=overrides, stdin=interactive, status=console)
        _add_run(output, existing, rec, save_recording, as_json)
        if rec.interrupted in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):   # leastpriv was told to stop: 128+N, run saved
            sys.exit(128 + signal.Signals[rec.interrupted].value)
        sys.exit(rec.exit_status if rec.exit_status is not None else 0)
    targets = [t for t in (command or None, pid, cgroup) if t is not None]
    if len(targets) != 1:
        raise UserError("learn: give exactly one of -- COMMAND, --pid PID, --cgroup PATH")
    if cpu not in ("same", "any") and not cpu.isdigit():
        raise UserError(f"--cpu: expected same, any or a CPU number, got {cpu!r}")
    target = Command(command) if command else Pid(pid) if pid is not None else Cgroup(cgroup)
    if command:
        resolve_command(command[0])   # 127 / 126 in one line, before anything runs
    chosen = _choose(backend, target, cpu)
    existing = Profile.load_existing(output)   # fail before running anything
    known = None
    if fast:
        if existing is None:
            raise UserError(f"learn --fast: {output} does not exist yet: the fast gate lets the kernel allow what "
                            f"an existing profile explains (learn without --fast first)")
        from .learner.check import known_calls
        known = known_calls(existing)
    rec = _trace(chosen, target, cpu=cpu, duration=duration, known=known)
    if known is not None:
        app.say_fast_gate(rec, "without --fast every call is looked at", console)
    _add_run(output, existing, rec, save_recording, as_json)
    status = rec.exit_status if rec.exit_status is not None else (130 if not rec.complete else 0)
    sys.exit(status)


def _add_run(output, existing, rec, save_recording, as_json):
    from .app import add_run, other_programs
    from .ui.learn import report_learn

    others = other_programs(existing, rec)
    profile, added = add_run(output, existing, rec, save_recording)
    report_learn(output, profile, rec, added, as_json, others=others)


# ---------------------------------------------------------------------- show

@main.command(cls=DashDashCommand, context_settings=CONTEXT)
@click.argument("profile", type=_PATH)
@click.option("--format", "fmt", type=_FORMAT_TEXT_JSON, default="text", show_default=True,
              help="json: the profile as JSON (facts, rules, convergence).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--all", "all_rows", is_flag=True, help="Every file, argument value and endpoint (default: the first "
                                                      "25 of each, and how many more).")
def show(profile, as_json, fmt="text", all_rows=False):
    """Show what a profile (or a recording) holds: runs, syscalls by group, arguments, capabilities, files.

    \b
    Examples:
      leastpriv show app.lp.json
      leastpriv show app.lp.json --all | grep /etc/
      leastpriv show --json app.lp.json | jq '.rules.syscalls'
    """
    from .learner.diff import as_profile
    from .learner.profile import load_profile_or_recording
    from .tracer.recording import Recording

    item = load_profile_or_recording(profile)
    if isinstance(item, Recording):
        console.info(f"{profile} is a recording (one run of {' '.join(item.command)[:60]}), not a profile: shown "
                     f"as the profile it would make (`leastpriv merge {profile} -o PROFILE.json` writes it)")
    p = as_profile(item)
    if as_json or fmt == "json":
        click.echo(json.dumps(p.to_json(), indent=2, sort_keys=True))
        return
    from .ui.show import render
    render(p, profile, all_rows=all_rows)


# ----------------------------------------------------------------------- run

@main.command("run", cls=CommandRunner, context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option("--profile", "profile_path", required=True, type=_FILE,
              help="Profile whose rules confine the command.")
@click.option("--complain", is_flag=True,
              help="Enforce nothing: run everything, then report which syscalls would have been denied (and by "
                   "which executable).")
@click.option("--complain-log", "complain_log", is_flag=True,
              help="Like --complain, but the kernel logs what the profile would deny (SCMP_ACT_LOG, audit type "
                   "1326, as a staged profile in production does); read it back with learn --from-log.")
@click.option("--no-seccomp", is_flag=True, help="Do not install the seccomp filter.")
@click.option("--no-landlock", is_flag=True, help="Do not apply the Landlock file/network rules.")
@click.option("--no-caps", is_flag=True, help="Do not drop capabilities to the learned set.")
@click.option("-o", "--output", "--report", "report", type=_FILE, default=None,
              help="Write what was applied and the denials as JSON to this file (--report: the old name).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_cmd(profile_path, complain, no_seccomp, no_landlock, no_caps, report, command, complain_log=False):
    """Run COMMAND confined by PROFILE, here, to prove the profile before shipping it.

    \b
    Examples:
      leastpriv run --profile app.lp.json -- ./app --serve
      leastpriv run --profile app.lp.json --complain -- ./app --new-feature
      sudo leastpriv run --profile app.lp.json --complain-log -- ./app   # then: learn --from-log /dev/kmsg
      leastpriv run --profile app.lp.json --no-landlock -- ./app
      leastpriv run --profile app.lp.json -o run-report.json -- ./app

    Seccomp denials return EPERM. The filter also allows execve: leastpriv
    installs it just before exec'ing COMMAND. After the run, one line per
    denial names what was denied (seccomp syscall, Landlock path or port,
    capability) and by which executable. Exits with COMMAND's status (128+N
    if signal N killed it); 127 if COMMAND is not found.
    """
    from .enforce.run import RunOptions, run
    from .fileio import dumps
    from .learner.profile import Profile
    from .ui.output import write_output

    command = tuple(command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UserError("run: no command given (leastpriv run --profile P -- CMD ...)")
    profile = Profile.load(profile_path)
    if complain and complain_log:
        raise UserError("run: --complain and --complain-log exclude each other")
    import time
    started = int(time.time())
    result = run(profile, command, RunOptions(complain=complain, log=complain_log, seccomp=not no_seccomp,
                                              landlock=not no_landlock, capabilities=not no_caps))
    for note in result.notes:
        console.warn(note)
    from .ui.run import denial_lines
    for line in denial_lines(result.denials, complain):
        console.warn(line)
    if complain and not result.denials:
        console.info("complain mode: the profile would have denied nothing in this run")
    if complain_log:
        console.info(f"complain-log: the calls the profile would deny went to the kernel log (with auditd: "
                     f"/var/log/audit/audit.log); add them with: sudo leastpriv learn --from-log /dev/kmsg "
                     f"--since @{started} --exe EXE -o {profile_path}")
    if report:
        write_output(report, dumps({"profile": profile_path, "command": list(command), **result.to_json()}))
    sys.exit(result.status)


# -------------------------------------------------------------------- export

EXPORT_FORMATS = ("oci, docker, k8s-seccompprofile, k8s-apparmorprofile, k8s-pod, apparmor, systemd, landlock, "
                  "seccomp-pfc, selinux")


@main.command(context_settings=CONTEXT)
@click.argument("profile_path", metavar="PROFILE", type=_FILE)
@click.option("-f", "--format", "fmt", required=True, metavar="NAME", help=f"One of: {EXPORT_FORMATS}.")
@click.option("-o", "--output", type=_FILE, default=None, help="Write here (default: stdout).")
@click.option("--args", "args_mode", type=click.Choice(["strict", "safe", "off"]), default=None,
              help="Re-derive the argument rules in this mode (default: as learned).")
@click.option("--style", type=click.Choice(["allowlist", "denylist"]), default=None,
              help="allowlist: deny all but what was used; denylist: allow all but the dangerous calls never "
                   "used (default: as learned).")
@click.option("--arch", default=None, metavar="ARCH",
              help="Target architecture (x86_64, aarch64, ...): the profile is translated to it.")
@click.option("--complain", is_flag=True, help="Staging: log instead of deny (SCMP_ACT_LOG, AppArmor complain).")
@click.option("--exact", is_flag=True,
              help="Only the syscalls traced: leave out the harmless siblings (fdatasync next to fsync, ppoll next "
                   "to poll, ...) added by default.")
@click.option("--runtime", default=None, metavar="NAME",
              help="Also allow what this OCI runtime does after installing the filter (none, runc, crun, "
                   "runc+crun; default: runc for oci and k8s-pod, runc+crun for docker and k8s-seccompprofile "
                   "(Docker runs runc, Podman crun), with the base that works without no-new-privileges; "
                   "none for the other formats).")
@click.option("--bundle", type=_EXISTING_DIR, default=None,
              help="oci: update this bundle's config.json in place (atomically).")
@click.option("--name", default="", help="Name of the exported object (SPO profile, AppArmor profile).")
@click.option("--container", default="", help="k8s-pod: the container to write the securityContext for.")
@click.option("--manifest", type=_EXISTING_FILE, default=None,
              help="k8s-pod: patch that container in this YAML (Deployment, Pod, ...; multi-document ok).")
@click.option("--namespace", default="", help="k8s-*: metadata.namespace of the exported objects.")
@click.option("--selinux-policy", type=_DIR, default=None, metavar="DIR",
              help="selinux: the policy whose file labels and port types to use (default: this host's, "
                   "/etc/selinux/<SELINUXTYPE>).")
def export(profile_path, fmt, output, args_mode, style, arch, complain, exact, runtime, bundle, name, container,
           manifest, namespace, selinux_policy):
    """Write a profile in a format that enforces it.

    \b
    Examples:
      leastpriv export app.lp.json --format docker -o seccomp.json
      docker run --security-opt seccomp=seccomp.json ...
      leastpriv export app.lp.json --format oci --bundle ./bundle
      leastpriv export app.lp.json --format docker --complain --args strict
      leastpriv export app.lp.json --format oci --arch aarch64 -o arm64.json
      leastpriv export app.lp.json --format k8s-pod --manifest deploy.yaml --container web
      leastpriv export app.lp.json --format apparmor --name myapp -o /etc/apparmor.d/myapp
      leastpriv export app.lp.json --format systemd -o /etc/systemd/system/app.service.d/leastpriv.conf
      leastpriv export app.lp.json --format selinux --name web -o web.cil   # podman --security-opt label=type:web.process
    """
    from . import app
    from .exporters import base
    from .learner.profile import Profile
    from .ui.output import write_output

    profile = Profile.load(profile_path)
    options = base.ExportOptions(complain=complain, arch=arch, runtime=runtime, args=args_mode, style=style,
                                 exact=exact, name=name, container=container, manifest=manifest, bundle=bundle,
                                 namespace=namespace, extra={"profile_path": profile_path, "selinux_policy": selinux_policy})
    result = app.export(profile, fmt, options)
    for note in result.notes:
        console.info(note)
    if output:
        write_output(output, result.text)
        console.info(f"wrote {output} ({fmt})")
    elif not result.target:
        click.echo(result.text, nl=False)


# ------------------------------------------------------------- containers (app.py, oci/)

@main.command(cls=CommandRunner, context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option("--profile", "profile_path", required=True, type=_FILE, help="The learned profile.")
@click.option("--bundle", type=_EXISTING_DIR, default=None, help="An OCI bundle to run.")
@click.option("--image", type=_EXISTING, default=None, help="An OCI layout or docker-save archive.")
@click.option("--runtime", type=click.Choice(["runc", "crun", "none"]), default="runc", show_default=True,
              help="Runtime base added to the filter (none: only what the workload needs; runc then fails to start).")
@click.option("--network", type=click.Choice(["loopback", "none"]), default="loopback", show_default=True)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=120, show_default=True,
              help="Stop each run after SECONDS (SIGTERM; for servers) and compare how both runs ended.")
@click.option("--format", "fmt", type=_FORMAT_TEXT_JSON, default="text", show_default=True,
              help="json: the verdict as JSON on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@container_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def verify(profile_path, bundle, image, runtime, network, duration, as_json, args, fmt="text", interactive=False,
           env=(), workdir=None, user=None, entrypoint=None):
    """Run a container under runc with the profile's seccomp filter and capabilities: does it still work?

    \b
    First a complain run (every call the filter would deny goes to leastpriv, is
    named, and runs), then an enforce run with exactly the exported filter,
    the learned capabilities and noNewPrivileges.
    Exit 0: it works; 1: denied (the syscall is named); 2: error. The enforced
    run's stdout and stderr are yours, as with docker run (stdin with -i).

    \b
    Examples:
      sudo leastpriv verify --image app.tar --profile app.lp.json
      sudo leastpriv verify --bundle ./bundle --profile app.lp.json --json
      sudo leastpriv verify --image app.tar --profile app.lp.json --runtime none   # shows runc's own needs
      sudo leastpriv verify --image app.tar --profile app.lp.json -e MODE=test -- /app --selftest
    """
    from .app import verify_cmd
    from .ui.verify import render_verify

    overrides = _container_overrides(env, workdir, user, entrypoint, interactive, True)
    args = tuple(args)
    if args and args[0] == "--":
        args = args[1:]
    as_json = as_json or fmt == "json"
    res = verify_cmd(bundle=bundle, image=image, profile_path=profile_path, runtime=runtime, args=args,
                     as_json=as_json, network=network, duration=duration, overrides=overrides, stdin=interactive,
                     status=console)
    sys.exit(render_verify(res, as_json))


# ------------------------------------------------------------- merge / check / diff / review

@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=_FILE, metavar="INPUT...")
@click.option("-o", "--output", required=True, type=_FILE,
              help="Profile to write (may be one of the inputs).")
@click.option("--format", "fmt", type=_FORMAT_TEXT_JSON, default="text", show_default=True,
              help="json: a summary as JSON on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def merge(inputs, output, as_json, fmt="text"):
    """Merge profiles and recordings (other machines, replicas, containers) into one profile.

    Runs keep their order; each run keeps what it was first to add. Merging
    recordings gives the same profile as learning them one after another.

    \b
    Examples:
      leastpriv merge web-a.json web-b.json -o web.json
      leastpriv learn --save-recording run1.rec.json -o scratch.json -- ./app
      leastpriv merge baseline.json run1.rec.json -o baseline.json
    """
    from . import app
    from .text import plural
    from .ui.output import refuse_special

    refuse_special(output, "profile")
    profile, summary = app.merge(inputs, output)
    if as_json or fmt == "json":
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    nruns, rare = summary["runs"], summary["seen_in_one_run_only"]
    console.info(f"merged {plural(len(inputs), 'input')} -> {output}: {plural(nruns, 'run')}, "
                 f"{profile.runs_without_growth} trailing {'run' if profile.runs_without_growth == 1 else 'runs'} "
                 f"added nothing")
    if rare:
        console.warn(f"seen in only one of {nruns} runs (look at these): {escape(', '.join(rare))}")


def _choose(backend, target, cpu="same"):
    from . import app

    return app.choose_backend(backend, target, cpu, status=console)


def _trace(chosen, target, **options):
    """Trace with a live status line; the Recording."""
    from .tracer.base import Command, Pid, TraceOptions

    shares = isinstance(target, Command) or (isinstance(target, Pid) and
                                             console.workload_shares_terminal(target.pid))
    def waiting(status: int, procs: list[tuple[int, str]]) -> None:
        n = len(procs)
        console.info(f"the command exited ({status}); still tracing {n} process{'es' * (n != 1)} it left running: "
                     + ", ".join(f"{pid} {exe}" for pid, exe in procs[:5]) + (" ..." if n > 5 else "")
                     + " (the run ends when they exit; Ctrl-C ends it now)")

    with console.live_status("learning", shares_terminal=shares) as progress:
        return chosen.trace(target, TraceOptions(progress=progress, waiting=waiting, **options))


@main.command(cls=DashDashCommand, context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option("--baseline", required=True, type=_FILE, help="The committed profile.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "rich", "json", "junit", "sarif", "github"]),
              default="text", show_default=True, help="Report format (text: for people; rich is the same).")
@click.option("-o", "--output", type=_FILE, default=None,
              help="Write the report here instead of stdout (e.g. report.xml for a CI test tab).")
@click.option("--only", default=",".join(("syscall", "arg", "capability", "file", "exec", "network", "family",
                                          "unknown_syscall")), show_default=True,
              help="Kinds of growth that fail the check (comma-separated).")
@click.option("--ignore-path", "ignore_paths", multiple=True, metavar="GLOB",
              help="Paths to leave out of the comparison (repeatable), e.g. '/tmp/*'.")
@click.option("--backend", type=click.Choice(["auto", "ptrace", "ebpf"]), default="auto", show_default=True,
              help="With -- CMD: how to observe it.")
@click.option("--save-recording", type=_FILE, default=None,
              help="With -- CMD: also write the new run's Recording (to merge it into the baseline later).")
@click.option("--full-trace", is_flag=True,
              help="With -- CMD: stop at every call (counts everything) instead of the fast gate, which lets "
                   "the kernel allow the calls the baseline already explains.")
@click.option("--strict", is_flag=True,
              help="Fail on any new fact, also one the policy already allows (a harmless sibling, a path "
                   "matching a pattern).")
@click.argument("new", nargs=-1, type=click.UNPROCESSED, metavar="NEW | -- CMD...")
def check(baseline, fmt, output, only, ignore_paths, backend, save_recording, new, full_trace=False, strict=False):
    """Fail (exit 1) when the workload uses more than its baseline profile.

    NEW is a profile or a recording; with -- CMD the command is traced first
    (like learn) and then compared. Exit 0: nothing grew; 1: something grew
    (syscall, argument value, capability, path, executable, network endpoint,
    socket family) that the profile's policy would deny; 2: error. New facts
    the policy already allows (a harmless sibling, a new temporary name that
    matches a path pattern, a path beneath an owned directory) are listed and
    exit 0; --strict fails on them too. Growth in a dangerous syscall or capability is
    called out. With -- CMD the workload's own output goes to stdout as well:
    write machine formats with -o FILE.

    Fast gate (with -- CMD, unless --full-trace): a seccomp filter (ptrace)
    or an in-kernel bitmap (eBPF) lets the calls the baseline already
    explains run without being looked at; only unseen syscalls, new
    argument values, paths, addresses and execs are traced. Growth is found
    the same way; counts of the allowed calls are not collected, and that
    the run stopped using them is not reported.

    \b
    Examples:
      leastpriv check --baseline app.lp.json -- ./app --selftest
      leastpriv check --baseline app.lp.json new.json -f junit -o leastpriv.xml
      leastpriv check --baseline app.lp.json -f sarif -o leastpriv.sarif -- ./app
      leastpriv check --baseline app.lp.json -f github -- ./app   # GitHub annotations
    """
    from . import app
    from .ui import formats
    from .ui.check import render_check
    from .ui.output import refuse_special, write_output

    args = tuple(new)
    dashdash = click.get_current_context().meta.get("leastpriv.dashdash", False)
    if args and args[0] == "--":
        args, dashdash = args[1:], True
    try:
        if save_recording:
            refuse_special(save_recording, "recording")
        result = app.check(baseline, args, command=dashdash or len(args) > 1, backend=backend,
                           full_trace=full_trace, save_recording=save_recording,
                           kinds=[k.strip() for k in only.split(",") if k.strip()], ignore_paths=ignore_paths,
                           strict=strict, run=_trace, status=console)
    except UserError as exc:
        console.error(str(exc))
        sys.exit(2)   # check's contract: 0 nothing grew, 1 grew, 2 anything else (CI must not read it as growth)
    except Exception as exc:  # noqa: BLE001 - a CI gate must say "error" (2), never "grew" (1)
        console.error(f"check failed: {type(exc).__name__}: {exc}")
        sys.exit(2)
    if fmt in ("text", "rich"):
        if output:
            import io

            from rich.console import Console
            buf = io.StringIO()
            render_check(result, baseline, Console(file=buf, highlight=False, soft_wrap=True))
            write_output(output, buf.getvalue())
        else:
            render_check(result, baseline)
    else:
        text = formats.RENDER[fmt](result, baseline)
        if output:
            write_output(output, text)
        else:
            click.echo(text, nl=not text.endswith("\n"))
    if result["dangerous"]:
        console.warn(f"dangerous growth: {', '.join(c['label'] for c in result['dangerous'])}")
    sys.exit(1 if result["grew"] else 0)


@main.command(context_settings=CONTEXT)
@click.argument("old", type=_FILE)
@click.argument("new", type=_FILE)
@click.option("--format", "fmt", type=_FORMAT_TEXT_JSON, default="text", show_default=True,
              help="json: the diff as JSON on stdout.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--ignore-path", "ignore_paths", multiple=True, metavar="GLOB", help="Paths to leave out (repeatable).")
def diff(old, new, as_json, ignore_paths, fmt="text"):
    """Added and removed syscalls, argument values, capabilities, paths, network, with counts.

    OLD and NEW are profiles or recordings.

    \b
    Examples:
      leastpriv diff app.lp.json app.new.json
      leastpriv diff --json v1.json v2.json | jq '.summary'
    """
    from .learner.diff import diff as do_diff
    from .learner.profile import load_profile_or_recording
    from .ui.check import render_diff

    d = do_diff(load_profile_or_recording(old), load_profile_or_recording(new), ignore_paths)
    if as_json or fmt == "json":
        click.echo(json.dumps({"old": old, "new": new, **d}, indent=2, sort_keys=True))
        return
    render_diff(d, old, new)


@main.command(cls=DashDashCommand, context_settings=CONTEXT)
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="[PROFILE] [-- ARGS...]")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "rich", "json", "markdown"]), default="text",
              show_default=True, help="Report format (text: for people; rich is the same).")
@click.option("-o", "--output", type=_FILE, default=None,
              help="Write the report here instead of stdout.")
@click.option("--arch", default=None, metavar="ARCH", help="Architecture to compare with Docker's default "
                                                          "(default: the one the profile was learned on).")
@click.option("--image", type=_EXISTING, default=None,
              help="Review a container image (OCI layout / docker-save archive): learn it under runc (or use "
                   "PROFILE), prove the capability set, scan the rootfs (root; see README ## Containers).")
@click.option("--backend", type=click.Choice(["auto", "ebpf", "seccomp-notify"]), default="auto", show_default=True,
              help="With --image: how to learn the container.")
@container_options
def review(words, fmt, arch, image=None, backend="auto", output=None, interactive=False, env=(), workdir=None,
           user=None, entrypoint=None):
    """The risk report for a security review of a profile.

    Dangerous syscalls, argument values and capabilities in use (each with why
    and a known CVE or exploit class), the comparison with Docker's default
    seccomp profile, the Pod Security Standard level of the exported
    securityContext, and what each policy style leaves open.

    \b
    Examples:
      leastpriv review app.lp.json
      leastpriv review app.lp.json --format markdown > REVIEW.md
      leastpriv review app.lp.json --format json | jq '.docker'
      sudo leastpriv review --image app.tar -f json -o review.json
      sudo leastpriv review --image app.tar -e MODE=test -- /app --selftest   # like docker run IMAGE ARGS

    With --image, the learning run's stdout and stderr are yours, as with
    docker run (stdin with -i).
    """
    from .kernel import syscalls
    from .learner.diff import as_profile
    from .learner.profile import load_profile_or_recording
    from .learner.review import review as do_review
    from .ui.output import emit_report

    after = click.get_current_context().meta.get("leastpriv.after_dashdash", ())
    words = tuple(words)
    before = words[:len(words) - len(after)] if after else words
    if len(before) > 1:
        raise click.UsageError(f"review: one PROFILE at most (got {', '.join(before)}); container ARGS go after --")
    profile_path = before[0] if before else None
    overrides = _container_overrides(env, workdir, user, entrypoint, interactive, bool(image))
    if after and not image:
        raise click.UsageError("review: ARGS after -- are for --image (they replace the image's Cmd)")
    if image:   # container image review: app.review_image_cmd
        from .app import review_image_cmd
        from .ui.image_review import emit
        report = review_image_cmd(image=image, profile_path=profile_path, args=tuple(after), fmt=fmt,
                                  backend=backend, runtime="runc", overrides=overrides, stdin=interactive,
                                  output=output, status=console)
        emit(report, fmt, output)
        return
    if not profile_path:
        raise UserError("review: give a PROFILE or --image IMAGE")
    p = as_profile(load_profile_or_recording(profile_path))   # a recording reviews as a one-run profile
    if arch is not None:
        if arch not in syscalls.arches():
            raise UserError(f"--arch: unknown architecture {arch!r} (known: {', '.join(syscalls.arches())})")
    r = do_review(p, arch)
    if fmt == "json":
        emit_report(output, json.dumps({"profile": profile_path, **r}, indent=2, sort_keys=True))
    elif fmt == "markdown":
        from .ui.review import to_markdown
        emit_report(output, to_markdown(r, profile_path))
    else:
        from .ui.review import render_rich
        emit_report(output, render=lambda con: render_rich(r, profile_path, con))


@main.command(context_settings=CONTEXT)
@click.argument("profile_path", metavar="[PROFILE]", type=_FILE, required=False)
@click.option("--exe", "exes", multiple=True, type=_FILE, metavar="PATH",
              help="Analyse this executable instead of a profile's (repeatable).")
@click.option("--dlopen", "dlopens", multiple=True, type=_FILE, metavar="PATH",
              help="With --exe: a shared object it loads at run time (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["rich", "json"]), default="rich", show_default=True)
@click.option("-o", "--output", type=_FILE, default=None, help="Write here (default: stdout).")
def reach(profile_path, exes, dlopens, fmt, output):
    """How much did the trace see? The syscalls the code that ran could reach (static analysis).

    For each executable of PROFILE (or each --exe): the executable, its interpreter, its DT_NEEDED
    libraries, the shared objects the runs opened (dlopen), the NSS modules and the vDSO are
    disassembled (x86-64) and joined into one call graph; the syscalls reachable from the entry
    point are an upper bound. "missed" lists syscalls a run made that the analysis calls
    unreachable (a soundness bug, or an object it could not analyse). Results per object are
    cached by build-id in ~/.cache/leastpriv/reach/.

    \b
    Examples:
      leastpriv reach app.lp.json
      leastpriv reach app.lp.json --format json | jq '.executables[].dangerous_reachable'
      leastpriv reach --exe /usr/sbin/nginx --format json -o nginx.reach.json
    """
    from . import app
    from .fileio import write_atomic
    from .reach.coverage import section_of, to_json
    from .ui.console import live_status
    from .ui.output import write_output
    from .ui.reach import render_section

    with live_status("static reachability (first time per build-id: seconds)"):
        cov = app.reach(profile_path, exes, dlopens)
    if fmt == "json":
        text = json.dumps(to_json(cov), indent=2, sort_keys=True) + "\n"
        if output:
            write_atomic(output, text)
        else:
            click.echo(text, nl=False)
        return
    if output:
        import io
        from rich.console import Console
        buf = io.StringIO()
        render_section(section_of(cov), "reach", Console(file=buf, no_color=True, width=100, soft_wrap=True))
        write_output(output, buf.getvalue())
    else:
        render_section(section_of(cov), "reach")


if __name__ == "__main__":  # pragma: no cover
    main()
