"""Bad input on every command: one line naming the file or argument, a non-zero exit, no traceback.

Each case runs the real CLI. A profile learned from ``true`` (ptrace, unprivileged) is the
good input the bad ones are mixed with.
"""
from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import ROOT, lp, lp_in_process, need_root
from tests.learning import learn_profile


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-errors")
    path = d / "true.json"
    learn_profile(["true"], path=path)
    return path


def _one_line_error(proc, code: int, *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("leastpriv: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _bad_files(d, good):
    (d / "malformed.json").write_text("{bad")
    newer = json.loads(good.read_text())
    newer["version"] = 999
    (d / "newer.json").write_text(json.dumps(newer))
    (d / "notaprofile.json").write_text("[1, 2]")
    return {"missing.json": "no such", "malformed.json": "malformed JSON", "newer.json": "newer",
            "notaprofile.json": "not a leastpriv profile"}


def _commands(bad: str, good: str, d) -> list[list[str]]:
    return [["show", bad], ["export", bad, "--format", "oci"], ["review", bad], ["diff", bad, good],
            ["merge", bad, "-o", str(d / "m.json")], ["check", "--baseline", bad, good],
            ["check", "--baseline", good, bad], ["run", "--profile", bad, "--", "true"],
            ["learn", "--backend", "ptrace", "-o", bad, "--", "true"]]


def test_bad_profiles_on_every_command(good, tmp_path):
    cases = _bad_files(tmp_path, good)
    for name, why in cases.items():
        bad = str(tmp_path / name)
        for argv in _commands(bad, str(good), tmp_path):
            if name == "missing.json" and argv[0] == "learn":
                continue   # a missing -o profile is created: not an error
            proc = lp(*argv)
            line = _one_line_error(proc, 2, name, why)
            assert bad in line or name in line


def test_output_in_a_file_not_a_directory(good, tmp_path):
    """ENOTDIR used to leak a NotADirectoryError traceback (export, check) or trace first (learn)."""
    inside = str(good) + "/x.json"
    _one_line_error(lp("export", str(good), "--format", "oci", "-o", inside), 2, inside)
    _one_line_error(lp("check", "--baseline", str(good), str(good), "--format", "json", "--output", inside), 2,
                    "x.json")
    proc = lp("learn", "--backend", "ptrace", "-o", inside, "--", "sh", "-c", "echo RAN")
    _one_line_error(proc, 2, inside, "not a directory")
    assert "RAN" not in proc.stdout   # refused before anything ran
    _one_line_error(lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "nodir" / "p.json"), "--", "true"), 2,
                    "No such file or directory")


def test_check_rich_report_to_missing_directory(good, tmp_path):
    """--format rich with --output used open() directly: a FileNotFoundError traceback and exit 1 ("grew")."""
    out = str(tmp_path / "nodir" / "report.txt")
    _one_line_error(lp("check", "--baseline", str(good), str(good), "--output", out), 2, out)
    ok = tmp_path / "report.txt"
    proc = lp("check", "--baseline", str(good), str(good), "--output", str(ok))
    assert proc.returncode == 0, proc.stderr
    assert "nothing grew" in ok.read_text()


def test_device_outputs_are_written_not_replaced(good, tmp_path):
    """write_atomic renames over its target: -o /dev/null as root would turn /dev/null into a file."""
    need_root()
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    proc = lp("export", str(good), "--format", "oci", "-o", str(dev))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    proc = lp("check", "--baseline", str(good), str(good), "--format", "json", "--output", str(dev))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    # profiles and recordings are only ever regular files: refused before anything runs
    _one_line_error(lp("learn", "--backend", "ptrace", "-o", str(dev), "--", "true"), 2, "not a regular file")
    _one_line_error(lp("learn", "--backend", "ptrace", "--save-recording", str(dev), "-o",
                       str(tmp_path / "p.json"), "--", "true"), 2, "not a regular file")
    _one_line_error(lp("merge", str(good), "-o", str(dev)), 2, "not a regular file")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    assert not (tmp_path / "p.json").exists()


def test_bad_arguments(good, tmp_path):
    g = str(good)
    _one_line_error(lp("export", g, "--format", "nope"), 2, "--format", "nope")
    _one_line_error(lp("export", g, "--format", "oci", "--arch", "nope"), 2, "--arch", "nope")
    _one_line_error(lp("review", g, "--arch", "nope"), 2, "--arch")
    _one_line_error(lp("export", g, "--format", "oci", "--runtime", "nope"), 2, "--runtime")
    _one_line_error(lp("learn", "-o", str(tmp_path / "x.json"), "--cpu", "-1", "--", "true"), 2, "--cpu")
    _one_line_error(lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "x.json"), "--cpu", "4096", "--",
                       "true"), 2, "--cpu", "4096")
    _one_line_error(lp("learn", "-o", str(tmp_path / "x.json")), 2, "COMMAND")
    _one_line_error(lp("run", "--profile", g), 2, "no command")
    _one_line_error(lp("check", "--baseline", g), 2, "NEW")
    _one_line_error(lp("learn", "-o", str(tmp_path / "x.json"), "--", ""), 127, "empty")
    _one_line_error(lp("learn", "-o", str(tmp_path / "x.json"), "--", "/nonexistent-lp"), 127, "not found")
    _one_line_error(lp("run", "--profile", g, "--", "/etc/passwd"), 126, "/etc/passwd")
    proc = lp("learn", "-o", str(tmp_path / "x.json"), "--pid", "1", "--duration", "-1")
    assert proc.returncode == 2 and "--duration" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_pid_of_a_dead_process(tmp_path):
    need_root()
    import subprocess
    p = subprocess.Popen(["true"])
    p.wait()
    _one_line_error(lp("learn", "--backend", "ebpf", "-o", str(tmp_path / "x.json"), "--pid", str(p.pid),
                       "--duration", "1"), 2, f"--pid {p.pid}", "no such process")


def test_image_that_is_not_an_archive(good):
    need_root()
    line = _one_line_error(lp("review", "--image", str(good)), 2, "not an image archive")
    assert "method gz" not in line


def test_run_says_why_exec_failed_when_the_filter_denies_write(good):
    """The profile of `true` has no write(2): the child's report of its failed execve (Landlock: ls
    is not among the profile's executables) used to be denied, leaving a silent exit 126."""
    proc = lp("run", "--profile", str(good), "--", "ls", "/")
    _one_line_error(proc, 126, "cannot execute", "EACCES")


def test_usage_errors_are_one_line(good, tmp_path):
    """The parser's own errors (a choice, a directory for a file, a missing argument, an unknown option)
    are one line with where to look, not a usage block."""
    g = str(good)
    d = tmp_path / "adir.json"
    d.mkdir()
    for argv, needle in ((["check", "--baseline", g, g, "--format", "nope"], "--format"),
                         (["export", str(d), "--format", "oci"], "adir.json"),
                         (["run", "--profile", str(d), "--", "true"], "adir.json"),
                         (["diff", g], "NEW"),
                         (["show", "--bogus", g], "--bogus"),
                         (["nosuchcommand"], "nosuchcommand")):
        proc = lp(*argv)
        line = _one_line_error(proc, 2, needle)
        assert "--help" in line and "Usage:" not in proc.stderr
    proc = lp()
    assert proc.returncode == 2 and "Usage:" in proc.stderr and "learn" in proc.stderr   # bare: the help
    assert lp("--help").returncode == 0 and lp("--version").returncode == 0


def test_markup_in_a_path_is_printed_as_is(tmp_path):
    name = str(tmp_path / "x[red]y.json")
    _one_line_error(lp("show", name), 2, "x[red]y.json")
    out = tmp_path / "a[b].json"
    learn_profile(["true"], path=out)
    proc = lp("export", str(out), "--format", "oci", "-o", str(out) + ".oci")
    assert proc.returncode == 0 and "a[b].json.oci" in proc.stderr, proc.stderr


def test_unwritable_profile_directory_is_refused_before_the_run():
    """/proc takes no new files (not even from root): learn used to run the workload, then lose it."""
    proc = lp("learn", "--backend", "ptrace", "-o", "/proc/lp-test.json", "--", "sh", "-c", "echo RAN")
    _one_line_error(proc, 2, "/proc/lp-test.json", "cannot write")
    assert "RAN" not in proc.stdout


def test_cpu_with_ebpf_is_said_to_be_ignored(tmp_path):
    need_root()
    proc = lp("learn", "--backend", "ebpf", "--cpu", "1", "-o", str(tmp_path / "x.json"), "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert "--cpu 1: only the ptrace backend" in proc.stderr


def test_pyproject_license_is_an_spdx_string():
    """setuptools >= 77 warns (dozens of lines in `make install`) about a license TOML table."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str) and data["project"]["license"] == "Apache-2.0"
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in data["build-system"]["requires"])


def test_unknown_options_are_usage_errors_not_the_command(good, tmp_path):
    """Before --, an option leastpriv does not know is a usage error (exit 2, which option), never run
    as the command ('--foo: command not found', 127)."""
    g = str(good)
    for argv in (["learn", "--foo", "--", "ls"], ["learn", "-o", str(tmp_path / "x.json"), "--foo", "--", "ls"],
                 ["run", "--profile", g, "--nope", "--", "true"], ["check", "--baseline", g, "-Z", "--", "true"],
                 ["verify", "--profile", g, "--image", g, "--nope", "--", "true"], ["review", "--nope", g]):
        proc = lp(*argv)
        line = _one_line_error(proc, 2, "No such option")
        assert argv[[i for i, a in enumerate(argv) if a.startswith("--n") or a in ("--foo", "-Z")][0]] in line
        assert "command not found" not in proc.stderr
    # the command's own options after its first word (or after --) are the command's
    res = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "y.json"), "ls", "-d", "/")
    assert res.returncode == 0 and res.stdout == "/\n", res.stderr
    res = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "y.json"), "--", "ls", "--foo")
    assert res.returncode == 2 and "unrecognized option" in res.stderr     # ls's own usage error, exit 2


def test_one_flag_vocabulary(good, tmp_path):
    """-o/--output for every file a command writes, --format for machine output with --json kept as alias."""
    g = str(good)
    rep = tmp_path / "run.json"
    res = lp("run", "--profile", g, "-o", str(rep), "--", "true")
    assert res.returncode == 0 and json.loads(rep.read_text())["status"] == 0, res.stderr
    res = lp("run", "--profile", g, "--report", str(tmp_path / "old.json"), "--", "true")   # the old name
    assert res.returncode == 0 and (tmp_path / "old.json").exists()
    for cmd in (["diff", g, g], ["merge", g, "-o", str(tmp_path / "m.json")]):
        a, b = lp(*cmd, "--json"), lp(*cmd, "--format", "json")
        assert a.returncode == b.returncode == 0 and json.loads(a.stdout) == json.loads(b.stdout)
    out = tmp_path / "review.md"
    res = lp("review", g, "-f", "markdown", "-o", str(out))
    assert res.returncode == 0 and res.stdout == "" and out.read_text().startswith("# leastpriv review")
    res = lp("review", g, "-o", str(tmp_path / "review.txt"))
    assert res.returncode == 0 and "review" in (tmp_path / "review.txt").read_text()
    assert "\x1b[" not in (tmp_path / "review.txt").read_text()
    res = lp("learn", "--backend", "ptrace", "-o", str(tmp_path / "l.json"), "--format", "json", "--", "true")
    assert res.returncode == 0 and json.loads(res.stdout)["runs"] == 1


def test_command_line_grammar(good, tmp_path):
    """getopt's grammar (click's before argparse): where options end, what a value is, and one usage line for
    each way to get it wrong."""
    g = str(good)
    learn = ("learn", "--backend", "ptrace")
    # an option's value is the next word, even when it looks like an option
    res = lp(*learn, "-o", "-x.json", "--", "true", cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / "-x.json").exists(), res.stderr
    # -oFILE, --opt=value (a value may hold '='), --opt value
    for argv, made in ((["-o" + str(tmp_path / "a.json")], "a.json"), ([f"--output={tmp_path}/b=c.json"], "b=c.json"),
                       (["--output", str(tmp_path / "d.json")], "d.json")):
        res = lp(*learn, *argv, "--", "true")
        assert res.returncode == 0 and (tmp_path / made).exists(), (argv, res.stderr)
    # after --, and from COMMAND's first word on, every word is COMMAND's: -h, --foo and a second --
    res = lp(*learn, "-o", str(tmp_path / "e.json"), "--", "sh", "-c", 'echo "$@"', "sh", "-h", "--foo", "--", "x")
    assert res.returncode == 0 and res.stdout == "-h --foo -- x\n", res.stderr
    res = lp(*learn, "-o", str(tmp_path / "e.json"), "sh", "-c", 'echo "$@"', "sh", "-o", "--json")
    assert res.returncode == 0 and res.stdout == "-o --json\n", res.stderr
    # check -- CMD traces CMD even when it is one word; check NEW reads the file NEW
    assert lp("check", "--baseline", g, "--backend", "ptrace", "--", "true").returncode == 0
    _one_line_error(lp("check", "--baseline", g, "true"), 2, "true: no such profile")
    # usage errors: one line naming the problem and the command's --help, exit 2, nothing run
    ran = str(tmp_path / "ran")
    sh = ("--", "sh", "-c", f"touch {ran}")
    for argv, needles in (
            ([*learn, "--foo", *sh], ("No such option '--foo'", "learn --help")),
            ([*learn, "--out", "x.json", *sh], ("No such option '--out'",)),          # never abbreviated
            ([*learn, "-Z", *sh], ("No such option '-Z'",)),
            ([*learn, "-iZ", *sh], ("No such option '-Z'",)),                          # flags sharing a dash
            (["diff", "--foo", g, g], ("No such option '--foo'", "diff --help")),
            ([*learn[:1], "--backend", "nope", *sh], ("--backend", "nope", "learn --help")),
            ([*learn, "--json=yes", *sh], ("--json", "yes")),
            ([*learn, "--network", "none", *sh], ("--network: only with", "learn --help")),
            ([*learn, "--pid", "x"], ("--pid", "'x'")),
            ([*learn, "-o"], ("-o/--output", "expected one argument")),
            (["check", "--baseline", g, "-f", "nope", g], ("-f/--format", "nope", "check --help")),
            (["check", g], ("--baseline", "required")),
            (["diff", g, g, g], ("unexpected extra arguments", g)),
            (["show"], ("PROFILE", "show --help")),
            (["--bogus"], ("No such option '--bogus'", "(see: leastpriv --help)")),
            (["lern"], ("No such command 'lern'",))):
        res = lp_in_process(*argv)
        _one_line_error(res, 2, *needles)
        assert res.stdout == "" and not os.path.exists(ran), argv
    # -- alone, or no COMMAND: exit 2, one line
    _one_line_error(lp_in_process(*learn, "-o", str(tmp_path / "f.json"), "--"), 2, "COMMAND")
    _one_line_error(lp_in_process("check", "--baseline", g, "--"), 2, "NEW")
    _one_line_error(lp_in_process("run", "--profile", g, "--"), 2, "no command")


def test_help_of_every_command(good):
    """-h/--help on stdout, exit 0, with examples; bare leastpriv: the help on stderr, exit 2; --version."""
    from leastpriv.cli import COMMANDS

    top = lp_in_process("--help")
    assert top.returncode == 0 and top.stdout.startswith("Usage: leastpriv [OPTIONS] COMMAND"), top
    for name in COMMANDS:
        assert f"\n  {name} " in top.stdout, name
        for flag in ("-h", "--help"):
            res = lp_in_process(name, flag)
            assert res.returncode == 0 and res.stderr == "", (name, res.stderr)
            assert res.stdout.startswith(f"Usage: leastpriv {name} [OPTIONS]") and "Examples:" in res.stdout, name
    assert "[default: leastpriv.json]" in lp_in_process("learn", "-h").stdout
    assert "--baseline FILE" in lp_in_process("check", "-h").stdout
    bare = lp_in_process()
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr == top.stdout
    res = lp_in_process("--version")
    assert res.returncode == 0 and res.stdout.startswith("leastpriv, version ")
