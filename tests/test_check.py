"""leastpriv check / diff with real programs: exit codes, JUnit read by junitparser and lxml, SARIF by its schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema.validators import validator_for

from .conftest import lp

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def probe(build_c, tmp_path_factory):
    """A baseline learned from `learner_probe base`, and the probe."""
    d = tmp_path_factory.mktemp("check")
    exe = str(build_c("learner_probe"))
    base = str(d / "base.json")
    res = lp("learn", "--backend", "ptrace", "-o", base, "--", exe, "base")
    assert res.returncode == 0, res.stderr
    grown = str(d / "grown.rec.json")
    res = lp("learn", "--backend", "ptrace", "-o", str(d / "scratch.json"), "--save-recording", grown, "--", exe, "bpf")
    assert res.returncode == 4, res.stderr          # bpf fails with EINVAL: the probe says so and exits 4
    return exe, base, grown, d


def test_same_workload_exits_0_new_syscall_exits_1(probe):
    exe, base, _grown, d = probe
    same = lp("check", "--baseline", base, "--backend", "ptrace", "--", exe, "base")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "nothing grew" in same.stdout
    more = lp("check", "--baseline", base, "--backend", "ptrace", "--format", "json",
              "--output", str(d / "newsys.json"), "--", exe, "newsys")
    assert more.returncode == 1, more.stderr
    result = json.loads((d / "newsys.json").read_text())
    assert result["grew"] and [c["label"] for c in result["added"] if c["kind"] == "syscall"] == ["getcpu"]
    assert result["dangerous"] == []


def test_dangerous_growth_is_called_out(probe):
    _exe, base, grown, _d = probe
    res = lp("check", "--baseline", base, grown)
    assert res.returncode == 1
    assert "DANGEROUS" in res.stdout and "bpf" in res.stdout
    js = lp("check", "--baseline", base, grown, "--format", "json")
    result = json.loads(js.stdout)
    assert {c["label"] for c in result["dangerous"]} >= {"bpf"}
    gh = lp("check", "--baseline", base, grown, "--format", "github")
    assert gh.returncode == 1
    assert any(line.startswith(f"::error file={base},title=leastpriv%3A dangerous growth::new syscall")
               and "bpf" in line for line in gh.stdout.splitlines()), gh.stdout


def test_junit_reads_in_junitparser_and_lxml(probe):
    from junitparser import Failure, JUnitXml
    from lxml import etree

    _exe, base, grown, d = probe
    out = d / "report.xml"
    assert lp("check", "--baseline", base, grown, "--format", "junit", "--output", str(out)).returncode == 1
    etree.parse(str(out))                         # well-formed XML for a real parser
    xml = JUnitXml.fromfile(str(out))
    cases = [c for suite in xml for c in suite]
    failed = {c.name: c.result for c in cases if c.result}
    assert "no new syscalls" in failed
    fail = [r for r in failed["no new syscalls"] if isinstance(r, Failure)][0]
    assert fail.type == "dangerous-growth" and "bpf" in fail.text
    assert "no new capabilities" not in failed or "CAP_BPF" in failed["no new capabilities"][0].text
    ok = d / "ok.xml"
    assert lp("check", "--baseline", base, base, "--format", "junit", "--output", str(ok)).returncode == 0
    assert all(not c.result for suite in JUnitXml.fromfile(str(ok)) for c in suite)


def test_sarif_validates_against_the_2_1_0_schema(probe):
    _exe, base, grown, d = probe
    res = lp("check", "--baseline", base, grown, "--format", "sarif")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    schema = json.loads(SARIF_SCHEMA.read_text())
    validator = validator_for(schema)(schema)
    validator.validate(doc)
    assert not validator.is_valid({**doc, "version": "2.0.0"})      # the schema really constrains
    levels = {r["message"]["text"].split(": ", 1)[1].split(" ")[0]: r["level"] for r in doc["runs"][0]["results"]}
    assert levels["bpf"] == "error"
    same = lp("check", "--baseline", base, base, "--format", "sarif")
    assert same.returncode == 0
    empty = json.loads(same.stdout)
    validator.validate(empty)
    assert empty["runs"][0]["results"] == []


def test_errors_exit_2(probe, tmp_path):
    _exe, base, _grown, _d = probe
    assert lp("check", "--baseline", str(tmp_path / "missing.json"), base).returncode == 2
    (tmp_path / "bad.json").write_text("{not json")
    bad = lp("check", "--baseline", base, str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "malformed JSON" in bad.stderr and "Traceback" not in bad.stderr
    assert lp("check", "--baseline", base).returncode == 2
    assert lp("check", "--baseline", base, base, "--only", "nonsense").returncode == 2


def test_diff_counts_and_json(probe):
    _exe, base, grown, _d = probe
    res = lp("diff", "--json", base, grown)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["summary"]["syscall"]["added"] >= 1
    assert "bpf" in [c["label"] for c in d["added"] if c["kind"] == "syscall"]
    assert d["summary"]["syscall"]["new"] == d["summary"]["syscall"]["old"] + d["summary"]["syscall"]["added"] \
        - d["summary"]["syscall"]["removed"]
    human = lp("diff", base, grown)
    assert human.returncode == 0 and "+ syscalls: [x86_64] bpf" in human.stdout


def test_helps_sarif_example_writes_valid_sarif_with_the_workloads_output_apart(probe, tmp_path):
    """check --help's SARIF example (-f sarif -o FILE -- CMD): FILE is valid SARIF even though the workload
    writes to stdout; and the usage errors the old flags gave are gone (-o, -f are check's own)."""
    exe, base, _grown, _d = probe
    helptext = lp("check", "--help", check=True).stdout
    assert "-f sarif -o leastpriv.sarif -- ./app" in helptext
    out = tmp_path / "leastpriv.sarif"
    res = lp("check", "--baseline", base, "-f", "sarif", "-o", str(out), "--backend", "ptrace", "--", exe, "base")
    assert res.returncode == 0, res.stderr
    assert res.stdout and not res.stdout.lstrip().startswith("{")     # the workload's own output, not the report
    schema = json.loads(SARIF_SCHEMA.read_text())
    doc = json.loads(out.read_text())
    validator_for(schema)(schema).validate(doc)
    assert doc["runs"][0]["results"] == []
    # text is the human format's name (rich is the same)
    text = lp("check", "--baseline", base, base, "-f", "text")
    rich = lp("check", "--baseline", base, base, "-f", "rich")
    assert text.returncode == rich.returncode == 0 and text.stdout == rich.stdout
