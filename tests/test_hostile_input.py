"""Hostile profiles and recordings: >= 1,000 mutations of a real profile and a real recording, each fed to
the commands that read one (show, every export format, review, diff, merge, run, check --baseline).

Every answer is an acceptance (exit 0; check: 0 or 1; run: the workload's status) or a refusal in one
line ``leastpriv: error: FILE: ...`` with exit 2. Never a traceback. The CLI runs in-process
(conftest.lp_in_process: a subprocess each would take minutes); the mutations are seeded, so a failure
names its seed and repeats.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from pathlib import Path

import pytest
from tests.conftest import lp, lp_in_process

N_MUTATIONS = 1000
FORMATS = ("oci", "docker", "k8s-seccompprofile", "k8s-apparmorprofile", "k8s-pod", "apparmor", "systemd",
           "landlock", "seccomp-pfc", "selinux")
HOSTILE_VALUES = [None, True, False, 0, -1, -2**63 - 1, 2**64, 10**30, 1.5, "", "ALL", "CAP_ALL", "CAP_BOGUS",
                  "nosuchsyscall", "#-1", "mips99", "x86_64", "read", "EPERM\n", "\n[/]\nExecStart=x", "[/]",
                  "[bold]x[/]", "a" * 5000, "\udcff", [], {}, [[[[]]]], {"a": {"b": {}}}, [1, "x", None],
                  {"count": -5}, {"values": []}, "SCMP_CMP_EQ", "/etc/shadow", "../../x", "\x00"]
HOSTILE_KEYS = ["ALL", "CAP_ALL", "nosuchsyscall", "mips99", "#-1", "\n[/]", "", "x86_64", "i386", "read",
                "/dev/zero", "a" * 300, "/x\udcff[/]", "/\udcfe\n"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    prof, rec = d / "good.json", d / "good.rec.json"
    script = ("ls / >/dev/null; cat /etc/hostname >/dev/null; "
              "python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));s.listen()'")
    proc = lp("learn", "--backend", "ptrace", "-o", str(prof), "--save-recording", str(rec), "--", "sh", "-c",
              script)
    assert proc.returncode == 0, proc.stderr
    deny = d / "deny.json"
    p = json.loads(prof.read_text())
    from leastpriv.learner import aggregate
    from leastpriv.learner.profile import Profile
    aggregate.relearn(Profile.from_json(p), {"args": "strict", "style": "denylist"}).save(str(deny))
    # The mutated documents name no real executable: show and review analyse each executable's code
    # (reach/, ~0.5 s of CPU each; tests/test_reach.py covers it); here the read path is under test.
    docs = [json.loads(prof.read_text()), json.loads(deny.read_text()), json.loads(rec.read_text())]
    for doc in docs:
        (doc["facts"] if "facts" in doc else doc)["executables"] = {}
    return d, docs[:2], docs[2], prof


def _nodes(doc, path=()):
    """(container, key, path) for every value in the document."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k, path + (k,)))
            out += _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i, path + (i,)))
            out += _nodes(v, path + (i,))
    return out


def mutate(doc: dict, rng: random.Random) -> bytes:
    """One hostile variant of ``doc`` as the bytes of a file."""
    doc = copy.deepcopy(doc)
    how = rng.randrange(10)
    nodes = _nodes(doc)
    if how <= 3 and nodes:                       # a value replaced
        c, k, _ = rng.choice(nodes)
        c[k] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    elif how == 4 and nodes:                     # a key removed
        dicts = [(c, k) for c, k, _ in nodes if isinstance(c, dict)]
        c, k = rng.choice(dicts)
        del c[k]
    elif how == 5:                               # a key renamed or added
        dicts = [c[k] for c, k, _ in nodes if isinstance(c[k], dict)] + [doc]
        c = rng.choice(dicts)
        if c and rng.random() < 0.6:
            k = rng.choice(list(c))
            c[rng.choice(HOSTILE_KEYS)] = c.pop(k)
        else:
            c[rng.choice(HOSTILE_KEYS)] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    elif how == 6:                               # the attacks of the issue, aimed
        target = rng.choice(["caps", "syscall", "arch", "version", "count", "argop"])
        rules = doc.setdefault("rules", {}) if "facts" in doc else doc
        if target == "caps":
            (rules if "facts" in doc else doc).setdefault("capabilities", [])
            if "facts" in doc:
                rules["capabilities"] = ["ALL"]
            else:
                doc["capabilities"] = [{"cap": "ALL", "granted": True}]
        elif target == "syscall":
            key = "syscalls"
            t = (rules if "facts" in doc else doc).setdefault(key, {}).setdefault("x86_64", [] if "facts" in doc else {})
            if isinstance(t, list):
                t.append("nosuchsyscall")
            else:
                t["nosuchsyscall"] = {"count": 1}
        elif target == "arch":
            doc["host_arch"] = "mips99"
            if "runs" in doc and doc["runs"]:
                doc["runs"][0]["host_arch"] = "mips99"
        elif target == "version":
            doc["version"] = rng.choice([0, -1, 2, "1", 1.0, None])
        elif target == "count":
            nums = [(c, k) for c, k, _ in nodes if isinstance(c[k], int) and not isinstance(c[k], bool)]
            if nums:
                c, k = rng.choice(nums)
                c[k] = rng.choice([-1, 2**64, -2**63 - 1])
        else:
            for c, k, p in nodes:
                if k == "op":
                    c[k] = rng.choice(["SCMP_CMP_BOGUS", 7, None])
                    break
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if how == 7:                                 # bytes: cut, flipped, not UTF-8
        i = rng.randrange(len(text))
        text = rng.choice([text[:i], text[:i] + b"\xff\xfe" + text[i:], text[:i] + bytes([text[i] ^ 0x20]) +
                           text[i + 1:]])
    elif how == 8:                               # numbers that are not JSON, nesting too deep
        text = rng.choice([text.replace(b"1", b"NaN", 1), text.replace(b"0", b"1e999", 1),
                           text.replace(b"1", b"9" * 5000, 1), b"[" * 100_000 + b"]" * 100_000,
                           b'{"format": "leastpriv-profile", "version": 1, "runs": ' + b"[" * 5000 + b"]" * 5000 + b"}"])
    return text


def _commands(bad: str, good: str, out: str) -> list[list[str]]:
    cmds = [["show", bad], ["show", "--json", bad], ["review", bad], ["review", "--format", "json", bad],
            ["diff", bad, good], ["diff", good, bad], ["merge", bad, good, "-o", out],
            ["check", "--baseline", bad, good], ["check", "--baseline", good, bad],
            ["run", "--profile", bad, "--no-landlock", "--", "true"]]
    cmds += [["export", bad, "--format", f] for f in FORMATS]
    return cmds


def _judge(cmd, result, path) -> str:
    """'accepted' or 'refused'; an AssertionError for anything else."""
    what = f"leastpriv {' '.join(cmd)}"
    assert "Traceback" not in result.stderr, f"{what}:\n{result.stderr}"   # (an exception out of main is one)
    code = result.returncode
    if code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("leastpriv: error:")]
        assert len(errors) == 1, f"{what}: exit 2 without one error line:\n{result.stderr}"
        return "refused"
    if cmd[0] == "check":
        assert code in (0, 1), f"{what}: exit {code}\n{result.stderr}"
    elif cmd[0] == "run":
        assert 0 <= code < 256, f"{what}: exit {code}"
    else:
        assert code == 0, f"{what}: exit {code}\n{result.stderr}"
    if cmd[:2] == ["show", "--json"]:
        json.loads(result.stdout)
    return "accepted"


def test_fuzz_profiles_and_recordings(seeds):
    d, profiles, recording, good = seeds
    rng = random.Random(20261130)
    bad = d / "bad.json"
    out = d / "out.json"
    counts = {"accepted": 0, "refused": 0}
    start = time.monotonic()
    cwd = os.getcwd()
    os.chdir(d)
    try:
        for i in range(N_MUTATIONS):
            base = recording if i % 3 == 2 else profiles[i % 2]
            bad.write_bytes(mutate(base, rng))
            cmds = _commands(str(bad), str(good), str(out))
            # every document goes to one command, rotating over all of them (19 commands, 3 kinds of base
            # document: every command meets every kind); all of them share the read path under test
            for cmd in (cmds[i % len(cmds)],):
                result = lp_in_process(*cmd)
                try:
                    counts[_judge(cmd, result, bad)] += 1
                except AssertionError as exc:
                    raise AssertionError(f"mutation #{i} (seed 20261130): {exc}\ninput: {bad.read_bytes()[:400]!r}")
    finally:
        os.chdir(cwd)
    elapsed = time.monotonic() - start
    print(f"\nfuzz: {N_MUTATIONS} documents, {sum(counts.values())} invocations: {counts}, 0 tracebacks, "
          f"{elapsed:.1f} s")
    assert counts["refused"] > N_MUTATIONS // 3 and counts["accepted"] > 50


def _load(path):
    from leastpriv.learner.profile import load_profile_or_recording
    return load_profile_or_recording(str(path))


@pytest.mark.parametrize("where,value,needle", [
    (("rules", "capabilities"), ["ALL"], "$.rules.capabilities[0]: unknown capability 'ALL'"),
    (("rules", "capabilities"), ["CAP_BOGUS"], "unknown capability 'CAP_BOGUS'"),
    (("rules", "capabilities"), ["CAP_SYS_ADMIN\n"], "$.rules.capabilities[0]"),
    (("rules", "syscalls", "x86_64"), ["read", "nosuchsyscall"], "$.rules.syscalls.x86_64[1]: unknown syscall"),
    (("facts", "syscalls", "mips99"), {}, "unknown architecture 'mips99'"),
    (("runs",), {}, "$.runs: expected array, got an object"),
    (("facts", "files", "/x"), {"access": ["read", "own"], "runs": 1}, "$.facts.files"),
    (("rules", "patterns"), [{"pattern": 5}], "$.rules.patterns[0]"),
    (("rules", "siblings", "x86_64"), [{"name": "read", "sibling_of": "nosuch", "family": "read"}], "unknown syscall 'nosuch'"),
])
def test_names_and_types_refused_with_the_json_path(seeds, tmp_path, where, value, needle):
    _d, profiles, _rec, _good = seeds
    doc = copy.deepcopy(profiles[0])
    c = doc
    for k in where[:-1]:
        c = c.setdefault(k, {})
    c[where[-1]] = value
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    from leastpriv.errors import UserError
    with pytest.raises(UserError) as exc:
        _load(path)
    assert needle in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_all_capabilities_never_reach_an_export(seeds, tmp_path):
    """The issue's case: capabilities [ALL] became k8s add: [ALL], OCI ALL, CapabilityBoundingSet=ALL."""
    _d, profiles, _rec, _good = seeds
    doc = copy.deepcopy(profiles[0])
    doc["rules"]["capabilities"] = ["ALL"]
    path = tmp_path / "all.json"
    path.write_text(json.dumps(doc))
    for fmt in ("k8s-pod", "oci", "systemd", "docker"):
        proc = lp("export", str(path), "--format", fmt)
        assert proc.returncode == 2 and "ALL" not in proc.stdout and "unknown capability 'ALL'" in proc.stderr


def test_unbounded_inputs_refused_before_reading(seeds, tmp_path):
    _d, _p, _r, good = seeds
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(65 << 20)
    t = time.monotonic()
    for path, needle in ((fifo, "not a regular file"), (zero, "not a regular file"), (big, "larger than the 64 MiB")):
        for cmd in (["show", str(path)], ["check", "--baseline", str(path), str(good)], ["diff", str(good), str(path)]):
            proc = lp(*cmd, timeout=30)
            assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert time.monotonic() - t < 30


def test_schemas_are_valid_and_agree(seeds):
    """The shipped schemas are valid draft-7; fastjsonschema and jsonschema agree on the seeds."""
    import jsonschema

    from leastpriv import schema
    _d, profiles, recording, _good = seeds
    for name, docs in (("profile", profiles), ("recording", [recording])):
        s = json.loads((Path(schema.__file__).parent / "schemas" / f"{name}.schema.json").read_text())
        jsonschema.Draft7Validator.check_schema(s)
        for doc in docs:
            assert jsonschema.Draft7Validator(s).is_valid(doc)
            schema.check_shipped(doc, name, "seed", name)


def test_non_utf8_file_names_are_shown_and_exported(tmp_path):
    """A program that opens a file whose name is not UTF-8: every reader prints it (escaped), no export
    writes it raw, nothing fails on a strict UTF-8 output (lp_in_process's is one)."""
    d = tmp_path / "w"
    d.mkdir()
    prof = tmp_path / "p.json"
    code = f"open(b'{d}/\\xff\\xfe[b]x]', 'w').write('x')"
    proc = lp("learn", "--backend", "ptrace", "-o", str(prof), "--", "python3", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "\\udcff" in prof.read_text()
    for cmd in _commands(str(prof), str(prof), str(tmp_path / "m.json")):
        result = lp_in_process(*cmd)
        assert _judge(cmd, result, prof) == "accepted", cmd
    res = lp_in_process("show", "--json", str(prof))
    assert any("\udcff\udcfe[b]x]" in p for p in json.loads(res.stdout)["facts"]["files"])
