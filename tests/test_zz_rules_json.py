"""Typed rules (policy/rules.py) read and write the profile JSON exactly: a committed profile loads and
saves to the same bytes.

Named test_zz_ so that in `make test` it runs last and also checks every profile the earlier tests wrote
under pytest's base temporary directory (real learns with ptrace and eBPF, merges, retargets, denylists).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leastpriv.errors import UserError
from leastpriv.fileio import dumps
from leastpriv.kernel import constants as C
from leastpriv.learner import aggregate, arches
from leastpriv.learner.profile import Profile, empty_facts
from leastpriv.policy.rules import ArgRule, FileRules, PathPattern, Rules
from leastpriv.tracer.recording import Endpoint, RecordingBuilder

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "http-server" / "profile.json"
X = "x86_64"


def _rec(calls, args=(), files=(), net=()):
    b = RecordingBuilder(["prog"], "ptrace", uid=0)
    for n in calls:
        b.syscall(X, n)
        b.result(X, n, 0)
    for name, values in args:
        b.arg(X, name, values)
    for p, acc in files:
        b.file(p, acc)
    for e in net:
        b.endpoint(e)
    return b.build(0, True)


def _corpus() -> list[Profile]:
    """Profiles of every shape the learner writes: allowlist/denylist, each args mode, exact, translated,
    patterns and owned directories, ports, siblings, errno rules."""
    af_inet, stream = C.value("socket_family", "AF_INET"), C.value("socket_type", "SOCK_STREAM")
    fork = C.value("clone", "CLONE_CHILD_CLEARTID") | C.value("clone", "CLONE_CHILD_SETTID") | 17
    recs = [_rec(["read", "write", "openat", "close", "fork", "fsync", "socket", "bind", "ioctl", "mmap", "clone"],
                 [("socket", (af_inet, stream, 0)), ("ioctl", (C.value("ioctl", "TCGETS"),)), ("clone", (fork,))],
                 files=[("/etc/hosts", "read"), ("/tmp/tmp.a1b2c3/x", "create"), ("/tmp/tmp.a1b2c3", "create"),
                        ("/var/log/app.1", "write"), ("/var/log/app.2", "write"), ("/usr/bin/prog", "exec")],
                 net=[Endpoint("bind", "AF_INET", "127.0.0.1", 8080, "tcp")]),
            _rec(["read", "getpid", "#999"])]
    base = aggregate.learn(recs)
    out = [base]
    for opts in ({"style": "denylist"}, {"args": "strict"}, {"args": "off"}, {"exact": True},
                 {"style": "denylist", "args": "strict"}):
        out.append(aggregate.relearn(base, opts))
    out.append(arches.translate(base, "aarch64")[0])
    return out


def _roundtrip_bytes(text: str) -> str:
    return dumps(Profile.from_json(json.loads(text)).to_json())


def test_example_profile_loads_and_saves_to_the_same_bytes(tmp_path):
    text = EXAMPLE.read_text()
    assert dumps(Rules.from_json(json.loads(text)["rules"]).to_json()) == dumps(json.loads(text)["rules"])
    out = tmp_path / "again.json"
    Profile.load(str(EXAMPLE)).save(str(out))
    assert out.read_text() == text


@pytest.mark.parametrize("i", range(7))
def test_every_shape_the_learner_writes_roundtrips(tmp_path, i):
    p = _corpus()[i]
    path = tmp_path / "p.json"
    p.save(str(path))
    text = path.read_text()
    again = Profile.load(str(path))
    assert again.rules == p.rules
    again.save(str(path))
    assert path.read_text() == text


def test_the_corpus_has_every_key_and_shape():
    corpus = _corpus()
    keys = {k for p in corpus for k in p.to_json()["rules"]}
    assert keys == set(Rules._KEYS), set(Rules._KEYS) - keys
    base = corpus[0].rules
    assert base.patterns and base.owned and base.siblings and base.errno and base.conditional and base.unknown
    assert base.network.tcp("bind") == (8080,)


def test_absent_and_unknown_keys_survive_and_defaults_are_stated_once():
    sparse = {"syscalls": {X: ["read"]}, "files": {"read": ["/a"]}, "note": {"kept": [1, 2]},
              "patterns": [{"pattern": "/x/*", "access": ["read"]}],
              "conditional": {X: [{"names": ["socket"], "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 2}]}]}}
    r = Rules.from_json(sparse)
    assert r.to_json() == sparse
    assert (r.style, r.args_mode, r.no_new_privileges, r.exact) == ("allowlist", "safe", True, False)
    assert r.files == FileRules(read=("/a",)) and r.files.write == ()
    assert r.patterns == (PathPattern("/x/*", ("read",)),)
    assert isinstance(r.conditional[X][0], ArgRule) and r.conditional[X][0].args[0].value_two == 0
    assert Rules.from_json({}).to_json() == {} and Rules.from_json({}).empty
    assert not r.empty


def test_every_profile_the_test_run_wrote_roundtrips(tmp_path_factory):
    """Every profile written under pytest's base temporary directory in this run (all earlier test files,
    when run by `make test`): its rules round-trip; a file in the project's JSON style loads and saves to
    the same bytes."""
    base = tmp_path_factory.getbasetemp()
    _corpus()[0].save(str(tmp_path_factory.mktemp("own") / "own.json"))   # at least one, when run alone
    checked = identical = 0
    for path in sorted(base.rglob("*.json")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text()
            doc = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(doc, dict) or doc.get("format") != "leastpriv-profile" or not isinstance(doc.get("rules"), dict):
            continue
        try:
            Profile.from_json(doc, str(path))
        except UserError:      # a deliberately broken profile of a hostile-input test
            continue
        checked += 1
        assert dumps(Rules.from_json(doc["rules"]).to_json()) == dumps(doc["rules"]), path
        if text == dumps(doc) and set(doc["facts"]) >= set(empty_facts()):   # written by leastpriv
            assert _roundtrip_bytes(text) == text, path
            identical += 1
    assert checked >= 1 and identical >= 1
