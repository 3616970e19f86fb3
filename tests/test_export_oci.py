"""OCI and Docker exports of profiles learned from real programs, validated against the runtime-spec schema."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .conftest import SHARED, lp
from .learning import learn_profile

SPEC = SHARED / "oci-runtime-spec"


@pytest.fixture(scope="module")
def oci_validator():
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing")
    resources = []
    for f in SPEC.glob("*.json"):
        schema = json.loads(f.read_text())
        resources.append((f.name, Resource.from_contents(schema, default_specification=DRAFT4)))
    registry = Registry().with_resources(resources)
    root = json.loads((SPEC / "config-schema.json").read_text())
    cls = validator_for(root)
    return cls(root, registry=registry)


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory, build_c):
    """A profile learned from a real program that forks (clone argument rules) and reads a file."""
    d = tmp_path_factory.mktemp("oci")
    path = d / "clone.json"
    learn_profile([str(build_c("enforce_clone")), "fork"], path)
    return path


def _runc_spec(tmp: Path) -> Path:
    bundle = tmp / "bundle"
    bundle.mkdir()
    runc = shutil.which("runc")
    if runc is None:
        pytest.fail("runc is not installed: make install installs it")
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    return bundle


def _export(profile_path, *args) -> tuple[dict, str]:
    res = lp("export", str(profile_path), *args, check=True)
    return json.loads(res.stdout), res.stderr


def test_oci_fragment_validates_in_a_runc_config(profile_path, tmp_path, oci_validator):
    frag, _ = _export(profile_path, "--format", "oci")
    config = json.loads((_runc_spec(tmp_path) / "config.json").read_text())
    config["process"].update(frag["process"])
    config["linux"]["seccomp"] = json.loads(json.dumps(frag["linux"]["seccomp"]))
    errors = list(oci_validator.iter_errors(config))
    assert not errors, errors[0].message
    # the validator does reject a wrong seccomp object (the test can fail)
    config["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_MAYBE"
    assert list(oci_validator.iter_errors(config))
    seccomp = frag["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64"]   # only the ABIs the workload used
    caps = frag["process"]["capabilities"]
    assert caps["inheritable"] == [] and caps["ambient"] == []
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert frag["process"]["noNewPrivileges"] is True


def test_clone_rules_and_clone3_enosys(profile_path):
    obj, _ = _export(profile_path, "--format", "docker")
    by_name = {}
    for r in obj["syscalls"]:
        for n in r["names"]:
            by_name.setdefault(n, []).append(r)
    clone = by_name["clone"]
    assert len(clone) == 1 and clone[0]["action"] == "SCMP_ACT_ALLOW"
    (cond,) = clone[0]["args"]
    assert cond["op"] == "SCMP_CMP_MASKED_EQ" and cond["value"] & 0x10000000   # CLONE_NEWUSER kept out
    assert cond["valueTwo"] == 0
    assert by_name["clone3"] == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                                  "comment": by_name["clone3"][0]["comment"]}]
    assert "execve" in by_name and "exit_group" in by_name


def test_docker_json_validates_as_linux_seccomp(profile_path, tmp_path, oci_validator):
    obj, err = _export(profile_path, "--format", "docker")
    config = json.loads((_runc_spec(tmp_path) / "config.json").read_text())
    config["linux"]["seccomp"] = obj
    assert not list(oci_validator.iter_errors(config))
    assert "--cap-drop ALL" in err


def test_complain_uses_scmp_act_log(profile_path):
    obj, _ = _export(profile_path, "--format", "docker", "--complain")
    assert obj["defaultAction"] == "SCMP_ACT_LOG" and "defaultErrnoRet" not in obj


def test_args_off_and_strict(profile_path):
    off, _ = _export(profile_path, "--format", "docker", "--args", "off")
    assert not any("args" in r for r in off["syscalls"])
    names = {n for r in off["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "clone" in names and "clone3" not in names
    strict, _ = _export(profile_path, "--format", "docker", "--args", "strict")
    assert sum("args" in r for r in strict["syscalls"]) >= sum("args" in r for r in
                                                                _export(profile_path, "--format", "docker")[0]["syscalls"])


def test_denylist_style(profile_path):
    obj, _ = _export(profile_path, "--format", "docker", "--style", "denylist")
    assert obj["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {n for r in obj["syscalls"] if r["action"] == "SCMP_ACT_ERRNO" and "args" not in r for n in r["names"]}
    assert {"bpf", "init_module", "kexec_load"} <= denied and "read" not in denied
    assert any(r["names"] == ["clone"] and r["action"] == "SCMP_ACT_ERRNO" for r in obj["syscalls"])


def test_arch_translation(profile_path, oci_validator, tmp_path):
    frag, err = _export(profile_path, "--format", "oci", "--arch", "aarch64")
    seccomp = frag["linux"]["seccomp"]
    assert seccomp["architectures"] == ["SCMP_ARCH_AARCH64"]   # a 64-bit workload: no arm (32-bit) entry
    names = {n for r in seccomp["syscalls"] for n in r["names"]}
    assert "arch_prctl" not in names and "openat" in names
    assert "arch_prctl left out" in err


def test_bundle_updated_in_place_touching_nothing_else(profile_path, tmp_path, oci_validator):
    bundle = _runc_spec(tmp_path)
    cfg = bundle / "config.json"
    before = json.loads(cfg.read_text())
    before_text = cfg.read_text()
    res = lp("export", str(profile_path), "--format", "oci", "--bundle", str(bundle), check=True)
    assert res.stdout == ""
    after = json.loads(cfg.read_text())
    assert list(after) == list(before)
    for key in before:
        if key not in ("process", "linux"):
            assert after[key] == before[key]
    for key in before["process"]:
        if key not in ("capabilities", "noNewPrivileges"):
            assert after["process"][key] == before["process"][key]
    for key in before["linux"]:
        if key != "seccomp":
            assert after["linux"][key] == before["linux"][key]
    assert after["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert cfg.read_text().splitlines()[1].startswith("\t") == before_text.splitlines()[1].startswith("\t")
    assert not list(oci_validator.iter_errors(after))
    assert [p.name for p in bundle.iterdir()] == ["config.json"]   # no temporary file left


def test_bad_bundle_is_one_line(tmp_path, profile_path):
    (tmp_path / "config.json").write_text("[1, 2")
    res = lp("export", str(profile_path), "--format", "oci", "--bundle", str(tmp_path))
    assert res.returncode == 2 and "config.json" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_unknown_format_is_one_line(profile_path):
    res = lp("export", str(profile_path), "--format", "nope")
    assert res.returncode == 2 and "unknown format" in res.stderr


def test_output_file_written_atomically(profile_path, tmp_path):
    out = tmp_path / "seccomp.json"
    lp("export", str(profile_path), "--format", "docker", "-o", str(out), check=True)
    assert json.loads(out.read_text())["defaultAction"] == "SCMP_ACT_ERRNO"


def test_seccomp_pfc_shows_the_filter_run_loads(profile_path):
    res = lp("export", str(profile_path), "--format", "seccomp-pfc", check=True)
    text = res.stdout
    x86_64 = text.split("# filter for arch x86 ")[0]
    assert '# filter for syscall "execve"' in x86_64 and "action ALLOW;" in x86_64
    clone = x86_64.split('# filter for syscall "clone"')[1].split("# filter for syscall")[0]
    assert "if ($a0.lo32 & 0x" in clone      # the namespace-flag condition
    assert "action ERRNO(38);" in x86_64.split('# filter for syscall "clone3"')[1].split("# filter")[0]
    assert "# default action\n  action ERRNO(1);" in text
