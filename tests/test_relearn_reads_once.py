"""learn into an existing profile reads it before the run and, under the lock, again only if the file
changed meanwhile (learner/profile.Profile.load_existing(reuse=...)): the second schema check is left out
for the file it came from, never for another one."""
from __future__ import annotations

import os

from leastpriv import schema
from leastpriv.fileio import write_atomic
from leastpriv.learner import aggregate
from leastpriv.learner.profile import Profile
from leastpriv.tracer.recording import RecordingBuilder

from .conftest import lp


def _rec(path: str):
    b = RecordingBuilder(["/bin/true"], "ptrace")
    b.syscall("x86_64", "openat")
    b.file(path, "read")
    return b.build(0, True)


def _checks(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = schema.check_shipped

    def counting(doc, name, where, what):
        seen.append(where)
        return real(doc, name, where, what)
    monkeypatch.setattr(schema, "check_shipped", counting)
    return seen


def test_the_same_file_is_not_read_twice_another_one_is(tmp_path, monkeypatch):
    out = str(tmp_path / "p.json")
    aggregate.add_recording(None, _rec("/etc/hostname"))[0].save(out)
    checks = _checks(monkeypatch)
    first = Profile.load_existing(out)
    assert Profile.load_existing(out, reuse=first) is first
    assert len(checks) == 1
    # replaced (as leastpriv writes: a new file renamed over it): read and checked again
    aggregate.add_recording(first, _rec("/etc/passwd"))[0].save(out)
    again = Profile.load_existing(out, reuse=first)
    assert again is not first and "/etc/passwd" in again.facts["files"]
    assert len(checks) == 2
    # changed in place (same inode): read again; a bad change is refused as before
    with open(out, "r+") as fh:
        fh.seek(0, os.SEEK_END)
        fh.write(" ")
    third = Profile.load_existing(out, reuse=again)
    assert third is not again and third == again
    assert len(checks) == 3
    # without reuse (a learn's first read) the file is always read
    assert Profile.load_existing(out) is not third
    assert len(checks) == 4


def test_a_profile_replaced_during_the_run_keeps_both_runs(tmp_path):
    """The workload itself rewrites the profile during the run (as a concurrent learn would): the run is
    added to what is there when it ends, not to what was read before it started."""
    out = tmp_path / "p.json"
    assert lp("learn", "--backend", "ptrace", "-o", str(out), "--", "cat", "/etc/hostname").returncode == 0
    other = tmp_path / "other.json"
    assert lp("learn", "--backend", "ptrace", "-o", str(other), "--", "ls", "/usr/share").returncode == 0
    proc = lp("learn", "--backend", "ptrace", "-o", str(out), "--", "sh", "-c", f"cp {other} {out}.new && "
              f"mv {out}.new {out}")
    assert proc.returncode == 0, proc.stderr
    prof = Profile.load(str(out))
    assert len(prof.runs) == 2   # other's one run, then this one (the first profile was replaced)
    assert "/usr/share" in prof.facts["files"] and "/etc/hostname" not in prof.facts["files"]
