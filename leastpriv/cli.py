"""Command line: parse, call the packages, render. No logic of its own.

Each command is one function below, its arguments in the ``@command(arg(...), ...)`` above it (as
argparse's add_argument takes them) and its help in its docstring; the function gets the parsed
``argparse.Namespace``. The standard library's argparse, not click: click and what it imports
(inspect, uuid, platform, datetime, difflib, ...) cost every leastpriv start ~10 ms.

Exit codes (README has the table): a command's own status for learn/run
(128+N when killed by signal N); 0 ok; 1 check found growth / verify denied;
2 bad input or usage; 126 command not executable; 127 command not found.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys

from . import __version__
from .errors import UserError
from .ui import console
from .ui.console import escape

# argparse looks each of its own words ("usage: ", "options", its error formats) up in gettext's catalogs
# every time it builds a parser or an error: gettext then imports locale and probes the .mo paths of
# $LANGUAGE/$LC_ALL/$LANG, remembering nothing when there is none (Python ships no catalog for argparse):
# ~1 ms of every start, for nothing. leastpriv speaks English; so does its argument parser.
argparse._ = str
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural

SUMMARY = """Watch a program run and learn the least privilege it needs.

    Learn (run it a few times, with different inputs):
      leastpriv learn -o app.lp.json -- ./app --serve
    Read it, try it, export it:
      leastpriv show app.lp.json
      leastpriv run --profile app.lp.json -- ./app --serve
      leastpriv export app.lp.json --format docker -o seccomp.json
    In CI, fail when usage grows:
      leastpriv check --baseline app.lp.json -- ./app --selftest
    """


# -------------------------------------------------------------------- parsing

class UsageError(Exception):
    """A bad command line: one line naming the problem, then where to look (``--help``); exit 2."""


COMMANDS: dict[str, tuple] = {}   # name -> (function, its arguments, runs a COMMAND)


def arg(*names: str, **kw) -> tuple:
    """One option or operand of a command: argparse's add_argument(*names, **kw)."""
    return names, kw


def command(*arguments: tuple, name: str | None = None, runs_command: bool = False):
    """The decorated function is the command ``name`` (default: the function's name), with these arguments.

    ``runs_command``: the command runs a COMMAND, whose first word ends leastpriv's options (``learn ls -la``).
    """
    def register(fn):
        COMMANDS[name or fn.__name__] = (fn, arguments, runs_command)
        return fn
    return register


class Parser(argparse.ArgumentParser):
    """argparse, with the command-line grammar of getopt (and of click before it):

    - Options end at ``--`` and, for a command that runs a COMMAND, at COMMAND's first word:
      ``learn -o p.json ls -la`` traces ``ls -la``; ``learn -- ls --foo`` hands ``--foo`` to ls.
    - Before that, an option leastpriv does not know is a usage error (``No such option '--foo'``), never
      taken for the command; long options are never abbreviated.
    - An option's value is the next word even when it starts with ``-`` (``-o -x.json``, ``--cpu -1``); argparse
      alone would call ``-x.json`` an option. ``-oFILE``, ``--output=FILE`` and ``-ih`` (flags) work as usual.
    - An error raises UsageError (one line) instead of printing the usage and exiting.
    """

    def __init__(self, *, runs_command: bool = False, **kw):
        super().__init__(add_help=False, allow_abbrev=False, formatter_class=HelpFormatter, **kw)
        self.runs_command = runs_command
        self.options = self.add_argument_group("Options")

    def error(self, message: str):
        # _split refused the unknown options: what argparse has left over is an operand too many
        raise UsageError(message.replace("unrecognized arguments:", "unexpected extra arguments:"))

    def parse(self, args: list[str]) -> argparse.Namespace:
        """The parsed ``args``, with three more attributes: ``given`` (the dests of the options on the command
        line, not defaulted), ``dashdash`` (whether ``--`` ended the options) and ``after`` (the words after the
        options' end: COMMAND for a command that runs one, else the words after ``--``)."""
        words, operands, after, dashdash, given = self._split(args)
        ns = self.parse_args([*words, "--", *operands, *after])   # argparse sees options, then operands only
        for k, v in vars(ns).items():
            if isinstance(v, list):
                setattr(ns, k, tuple(v))
        ns.given, ns.dashdash, ns.after = frozenset(given), dashdash, tuple(after)
        return ns

    def _split(self, args: list[str]):
        """(options, each with its value joined as ``--name=value``; operands; the words after the options' end;
        was there a ``--``; the dests given)."""
        words: list[str] = []
        operands: list[str] = []
        given: set[str] = set()
        i = 0
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                return words, operands, args[i:], True, given
            if not a.startswith("-") or a == "-":
                if self.runs_command:
                    return words, operands, args[i - 1:], False, given
                operands.append(a)
            elif a.startswith("--"):
                name, eq, _ = a.partition("=")
                action = self._known(name)
                given.add(action.dest)
                if action.nargs == 0 or eq or i == len(args):   # a flag, --name=value, or argparse says "expected"
                    words.append(a)
                else:
                    words.append(f"{name}={args[i]}")
                    i += 1
            else:   # -x: flags may share one dash (-ih); a value follows its letter (-oFILE) or is the next word
                for j in range(1, len(a)):
                    action = self._known("-" + a[j])
                    given.add(action.dest)
                    if action.nargs == 0:
                        words.append("-" + a[j])
                        continue
                    long = next(s for s in action.option_strings if s.startswith("--"))
                    if j + 1 < len(a):   # -oVALUE
                        words.append(f"{long}={a[j + 1:]}")
                    elif i < len(args):   # -o VALUE
                        words.append(f"{long}={args[i]}")
                        i += 1
                    else:   # argparse says "expected one argument"
                        words.append(long)
                    break
        return words, operands, [], False, given

    def _known(self, name: str) -> argparse.Action:
        action = self._option_string_actions.get(name)
        if action is None:
            from difflib import get_close_matches   # only on this error: difflib costs every start ~1 ms
            close = get_close_matches(name, [s for s in self._option_string_actions if s.startswith("--")])
            hint = f" Did you mean {close[0]!r}?" if len(close) == 1 else \
                f" (Did you mean one of: {', '.join(map(repr, sorted(close)))}?)" if close else ""
            raise UsageError(f"No such option {name!r}.{hint}")
        return action


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``-h``: ``Usage:``, the docstring as written (indented two), each option's default or [required] after its
    help, 100 columns at most."""

    def __init__(self, prog: str):
        # argparse makes a formatter for every add_argument (to check the metavar): the terminal's width, and
        # shutil (~2 ms to import), only when help is printed
        super().__init__(prog, max_help_position=34, width=98)

    def format_help(self) -> str:
        import shutil

        self._width = min(100, shutil.get_terminal_size().columns) - 2
        self._max_help_position = min(34, max(self._width - 20, 4))
        return super().format_help()

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)

    def _format_action_invocation(self, action: argparse.Action) -> str:   # -o, --output FILE
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return f"{', '.join(action.option_strings)} {self._format_args(action, action.dest.upper())}"

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.required and action.option_strings:
            text += "  [required]"
        elif (action.option_strings and isinstance(default, (str, int, float)) and not isinstance(default, bool)
              and default not in ("", argparse.SUPPRESS)):
            text += "  [default: %(default)s]"
        return text


def _doc(text: str) -> str:
    """A docstring as help text: its first line, then the rest dedented, everything indented by two."""
    first, _, rest = text.strip("\n").partition("\n")
    lines = rest.rstrip().splitlines()
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "\n".join("  " + ln if ln.strip() else "" for ln in [first.strip(), *(ln[indent:] for ln in lines)])


def _top_parser() -> Parser:
    """``leastpriv [OPTIONS] COMMAND [ARGS]...``"""
    summaries = "\n".join(f"  {n:<8}{COMMANDS[n][0].__doc__.strip().splitlines()[0]}" for n in sorted(COMMANDS))
    p = Parser(prog="leastpriv", runs_command=True, usage="%(prog)s [OPTIONS] COMMAND [ARGS]...",
               description=_doc(SUMMARY), epilog=f"Commands:\n{summaries}")
    p.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    p.options.add_argument("--version", action="version", version=f"leastpriv, version {__version__}",
                           help="Show the version and exit.")
    p.options.add_argument("-h", "--help", action="help", help="Show this message and exit.")
    return p


def _command_parser(name: str) -> Parser:
    """The parser of one command, made from its registration (only the command run is ever built)."""
    fn, arguments, runs_command = COMMANDS[name]
    p = Parser(prog=f"leastpriv {name}", runs_command=runs_command, description=_doc(fn.__doc__))
    operands = []
    for names, kw in arguments:
        if names[0].startswith("-"):
            p.options.add_argument(*names, **kw)
        else:   # in the usage line (click's way: METAVAR as given, else NAME, [NAME]... for nargs="*")
            word = names[0].upper()
            operands.append(kw.get("metavar") or {"*": f"[{word}]...", "+": f"{word}...", "?": f"[{word}]"}
                            .get(kw.get("nargs"), word))
            p.add_argument(*names, help=argparse.SUPPRESS, **{"metavar": word, **kw})
    p.options.add_argument("-h", "--help", action="help", help="Show this message and exit.")
    p.usage = " ".join(["%(prog)s [OPTIONS]", *operands])
    return p


def path(*, file_ok: bool = True, dir_ok: bool = True, exists: bool = False, dash: bool = False):
    """An argument type: a path, refused (usage) when it names the wrong kind of file or does not exist."""
    def check(value: str) -> str:
        if dash and value == "-":
            return value
        import stat

        try:
            mode = os.stat(value).st_mode
        except OSError:
            if exists:
                raise argparse.ArgumentTypeError(f"Path {value!r} does not exist.") from None
            return value
        kind = "Directory" if stat.S_ISDIR(mode) else "File"
        if not dir_ok and stat.S_ISDIR(mode):
            raise argparse.ArgumentTypeError(f"File {value!r} is a directory.")
        if not file_ok and not stat.S_ISDIR(mode):
            raise argparse.ArgumentTypeError(f"Directory {value!r} is a file.")
        if not os.access(value, os.R_OK):
            raise argparse.ArgumentTypeError(f"{kind} {value!r} is not readable.")
        return value
    check.__name__ = "path"
    return check


def seconds(value: str) -> float:
    """An argument type: a duration in seconds, > 0."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds.") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"{x} is not in the range x>0.")
    return x


# ----------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    """``leastpriv ARGS``: parse, run the command, exit with its status (raises SystemExit, never returns).

    A usage error, UserError, Ctrl-C (or SIGTERM/SIGHUP while a container's files exist, app.py) and an
    OSError about a file the user named become one line on stderr and the exit code of README's table.
    """
    # file names a program chose need not be UTF-8 (the tracers keep their bytes as surrogates): print
    # them as \udcXX escapes rather than fail on a strict UTF-8 terminal or pipe
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    args = sys.argv[1:] if argv is None else list(argv)
    prog = "leastpriv"
    try:
        top = _top_parser()
        words = top.parse(args).command
        if not words:   # bare `leastpriv`: the help
            top.print_help(sys.stderr)
            sys.exit(2)
        if words[0] not in COMMANDS:
            raise UsageError(f"No such command {words[0]!r}.")
        parser = _command_parser(words[0])
        prog = parser.prog
        parsed = parser.parse(list(words[1:]))
        if words[0] != "learn":   # start-up ran without the cycle collector (__main__.run); learn decides itself
            gc.enable()
        COMMANDS[words[0]][0](parsed)
    except UsageError as exc:   # one line, and where to look
        console.error(f"{exc} (see: {prog} --help)")
        sys.exit(2)
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
    sys.exit(0)


def _echo(text: str, nl: bool = True) -> None:
    """A result on stdout."""
    sys.stdout.write(text + "\n" if nl else text)
    sys.stdout.flush()


FORMAT_TEXT_JSON = {"choices": ["text", "json"], "default": "text"}

CONTAINER_OPTIONS = (   # docker run's process options, for learn/verify/review --image (and --bundle)
    arg("-i", "--interactive", action="store_true",
        help="Containers: keep stdin attached (docker run -i); else it reads /dev/null."),
    arg("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
        help="Containers: set an environment variable (KEY alone: pass this one's value); repeatable."),
    arg("-w", "--workdir", metavar="DIR", help="Containers: the process's working directory."),
    arg("-u", "--user", metavar="USER[:GROUP]", help="Containers: run as this user (name or uid, resolved in the "
                                                     "image)."),
    arg("--entrypoint", metavar="PROGRAM",
        help="Containers: replace the image's Entrypoint (its Cmd is then not used; ARGS follow PROGRAM)."),
)


def _only_with(option: str, given: bool, applies, where: str) -> None:
    """An option that would be silently ignored is a usage error instead."""
    if given and not applies:
        raise UsageError(f"{option}: only with {where}")


def _container_overrides(a: argparse.Namespace, containers: bool):
    """The docker-run overrides (CONTAINER_OPTIONS), refused (usage) without a container."""
    given = [n for n, v in (("--env", a.env), ("--workdir", a.workdir), ("--user", a.user),
                            ("--entrypoint", a.entrypoint), ("--interactive", a.interactive)) if v]
    if given and not containers:
        raise UsageError(f"{', '.join(given)}: only with --image or --bundle (a command run here keeps "
                         "leastpriv's own stdin, environment, directory and user)")
    if not containers:
        return None   # (oci/ is not imported for a command run here)
    from .app import container_overrides
    return container_overrides(env=a.env, workdir=a.workdir, user=a.user, entrypoint=a.entrypoint)


# --------------------------------------------------------------------- learn

@command(
    arg("-o", "--output", default="leastpriv.json", type=path(dir_ok=False), metavar="FILE",
        help="Profile to write; an existing one gets this run added."),
    arg("--backend", choices=["auto", "ptrace", "ebpf", "seccomp-notify"], default="auto",
        help="How to observe: auto = ebpf when root and bcc are usable, else ptrace (containers: else "
             "seccomp-notify)."),
    arg("--cpu", default="same", metavar="same|any|N",
        help="ptrace CPU placement: 'same' pins tracer and workload to one CPU (a stop costs ~7 µs instead of up "
             "to ~90 µs, but the workload gets one CPU); 'any' leaves the scheduler alone."),
    arg("--pid", type=int, help="Attach to a running process and its descendants (ebpf)."),
    arg("--cgroup", type=path(), metavar="PATH", help="Record every process in this cgroup v2 (ebpf)."),
    arg("--duration", type=seconds, metavar="SECONDS",
        help="With --pid/--cgroup: stop after SECONDS (more than 0; default: Ctrl-C)."),
    arg("--save-recording", type=path(dir_ok=False), metavar="FILE",
        help="Also write this run's raw Recording (for merge)."),
    arg("--format", dest="fmt", **FORMAT_TEXT_JSON, help="json: what this run added, as JSON on stdout."),
    arg("--json", dest="as_json", action="store_true", help="Same as --format json."),
    arg("--bundle", type=path(file_ok=False), metavar="DIR",
        help="Run this OCI bundle with runc and learn the container (root; ARGS replace process.args)."),
    arg("--image", type=path(), metavar="PATH",
        help="Unpack this OCI layout / docker-save archive, run it with runc, learn it (ARGS replace Cmd)."),
    arg("--network", choices=["loopback", "none"], default="loopback",
        help="With --image: the container's network namespace (never the host's)."),
    arg("--from-log", type=path(dir_ok=False, dash=True), metavar="SOURCE",
        help="Add the seccomp log records (audit type 1326) in SOURCE as a run: audit.log, dmesg, journalctl -k, "
             "/dev/kmsg, or '-'. Filters: --since, --exe, --comm."),
    arg("--since", metavar="TIME", help="--from-log: records from TIME on (ISO time, @EPOCH, or 30m/2h/1d ago)."),
    arg("--exe", dest="exes", action="append", default=[], metavar="GLOB",
        help="--from-log: keep this executable's records."),
    arg("--comm", dest="comms", action="append", default=[], metavar="GLOB",
        help="--from-log: keep records of this comm."),
    arg("--fast", action="store_true",
        help="Into an existing profile: let the kernel allow, without a stop, the calls the profile already "
             "explains (the fast gate of check); their counts are not collected."),
    *CONTAINER_OPTIONS,
    arg("command", nargs="*"),
    runs_command=True)
def learn(a: argparse.Namespace) -> None:
    """Run COMMAND (or attach) and add what it did to a profile.

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

    output, backend, cpu, pid, cgroup, duration = a.output, a.backend, a.cpu, a.pid, a.cgroup, a.duration
    if a.save_recording:
        refuse_special(a.save_recording, "recording")
    as_json = a.as_json or a.fmt == "json"
    containers = bool(a.bundle or a.image)
    overrides = _container_overrides(a, containers)
    _only_with("--duration", duration is not None, pid is not None or cgroup or containers,
               "--pid, --cgroup, --image or --bundle (a command runs until it exits; Ctrl-C stops it)")
    _only_with("--network", "network" in a.given, containers, "--image or --bundle (a command run here uses "
               "this host's network)")
    command = a.command
    if a.from_log or containers:   # not the ptrace backend: with the cycle collector (__main__.run)
        gc.enable()
    if a.from_log or a.since or a.exes or a.comms:   # seccomp log records: app -> tracer/kernlog.py
        if not a.from_log or command or pid is not None or cgroup or containers or a.fast:
            raise UserError("learn: --from-log SOURCE takes no command, --pid, --cgroup, --bundle, --image or --fast; "
                            "--since, --exe and --comm need --from-log")
        existing = Profile.load_existing(output)
        rec, report = app.learn_from_log(a.from_log, since=a.since, exes=a.exes, comms=a.comms)
        for line in report.summary():
            console.info(line)
        _add_run(output, existing, rec, a.save_recording, as_json)
        sys.exit(0)
    if containers:   # containers: app -> tracer/container.py (ebpf by cgroup, or seccomp-notify)
        if pid is not None or cgroup or a.fast:
            raise UserError("learn: --bundle/--image cannot be combined with --pid/--cgroup/--fast")
        existing = Profile.load_existing(output)   # fail before running anything
        from .app import learn_container_cmd
        rec = learn_container_cmd(bundle=a.bundle, image=a.image, args=command, backend=backend, network=a.network,
                                  duration=duration, overrides=overrides, stdin=a.interactive, status=console)
        _add_run(output, existing, rec, a.save_recording, as_json)
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
    if chosen.name != "ptrace":   # only a ptrace run goes on without the cycle collector (__main__.run)
        gc.enable()
    existing = Profile.load_existing(output)   # fail before running anything
    known = None
    if a.fast:
        if existing is None:
            raise UserError(f"learn --fast: {output} does not exist yet: the fast gate lets the kernel allow what "
                            f"an existing profile explains (learn without --fast first)")
        from .learner.check import known_calls
        known = known_calls(existing)
    rec = _trace(chosen, target, cpu=cpu, duration=duration, known=known)
    if known is not None:
        app.say_fast_gate(rec, "without --fast every call is looked at", console)
    _add_run(output, existing, rec, a.save_recording, as_json)
    status = rec.exit_status if rec.exit_status is not None else (130 if not rec.complete else 0)
    sys.exit(status)


def _add_run(output, existing, rec, save_recording, as_json):
    from .app import add_run, other_programs
    from .ui.learn import report_learn

    others = other_programs(existing, rec)
    profile, added = add_run(output, existing, rec, save_recording)
    report_learn(output, profile, rec, added, as_json, others=others)


# ---------------------------------------------------------------------- show

@command(
    arg("profile", type=path()),
    arg("--format", dest="fmt", **FORMAT_TEXT_JSON, help="json: the profile as JSON (facts, rules, convergence)."),
    arg("--json", dest="as_json", action="store_true", help="Same as --format json."),
    arg("--all", dest="all_rows", action="store_true",
        help="Every file, argument value and endpoint (default: the first 25 of each, and how many more)."))
def show(a: argparse.Namespace) -> None:
    """Show what a profile (or a recording) holds: runs, syscalls by group, arguments, capabilities, files.

    Examples:
      leastpriv show app.lp.json
      leastpriv show app.lp.json --all | grep /etc/
      leastpriv show --json app.lp.json | jq '.rules.syscalls'
    """
    from .learner.diff import as_profile
    from .learner.profile import load_profile_or_recording
    from .tracer.recording import Recording

    profile = a.profile
    item = load_profile_or_recording(profile)
    if isinstance(item, Recording):
        console.info(f"{profile} is a recording (one run of {' '.join(item.command)[:60]}), not a profile: shown "
                     f"as the profile it would make (`leastpriv merge {profile} -o PROFILE.json` writes it)")
    p = as_profile(item)
    if a.as_json or a.fmt == "json":
        _echo(json.dumps(p.to_json(), indent=2, sort_keys=True))
        return
    from .ui.show import render
    render(p, profile, all_rows=a.all_rows)


# ----------------------------------------------------------------------- run

@command(
    arg("--profile", dest="profile_path", required=True, type=path(dir_ok=False), metavar="FILE",
        help="Profile whose rules confine the command."),
    arg("--complain", action="store_true",
        help="Enforce nothing: run everything, then report which syscalls would have been denied (and by which "
             "executable)."),
    arg("--complain-log", action="store_true",
        help="Like --complain, but the kernel logs what the profile would deny (SCMP_ACT_LOG, audit type 1326, as "
             "a staged profile in production does); read it back with learn --from-log."),
    arg("--no-seccomp", action="store_true", help="Do not install the seccomp filter."),
    arg("--no-landlock", action="store_true", help="Do not apply the Landlock file/network rules."),
    arg("--no-caps", action="store_true", help="Do not drop capabilities to the learned set."),
    arg("-o", "--output", "--report", dest="report", type=path(dir_ok=False), metavar="FILE",
        help="Write what was applied and the denials as JSON to this file (--report: the old name)."),
    arg("command", nargs="*"),
    name="run", runs_command=True)
def run_cmd(a: argparse.Namespace) -> None:
    """Run COMMAND confined by PROFILE, here, to prove the profile before shipping it.

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

    command, complain, complain_log = a.command, a.complain, a.complain_log
    if not command:
        raise UserError("run: no command given (leastpriv run --profile P -- CMD ...)")
    profile = Profile.load(a.profile_path)
    if complain and complain_log:
        raise UserError("run: --complain and --complain-log exclude each other")
    import time
    started = int(time.time())
    result = run(profile, command, RunOptions(complain=complain, log=complain_log, seccomp=not a.no_seccomp,
                                              landlock=not a.no_landlock, capabilities=not a.no_caps))
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
                     f"--since @{started} --exe EXE -o {a.profile_path}")
    if a.report:
        write_output(a.report, dumps({"profile": a.profile_path, "command": list(command), **result.to_json()}))
    sys.exit(result.status)


# -------------------------------------------------------------------- export

EXPORT_FORMATS = ("oci, docker, k8s-seccompprofile, k8s-apparmorprofile, k8s-pod, apparmor, systemd, landlock, "
                  "seccomp-pfc, selinux")


@command(
    arg("profile_path", metavar="PROFILE", type=path(dir_ok=False)),
    arg("-f", "--format", dest="fmt", required=True, metavar="NAME", help=f"One of: {EXPORT_FORMATS}."),
    arg("-o", "--output", type=path(dir_ok=False), metavar="FILE", help="Write here (default: stdout)."),
    arg("--args", dest="args_mode", choices=["strict", "safe", "off"],
        help="Re-derive the argument rules in this mode (default: as learned)."),
    arg("--style", choices=["allowlist", "denylist"],
        help="allowlist: deny all but what was used; denylist: allow all but the dangerous calls never used "
             "(default: as learned)."),
    arg("--arch", metavar="ARCH", help="Target architecture (x86_64, aarch64, ...): the profile is translated to it."),
    arg("--complain", action="store_true", help="Staging: log instead of deny (SCMP_ACT_LOG, AppArmor complain)."),
    arg("--exact", action="store_true",
        help="Only the syscalls traced: leave out the harmless siblings (fdatasync next to fsync, ppoll next to "
             "poll, ...) added by default."),
    arg("--runtime", metavar="NAME",
        help="Also allow what this OCI runtime does after installing the filter (none, runc, crun, runc+crun; "
             "default: runc for oci and k8s-pod, runc+crun for docker and k8s-seccompprofile (Docker runs runc, "
             "Podman crun), with the base that works without no-new-privileges; none for the other formats)."),
    arg("--bundle", type=path(file_ok=False, exists=True), metavar="DIR",
        help="oci: update this bundle's config.json in place (atomically)."),
    arg("--name", default="", help="Name of the exported object (SPO profile, AppArmor profile)."),
    arg("--container", default="", help="k8s-pod: the container to write the securityContext for."),
    arg("--manifest", type=path(dir_ok=False, exists=True), metavar="FILE",
        help="k8s-pod: patch that container in this YAML (Deployment, Pod, ...; multi-document ok)."),
    arg("--namespace", default="", help="k8s-*: metadata.namespace of the exported objects."),
    arg("--selinux-policy", type=path(file_ok=False), metavar="DIR",
        help="selinux: the policy whose file labels and port types to use (default: this host's, "
             "/etc/selinux/<SELINUXTYPE>)."))
def export(a: argparse.Namespace) -> None:
    """Write a profile in a format that enforces it.

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

    profile = Profile.load(a.profile_path)
    options = base.ExportOptions(complain=a.complain, arch=a.arch, runtime=a.runtime, args=a.args_mode, style=a.style,
                                 exact=a.exact, name=a.name, container=a.container, manifest=a.manifest,
                                 bundle=a.bundle, namespace=a.namespace,
                                 extra={"profile_path": a.profile_path, "selinux_policy": a.selinux_policy})
    result = app.export(profile, a.fmt, options)
    for note in result.notes:
        console.info(note)
    if a.output:
        write_output(a.output, result.text)
        console.info(f"wrote {a.output} ({a.fmt})")
    elif not result.target:
        _echo(result.text, nl=False)


# ------------------------------------------------------------- containers (app.py, oci/)

@command(
    arg("--profile", dest="profile_path", required=True, type=path(dir_ok=False), metavar="FILE",
        help="The learned profile."),
    arg("--bundle", type=path(file_ok=False, exists=True), metavar="DIR", help="An OCI bundle to run."),
    arg("--image", type=path(exists=True), metavar="PATH", help="An OCI layout or docker-save archive."),
    arg("--runtime", choices=["runc", "crun", "none"], default="runc",
        help="Runtime base added to the filter (none: only what the workload needs; runc then fails to start)."),
    arg("--network", choices=["loopback", "none"], default="loopback"),
    arg("--duration", type=seconds, default=120, metavar="SECONDS",
        help="Stop each run after SECONDS (more than 0; SIGTERM; for servers) and compare how both runs ended."),
    arg("--format", dest="fmt", **FORMAT_TEXT_JSON, help="json: the verdict as JSON on stdout."),
    arg("--json", dest="as_json", action="store_true", help="Same as --format json."),
    *CONTAINER_OPTIONS,
    arg("args", nargs="*"),
    runs_command=True)
def verify(a: argparse.Namespace) -> None:
    """Run a container under runc with the profile's seccomp filter and capabilities: does it still work?

    First a complain run (every call the filter would deny goes to leastpriv, is
    named, and runs), then an enforce run with exactly the exported filter,
    the learned capabilities and noNewPrivileges.
    Exit 0: it works; 1: denied (the syscall is named); 2: error. The enforced
    run's stdout and stderr are yours, as with docker run (stdin with -i).

    Examples:
      sudo leastpriv verify --image app.tar --profile app.lp.json
      sudo leastpriv verify --bundle ./bundle --profile app.lp.json --json
      sudo leastpriv verify --image app.tar --profile app.lp.json --runtime none   # shows runc's own needs
      sudo leastpriv verify --image app.tar --profile app.lp.json -e MODE=test -- /app --selftest
    """
    from .app import verify_cmd
    from .ui.verify import render_verify

    overrides = _container_overrides(a, True)
    as_json = a.as_json or a.fmt == "json"
    res = verify_cmd(bundle=a.bundle, image=a.image, profile_path=a.profile_path, runtime=a.runtime, args=a.args,
                     as_json=as_json, network=a.network, duration=a.duration, overrides=overrides,
                     stdin=a.interactive, status=console)
    sys.exit(render_verify(res, as_json))


# ------------------------------------------------------------- merge / check / diff / review

@command(
    arg("inputs", nargs="+", type=path(dir_ok=False), metavar="INPUT..."),
    arg("-o", "--output", required=True, type=path(dir_ok=False), metavar="FILE",
        help="Profile to write (may be one of the inputs)."),
    arg("--format", dest="fmt", **FORMAT_TEXT_JSON, help="json: a summary as JSON on stdout."),
    arg("--json", dest="as_json", action="store_true", help="Same as --format json."))
def merge(a: argparse.Namespace) -> None:
    """Merge profiles and recordings (other machines, replicas, containers) into one profile.

    Runs keep their order; each run keeps what it was first to add. Merging
    recordings gives the same profile as learning them one after another.

    Examples:
      leastpriv merge web-a.json web-b.json -o web.json
      leastpriv learn --save-recording run1.rec.json -o scratch.json -- ./app
      leastpriv merge baseline.json run1.rec.json -o baseline.json
    """
    from . import app
    from .text import plural
    from .ui.output import refuse_special

    inputs, output = a.inputs, a.output
    refuse_special(output, "profile")
    profile, summary = app.merge(inputs, output)
    if a.as_json or a.fmt == "json":
        _echo(json.dumps(summary, indent=2, sort_keys=True))
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


@command(
    arg("--baseline", required=True, type=path(dir_ok=False), metavar="FILE", help="The committed profile."),
    arg("-f", "--format", dest="fmt", choices=["text", "rich", "json", "junit", "sarif", "github"], default="text",
        help="Report format (text: for people; rich is the same)."),
    arg("-o", "--output", type=path(dir_ok=False), metavar="FILE",
        help="Write the report here instead of stdout (e.g. report.xml for a CI test tab)."),
    arg("--only", default=",".join(("syscall", "arg", "capability", "file", "exec", "network", "family",
                                    "unknown_syscall")),
        help="Kinds of growth that fail the check (comma-separated)."),
    arg("--ignore-path", dest="ignore_paths", action="append", default=[], metavar="GLOB",
        help="Paths to leave out of the comparison (repeatable), e.g. '/tmp/*'."),
    arg("--backend", choices=["auto", "ptrace", "ebpf"], default="auto", help="With -- CMD: how to observe it."),
    arg("--save-recording", type=path(dir_ok=False), metavar="FILE",
        help="With -- CMD: also write the new run's Recording (to merge it into the baseline later)."),
    arg("--full-trace", action="store_true",
        help="With -- CMD: stop at every call (counts everything) instead of the fast gate, which lets the kernel "
             "allow the calls the baseline already explains."),
    arg("--strict", action="store_true",
        help="Fail on any new fact, also one the policy already allows (a harmless sibling, a path matching a "
             "pattern)."),
    arg("new", nargs="*", metavar="NEW | -- CMD..."))
def check(a: argparse.Namespace) -> None:
    """Fail (exit 1) when the workload uses more than its baseline profile.

    NEW is a profile or a recording; with -- CMD the command is traced first
    (like learn) and then compared. Exit 0: nothing grew; 1: something grew
    (syscall, argument value, capability, path, executable, network endpoint,
    socket family) that the profile's policy would deny; 2: error. New facts
    the policy already allows (a harmless sibling, a new temporary name that
    matches a path pattern, a path beneath an owned directory) are listed and
    exit 0; --strict fails on them too. Growth in a dangerous syscall or
    capability is called out. With -- CMD the workload's own output goes to
    stdout as well: write machine formats with -o FILE.

    Fast gate (with -- CMD, unless --full-trace): a seccomp filter (ptrace)
    or an in-kernel bitmap (eBPF) lets the calls the baseline already
    explains run without being looked at; only unseen syscalls, new
    argument values, paths, addresses and execs are traced. Growth is found
    the same way; counts of the allowed calls are not collected, and that
    the run stopped using them is not reported.

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

    baseline, fmt, output, args = a.baseline, a.fmt, a.output, a.new
    try:
        if a.save_recording:
            refuse_special(a.save_recording, "recording")
        result = app.check(baseline, args, command=a.dashdash or len(args) > 1, backend=a.backend,
                           full_trace=a.full_trace, save_recording=a.save_recording,
                           kinds=[k.strip() for k in a.only.split(",") if k.strip()], ignore_paths=a.ignore_paths,
                           strict=a.strict, run=_trace, status=console)
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
            _echo(text, nl=not text.endswith("\n"))
    if result["dangerous"]:
        console.warn(f"dangerous growth: {', '.join(c['label'] for c in result['dangerous'])}")
    sys.exit(1 if result["grew"] else 0)


@command(
    arg("old", type=path(dir_ok=False)),
    arg("new", type=path(dir_ok=False)),
    arg("--format", dest="fmt", **FORMAT_TEXT_JSON, help="json: the diff as JSON on stdout."),
    arg("--json", dest="as_json", action="store_true", help="Same as --format json."),
    arg("--ignore-path", dest="ignore_paths", action="append", default=[], metavar="GLOB",
        help="Paths to leave out (repeatable)."))
def diff(a: argparse.Namespace) -> None:
    """Added and removed syscalls, argument values, capabilities, paths, network, with counts.

    OLD and NEW are profiles or recordings.

    Examples:
      leastpriv diff app.lp.json app.new.json
      leastpriv diff --json v1.json v2.json | jq '.summary'
    """
    from .learner.diff import diff as do_diff
    from .learner.profile import load_profile_or_recording
    from .ui.check import render_diff

    d = do_diff(load_profile_or_recording(a.old), load_profile_or_recording(a.new), a.ignore_paths)
    if a.as_json or a.fmt == "json":
        _echo(json.dumps({"old": a.old, "new": a.new, **d}, indent=2, sort_keys=True))
        return
    render_diff(d, a.old, a.new)


@command(
    arg("words", nargs="*", metavar="[PROFILE] [-- ARGS...]"),
    arg("-f", "--format", dest="fmt", choices=["text", "rich", "json", "markdown"], default="text",
        help="Report format (text: for people; rich is the same)."),
    arg("-o", "--output", type=path(dir_ok=False), metavar="FILE", help="Write the report here instead of stdout."),
    arg("--arch", metavar="ARCH",
        help="Architecture to compare with Docker's default (default: the one the profile was learned on)."),
    arg("--image", type=path(exists=True), metavar="PATH",
        help="Review a container image (OCI layout / docker-save archive): learn it under runc (or use PROFILE), "
             "prove the capability set, scan the rootfs (root; see README ## Containers)."),
    arg("--backend", choices=["auto", "ebpf", "seccomp-notify"], default="auto",
        help="With --image: how to learn the container."),
    *CONTAINER_OPTIONS)
def review(a: argparse.Namespace) -> None:
    """The risk report for a security review of a profile.

    Dangerous syscalls, argument values and capabilities in use (each with why
    and a known CVE or exploit class), the comparison with Docker's default
    seccomp profile, the Pod Security Standard level of the exported
    securityContext, and what each policy style leaves open.

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

    fmt, output, image, after = a.fmt, a.output, a.image, a.after
    before = a.words[:len(a.words) - len(after)]   # PROFILE; ARGS come after --
    if len(before) > 1:
        raise UsageError(f"review: one PROFILE at most (got {', '.join(before)}); container ARGS go after --")
    profile_path = before[0] if before else None
    overrides = _container_overrides(a, bool(image))
    if after and not image:
        raise UsageError("review: ARGS after -- are for --image (they replace the image's Cmd)")
    if image:   # container image review: app.review_image_cmd
        from .app import review_image_cmd
        from .ui.image_review import emit
        report = review_image_cmd(image=image, profile_path=profile_path, args=after, fmt=fmt,
                                  backend=a.backend, runtime="runc", overrides=overrides, stdin=a.interactive,
                                  output=output, status=console)
        emit(report, fmt, output)
        return
    if not profile_path:
        raise UserError("review: give a PROFILE or --image IMAGE")
    p = as_profile(load_profile_or_recording(profile_path))   # a recording reviews as a one-run profile
    if a.arch is not None:
        if a.arch not in syscalls.arches():
            raise UserError(f"--arch: unknown architecture {a.arch!r} (known: {', '.join(syscalls.arches())})")
    r = do_review(p, a.arch)
    if fmt == "json":
        emit_report(output, json.dumps({"profile": profile_path, **r}, indent=2, sort_keys=True))
    elif fmt == "markdown":
        from .ui.review import to_markdown
        emit_report(output, to_markdown(r, profile_path))
    else:
        from .ui.review import render_rich
        emit_report(output, render=lambda con: render_rich(r, profile_path, con))


@command(
    arg("profile_path", nargs="?", type=path(dir_ok=False), metavar="[PROFILE]"),
    arg("--exe", dest="exes", action="append", default=[], type=path(dir_ok=False), metavar="PATH",
        help="Analyse this executable instead of a profile's (repeatable)."),
    arg("--dlopen", dest="dlopens", action="append", default=[], type=path(dir_ok=False), metavar="PATH",
        help="With --exe: a shared object it loads at run time (repeatable)."),
    arg("--format", dest="fmt", choices=["rich", "json"], default="rich"),
    arg("-o", "--output", type=path(dir_ok=False), metavar="FILE", help="Write here (default: stdout)."))
def reach(a: argparse.Namespace) -> None:
    """How much did the trace see? The syscalls the code that ran could reach (static analysis).

    For each executable of PROFILE (or each --exe): the executable, its interpreter, its DT_NEEDED
    libraries, the shared objects the runs opened (dlopen), the NSS modules and the vDSO are
    disassembled (x86-64) and joined into one call graph; the syscalls reachable from the entry
    point are an upper bound. "missed" lists syscalls a run made that the analysis calls
    unreachable (a soundness bug, or an object it could not analyse). Results per object are
    cached by build-id in ~/.cache/leastpriv/reach/.

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

    output = a.output
    with live_status("static reachability (first time per build-id: seconds)"):
        cov = app.reach(a.profile_path, a.exes, a.dlopens)
    if a.fmt == "json":
        text = json.dumps(to_json(cov), indent=2, sort_keys=True) + "\n"
        if output:
            write_atomic(output, text)
        else:
            _echo(text, nl=False)
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
