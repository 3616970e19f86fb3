"""File names a traced program chose must not change the structure of any export.

A real program (sh) creates and reads files whose names hold a newline followed by systemd
directives, ']', quotes, '#', '%', ',' and spaces; the profile is learned with ptrace and exported to
every line format. Each export has the same shape as the export of the same program run with plain
names, passes its real validator (systemd-analyze verify, apparmor_parser -Q -K, YAML), and the name
with a newline is dropped with a note, never written.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import yaml

from tests.conftest import lp, which

HOSTILE = ["evil\nSystemCallFilter=\nExecStartPre=/bin/sh -c id", "a]b[/]c", 'q"uote', "it's", "h#ash",
           "sp ace", "pct%n", "comma,", "back\\slash", "{,**}"]
PLAIN = [f"plain{i}" for i in range(len(HOSTILE))]


def _learn(d, names):
    d.mkdir()
    for n in names:   # the directories exist: the program writes into them (ReadWritePaths names each)
        (d / n).mkdir(parents=True)
        (d / n / "f").write_text("")
    script = "; ".join(f"echo x >> {shlex.quote(str(d / n / 'f'))} && cat {shlex.quote(str(d / n / 'f'))} >/dev/null"
                       for n in names)
    prof = d / "p.json"
    proc = lp("learn", "--backend", "ptrace", "-o", str(prof), "--", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    # a profile file whose own name carries a newline: it goes into the comments of the exports
    named = d / "profile\n[Service]\nExecStart=evil #.json"
    named.write_bytes(prof.read_bytes())
    return named


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    t = tmp_path_factory.mktemp("names")
    return _learn(t / "hostile", HOSTILE), _learn(t / "plain", PLAIN)


def _systemd_shape(text):
    shape = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            shape.append("#")
        elif line.startswith("["):
            shape.append(line)
        else:
            key, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Za-z]+", key), line
            shape.append(key)
    return [k for i, k in enumerate(shape) if i == 0 or k != shape[i - 1]]   # a list may wrap onto more lines


def _apparmor_shape(text):
    shape = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            shape.append("#")
            continue
        assert s.endswith((",", "{", "}")) or s.startswith("include <"), line
        shape.append(s.split()[0] if not s.startswith(("/", '"', "@")) else "path")
    return [k for i, k in enumerate(shape) if i == 0 or k != shape[i - 1]]


def test_systemd_structure(profiles, tmp_path):
    hostile, plain = profiles
    res = lp("export", str(hostile), "--format", "systemd")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "ExecStartPre" not in text.replace("#", "").split("[Service]", 1)[1] or \
        all(ln.startswith("#") for ln in text.splitlines() if "ExecStart" in ln)
    assert _systemd_shape(text).count("[Service]") == 1
    ref = lp("export", str(plain), "--format", "systemd").stdout
    assert _systemd_shape(text) == _systemd_shape(ref)
    assert "file rule dropped" in res.stderr and "\\x0a" in res.stderr
    # the real validator reads the drop-in without a complaint about it
    unit = tmp_path / "lp.service"
    unit.write_text("[Unit]\nDescription=t\n\n[Service]\nExecStart=/bin/true\n")
    (tmp_path / "lp.service.d").mkdir()
    (tmp_path / "lp.service.d" / "leastpriv.conf").write_text(text)
    v = subprocess.run([which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert "leastpriv.conf" not in v.stdout + v.stderr, v.stderr
    # every quoted word is one path that systemd unquotes back to a directory the program wrote
    rw = [w for ln in text.splitlines() if ln.startswith("ReadWritePaths=")
          for w in shlex.split(ln.split("=", 1)[1])]
    d = hostile.parent
    for n in HOSTILE:
        want = f"-{d / n}".replace("%", "%%")
        found = [w for w in rw if w == want or w.startswith(want + "/")]
        assert bool(found) == ("\n" not in n), (n, rw)


def test_apparmor_structure_and_parser(profiles, tmp_path):
    hostile, plain = profiles
    res = lp("export", str(hostile), "--format", "apparmor", "--name", "t")
    assert res.returncode == 0, res.stderr
    ref = lp("export", str(plain), "--format", "apparmor", "--name", "t").stdout
    assert _apparmor_shape(res.stdout) == _apparmor_shape(ref)
    f = tmp_path / "t.aa"
    f.write_text(res.stdout)
    v = subprocess.run([which("apparmor_parser"), "-Q", "-K", str(f)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    assert "evil" not in res.stdout.split("{", 1)[1] and "\\]" in res.stdout and '\\"' in res.stdout


@pytest.mark.parametrize("fmt", ["k8s-apparmorprofile", "k8s-seccompprofile", "k8s-pod"])
def test_yaml_structure(profiles, fmt):
    hostile, plain = profiles
    res = lp("export", str(hostile), "--format", fmt)
    assert res.returncode == 0, res.stderr
    ref = lp("export", str(plain), "--format", fmt).stdout

    def keys(x):
        if isinstance(x, dict):
            return {k: keys(v) for k, v in x.items()}
        if isinstance(x, list):
            return [keys(v) for v in x[:1]]
        return type(x).__name__
    got, want = list(yaml.safe_load_all(res.stdout)), list(yaml.safe_load_all(ref))
    assert keys(got) == keys(want)
    assert [ln for ln in res.stdout.splitlines() if ln.lstrip().startswith("#")] == \
        [ln for ln in ref.splitlines() if ln.lstrip().startswith("#")]


@pytest.mark.parametrize("fmt", ["seccomp-pfc", "docker", "oci", "landlock"])
def test_other_formats_hold(profiles, fmt):
    hostile, plain = profiles
    res = lp("export", str(hostile), "--format", fmt)
    assert res.returncode == 0, res.stderr
    if fmt == "seccomp-pfc":
        ref = lp("export", str(plain), "--format", fmt).stdout
        assert res.stdout == ref
    else:
        doc = json.loads(res.stdout)
        assert "\n[Service]" not in json.dumps(doc) or fmt == "landlock"


def test_rich_output_never_reads_markup_from_data(profiles, tmp_path):
    """show, review, diff, check and merge print names like 'a]b[/]c' as they are (no MarkupError)."""
    hostile, plain = profiles
    for cmd in (["show", str(hostile)], ["review", str(hostile)], ["diff", str(plain), str(hostile)],
                ["check", "--baseline", str(plain), str(hostile)], ["merge", str(hostile), "-o",
                                                                       str(tmp_path / "m[bold]x[red].json")]):
        res = lp(*cmd)
        assert res.returncode in (0, 1), (cmd, res.stderr)
        assert "Traceback" not in res.stderr and "MarkupError" not in res.stderr
    text = lp("diff", str(plain), str(hostile)).stdout
    assert "a]b[/]c" in text


def test_image_review_prints_file_names_as_they_are(tmp_path, capsys):
    from leastpriv.ui.image_review import render
    names = ["/evil[/]x", "/[bold]b[/]"]
    report = {"name": "img[/]", "image": "i", "command": ["/bin/[red]x"], "runs_as_root": True, "user": {"uid": 0},
              "findings": ["world-writable /evil[/]x"], "capabilities": {"granted_by_default": [], "used": []},
              "syscalls": {"used": [], "docker_default_allows_unused": [], "dangerous_used": []},
              "rootfs": {"setuid_setgid_files": names, "world_writable": names}}
    render(report)
    out = capsys.readouterr().out
    assert "/evil[/]x" in out and "[bold]b[/]" in out and "img[/]" in out and "/bin/[red]x" in out
