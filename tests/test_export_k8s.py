"""Kubernetes exports: SPO objects valid against the CRDs, pods valid for kubernetes-validate, manifest patching."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema.validators import Draft7Validator

from .conftest import SHARED, lp
from .learning import PYTHON, learn_httpd

SPO = SHARED / "security-profiles-operator"


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    d, port, argv, profile = learn_httpd(tmp_path_factory.mktemp("k8s"))
    path = d / "httpd.json"
    profile.save(str(path))
    return path


def _crd_validator(name: str, version: str = "v1") -> Draft7Validator:
    crd = yaml.safe_load((SPO / name).read_text())
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return Draft7Validator(v["schema"]["openAPIV3Schema"])


def _export(path, *args) -> tuple[str, str]:
    res = lp("export", str(path), *args, check=True)
    return res.stdout, res.stderr


def _kubernetes_validate(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    return subprocess.run([exe, "--strict", str(path)], capture_output=True, text=True)


def test_seccompprofile_validates_against_the_crd(httpd):
    out, err = _export(httpd, "--format", "k8s-seccompprofile", "--namespace", "web")
    obj = yaml.safe_load(out)
    assert obj["apiVersion"] == "security-profiles-operator.x-k8s.io/v1" and obj["kind"] == "SeccompProfile"
    v = _crd_validator("seccompprofile-crd.yaml")
    assert not list(v.iter_errors(obj)), next(v.iter_errors(obj)).message
    names = {n for r in obj["spec"]["syscalls"] for n in r["names"]}
    assert {"bind", "listen", "accept4"} <= names
    assert "operator/web/" in err
    bad = copy.deepcopy(obj)
    bad["spec"]["defaultAction"] = "SCMP_ACT_MAYBE"
    assert list(v.iter_errors(bad))       # the check can fail
    complain = yaml.safe_load(_export(httpd, "--format", "k8s-seccompprofile", "--complain")[0])
    assert complain["spec"]["defaultAction"] == "SCMP_ACT_LOG" and not list(v.iter_errors(complain))


def test_apparmorprofile_validates_against_the_crd(httpd):
    obj = yaml.safe_load(_export(httpd, "--format", "k8s-apparmorprofile")[0])
    v = _crd_validator("apparmorprofile-crd.yaml")
    assert not list(v.iter_errors(obj)), next(v.iter_errors(obj)).message
    spec = obj["spec"]
    assert spec["mode"] == "Enforce"
    assert spec["abstract"]["network"]["allowedProtocols"]["allowTcp"] is True
    assert any(p.endswith("/logs/access.log") for p in spec["abstract"]["filesystem"]["writeOnlyPaths"])
    assert os.path.realpath(PYTHON) in spec["abstract"]["executable"]["allowedExecutables"]
    complain = yaml.safe_load(_export(httpd, "--format", "k8s-apparmorprofile", "--complain")[0])
    assert complain["spec"]["mode"] == "Complain"
    bad = copy.deepcopy(obj)
    bad["spec"]["mode"] = "Audit"
    assert list(v.iter_errors(bad))


def test_pod_passes_kubernetes_validate_and_says_its_level(httpd, tmp_path):
    out, err = _export(httpd, "--format", "k8s-pod", "--container", "web")
    pod = yaml.safe_load(out)
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert pod["spec"]["containers"][0]["name"] == "web"
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["seccompProfile"]["type"] == "Localhost"
    assert sc["appArmorProfile"]["type"] == "Localhost"
    assert "runAsNonRoot" not in sc        # learned as root: cannot claim it
    assert "Pod Security Standard: this securityContext meets 'baseline'" in err
    f = tmp_path / "pod.yaml"
    f.write_text(out)
    res = _kubernetes_validate(f)
    assert res.returncode == 0, res.stdout + res.stderr
    # kubernetes-validate does reject a wrong securityContext (the check can fail)
    sc["capabilities"]["drop"] = "ALL"
    f.write_text(yaml.safe_dump(pod))
    assert _kubernetes_validate(f).returncode != 0


MANIFEST = """\
# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep this comment
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: "nginx:1.25"
          securityContext:
            readOnlyRootFilesystem: true
        - name: sidecar
          image: busybox
          securityContext:
            runAsUser: 1000
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: busybox
"""


def test_manifest_patch_changes_only_the_target_container(httpd, tmp_path):
    m = tmp_path / "app.yaml"
    m.write_text(MANIFEST)
    out, err = _export(httpd, "--format", "k8s-pod", "--manifest", str(m), "--container", "web")
    before = list(yaml.safe_load_all(MANIFEST))
    after = list(yaml.safe_load_all(out))
    assert len(after) == 3
    web_after = after[0]["spec"]["template"]["spec"]["containers"][0]
    sc = web_after.pop("securityContext")
    web_before = before[0]["spec"]["template"]["spec"]["containers"][0]
    sc_before = web_before.pop("securityContext")
    assert sc["readOnlyRootFilesystem"] is True            # the user's own key is kept
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"]["type"] == "Localhost"
    assert sc_before == {"readOnlyRootFilesystem": True}
    assert after == before                                  # everything else is as it was
    assert "# keep this comment" in out and out.startswith("# the web tier")
    assert "patched Deployment/web container web" in err and "Pod Security Standard" in err
    f = tmp_path / "patched.yaml"
    f.write_text(out)
    res = _kubernetes_validate(f)
    assert res.returncode == 0, res.stdout + res.stderr


def test_manifest_with_unknown_container_is_one_line(httpd, tmp_path):
    m = tmp_path / "app.yaml"
    m.write_text(MANIFEST)
    res = lp("export", str(httpd), "--format", "k8s-pod", "--manifest", str(m), "--container", "nope")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "web, sidecar" in res.stderr
    res = lp("export", str(httpd), "--format", "k8s-pod", "--manifest", str(m))
    assert res.returncode == 2 and "--container" in res.stderr


def test_pod_and_seccompprofile_agree_on_the_operator_path_by_default(httpd, tmp_path):
    """Without flags the Pod references exactly where SPO installs the SeccompProfile object
    (operator/<its namespace>/<its name>.json); a manifest's own namespace wins, --namespace otherwise."""
    spo = yaml.safe_load(_export(httpd, "--format", "k8s-seccompprofile")[0])
    pod = yaml.safe_load(_export(httpd, "--format", "k8s-pod")[0])
    meta = spo["metadata"]
    ref = pod["spec"]["containers"][0]["securityContext"]["seccompProfile"]["localhostProfile"]
    assert ref == f"operator/{meta['namespace']}/{meta['name']}.json" and meta["namespace"] == "default"
    assert pod["metadata"]["namespace"] == meta["namespace"]
    assert not list(_crd_validator("seccompprofile-crd.yaml").iter_errors(spo))
    # --namespace moves both
    spo = yaml.safe_load(_export(httpd, "--format", "k8s-seccompprofile", "--namespace", "web")[0])
    pod = yaml.safe_load(_export(httpd, "--format", "k8s-pod", "--namespace", "web")[0])
    assert pod["spec"]["containers"][0]["securityContext"]["seccompProfile"]["localhostProfile"] == \
        f"operator/web/{spo['metadata']['name']}.json"
    # a manifest in its own namespace: the reference follows the document, not the default
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
                        "spec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
                        "      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n"
                        "        image: web:1\n")
    out = yaml.safe_load(_export(httpd, "--format", "k8s-pod", "--manifest", str(manifest))[0])
    sc = out["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert sc["seccompProfile"]["localhostProfile"] == f"operator/shop/{meta['name']}.json"
