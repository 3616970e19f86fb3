"""Profile files: stable JSON, version checks, clear one-line errors, atomic writes."""
from __future__ import annotations

import json

import pytest

from leastpriv.learner import aggregate
from leastpriv.learner.profile import PROFILE_VERSION, Profile
from leastpriv.tracer.recording import Endpoint, Recording, RecordingBuilder

from .conftest import lp


def _rec(extra_syscall: str = "write", clone_flags: int = 0x1200011) -> Recording:
    b = RecordingBuilder(["prog"], "ptrace")
    for name in ("read", "openat", "close", extra_syscall):
        b.syscall("x86_64", name)
    b.syscall("x86_64", "clone")
    b.arg("x86_64", "clone", (clone_flags,))
    b.file("/etc/hosts", "read")
    b.endpoint(Endpoint("connect", "AF_INET", "127.0.0.1", 8080, "tcp"))
    return b.build(0, True)


def test_roundtrip_is_stable_and_sorted(tmp_path):
    p = aggregate.learn([_rec(), _rec("getpid")])
    path = tmp_path / "p.json"
    p.save(path)
    text = path.read_text()
    again = Profile.load(path)
    again.save(path)
    assert path.read_text() == text
    d = json.loads(text)
    assert d["version"] == PROFILE_VERSION and d["convergence"]["runs"] == 2
    assert text == json.dumps(d, indent=2, sort_keys=True) + "\n"


def test_union_and_what_each_run_added():
    p = aggregate.learn([_rec(), _rec("getpid"), _rec("getpid")])
    assert {"read", "write", "getpid", "clone"} <= p.syscall_names("x86_64")
    assert "write" in p.runs[0]["added"]["syscalls"]["x86_64"]
    assert p.runs[1]["added"] == {"syscalls": {"x86_64": ["getpid"]}}
    assert p.runs[2]["added"] == {}
    assert p.runs_without_growth == 1
    assert p.facts["syscalls"]["x86_64"]["read"]["runs"] == 3
    assert p.facts["syscalls"]["x86_64"]["getpid"]["runs"] == 2


def test_merge_of_recordings_equals_learning_both():
    a, b = _rec(), _rec("getpid", clone_flags=0x10000000 | 17)
    assert aggregate.merge([a, b]).facts == aggregate.learn([a, b]).facts
    assert aggregate.merge([a, b]).rules == aggregate.learn([a, b]).rules


def test_clone_rule_keeps_namespaces_out():
    rules = aggregate.learn([_rec()]).rules
    (rule,) = rules.conditional["x86_64"]
    assert rule.names == ("clone",) and rule.args[0].op == "SCMP_CMP_MASKED_EQ"
    assert rule.args[0].value & 0x10000000          # CLONE_NEWUSER is not allowed
    assert rules.errno["x86_64"][0].names == ("clone3",)


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON at line 1"),
    ('{"format": "something-else"}', "not a leastpriv profile"),
    ('{"format": "leastpriv-profile", "version": 99, "runs": [], "facts": {}}', "version 99 is newer"),
    ('{"format": "leastpriv-profile", "version": 1, "runs": {}, "facts": {}}', "not a valid profile: $.runs: expected array"),
])
def test_bad_profiles_give_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    proc = lp("show", str(path))
    assert proc.returncode == 2
    assert message in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_profile(tmp_path):
    proc = lp("show", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "no such profile" in proc.stderr


def test_show_renders_and_json(tmp_path):
    path = tmp_path / "p.json"
    aggregate.learn([_rec(), _rec("getpid")]).save(path)
    proc = lp("show", str(path), check=True)
    assert "2 runs" in proc.stdout and "getpid" in proc.stdout and "@basic-io" in proc.stdout
    d = json.loads(lp("show", "--json", str(path), check=True).stdout)
    assert d["facts"]["syscalls"]["x86_64"]["getpid"]["runs"] == 1


def test_recording_roundtrip(tmp_path):
    r = _rec()
    r.save(tmp_path / "r.json")
    assert Recording.load(tmp_path / "r.json") == r
